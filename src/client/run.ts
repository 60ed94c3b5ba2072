// Getting the password: fixed servers (--connect) or Zeroconf discovery,
// every server retried until one secret decrypts, or until K of them gave
// shares of a split password, or we are told to stop.
import { Credentials } from "../tls/session.js";
import { errorMessage, type Logger } from "../cli/log.js";
import { fetchSecret, describeServer, type ServerAddress } from "./fetch.js";
import { ServerPool } from "./servers.js";
import { ShareCollector } from "../shares/collect.js";
import { shareHeader } from "../shares/format.js";
import type { ClientOptions } from "./options.js";
import type { KeyMaterial } from "./keys.js";
import type { ServerEvent } from "./events.js";

/** Finds servers; reports each found address and each one that went away. */
export type Discover = (found: (s: ServerAddress) => void, gone: (s: ServerAddress) => void) => { stop(): void };

export interface RunDeps {
  log: Logger;
  /** Zeroconf discovery; unused with --connect. */
  discover: Discover;
  /** With --connect: the one interface to use as the address's zone, if any. */
  zone: string | null;
  /** Called before connecting to a discovered server (it may need a temporary route). */
  prepareServer?(s: ServerAddress): Promise<void>;
  signal: AbortSignal;
  /** Told how each server's attempts go (found, each step, decrypted or failed): mandos-check's report. */
  onServerEvent?(server: ServerAddress, event: ServerEvent): void;
}

type Decrypter = (message: Buffer) => Promise<Buffer>;

/** Unusable OpenPGP keys: fatal, as for Mandos, and reported once. */
class KeyLoadError extends Error {}

/** Load the OpenPGP keys; started early so it overlaps connecting. */
async function makeDecrypter(keys: KeyMaterial): Promise<Decrypter> {
  try {
    const pgp = await import("../pgp/index.js");
    const loaded = await pgp.loadDecryptionKeys(keys.pgpPublic, keys.pgpSecret);
    return (message) => pgp.decryptSecret(message, loaded);
  } catch (err) {
    throw new KeyLoadError(`cannot use the OpenPGP keys: ${errorMessage(err)}`);
  }
}

export async function obtainPassword(opts: ClientOptions, keys: KeyMaterial, deps: RunDeps): Promise<Buffer> {
  const { log } = deps;
  const credentials = Credentials.rawKey(keys.tlsPublicPem, keys.tlsPrivatePem);
  const decrypter = makeDecrypter(keys);
  decrypter.then(() => log.debug("OpenPGP keys loaded"), () => {});
  // A bad OpenPGP key ends the run at once instead of retrying.
  const keyFailure = decrypter.then(() => new Promise<never>(() => {}));
  const attemptWith = async (server: ServerAddress, signal: AbortSignal) => {
    try {
      return await fetchSecret(
        server,
        {
          credentials,
          priority: opts.priority,
          connectTimeoutMs: 10_000,
          handshakeTimeoutMs: 10_000,
          answerTimeoutMs: opts.timeoutSeconds * 1000,
          decrypt: async (message) => {
            log.debug(`received ${message.length} bytes of encrypted secret from ${describeServer(server)}`);
            return (await decrypter)(message);
          },
          reached: (step) => {
            if (step === "handshake") log.debug(`TLS handshake done with ${describeServer(server)}`);
            deps.onServerEvent?.(server, { type: step });
          },
        },
        signal,
      ).then((secret) => {
        const share = shareHeader(secret);
        deps.onServerEvent?.(server, share ? { type: "share", ...share } : { type: "decrypted" });
        return secret;
      });
    } catch (err) {
      await decrypter; // unusable keys outrank whatever the server did
      if (!signal.aborted) deps.onServerEvent?.(server, { type: "failed", reason: errorMessage(err) });
      throw err;
    }
  };
  const timers = new Set<NodeJS.Timeout>();
  const collector = new ShareCollector();
  const pool = new ServerPool(opts.retrySeconds * 1000, {
    attempt: async (server, signal) => {
      if (opts.connect.length === 0) await deps.prepareServer?.(server);
      log.debug(`trying ${describeServer(server)}`);
      return attemptWith(server, signal);
    },
    accept: async (server, secret) => {
      const offered = await collector.offer(describeServer(server), secret);
      for (const note of offered.notes) log.debug(note);
      for (const problem of offered.problems) log.warning(problem);
      return offered.password;
    },
    newRound: () => {
      collector.wipe();
      log.warning(`every server answered, but no password yet; asking them all again in ${opts.retrySeconds} s`);
    },
    setTimer: (ms, fn) => {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
      return () => {
        clearTimeout(t);
        timers.delete(t);
      };
    },
    onFailure: (_server, err) => {
      if (!(err instanceof KeyLoadError)) log.info(`${errorMessage(err)}; retrying in ${opts.retrySeconds} s`);
    },
  });

  let discovery: { stop(): void } | null = null;
  if (opts.connect.length > 0) {
    for (const target of opts.connect) {
      const server = deps.zone ? { ...target, interfaceName: deps.zone } : { ...target };
      deps.onServerEvent?.(server, { type: "found" });
      pool.add(server);
    }
  } else {
    discovery = deps.discover(
      (s) => {
        log.debug(`found server ${describeServer(s)}`);
        deps.onServerEvent?.(s, { type: "found" });
        pool.add(s);
      },
      (s) => {
        log.debug(`server ${describeServer(s)} went away`);
        pool.remove(s);
      },
    );
  }
  const stopped = new Promise<never>((_, reject) => {
    const onAbort = () => reject(new Error("stopped by signal"));
    if (deps.signal.aborted) onAbort();
    else deps.signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([pool.result, keyFailure, stopped]);
  } finally {
    pool.stop();
    collector.wipe();
    discovery?.stop();
    for (const t of timers) clearTimeout(t);
    credentials.dispose();
  }
}
