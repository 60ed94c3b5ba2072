// Getting the password: fixed server (--connect) or Zeroconf discovery,
// every server retried until one secret decrypts or we are told to stop.
import { Credentials } from "../tls/session.js";
import { errorMessage, type Logger } from "../cli/log.js";
import { fetchSecret, describeServer, type ServerAddress } from "./fetch.js";
import { ServerPool } from "./servers.js";
import type { ClientOptions } from "./options.js";
import type { KeyMaterial } from "./keys.js";

/** Finds servers; reports each found address and each one that went away. */
export type Discover = (found: (s: ServerAddress) => void, gone: (s: ServerAddress) => void) => { stop(): void };

export interface RunDeps {
  log: Logger;
  /** Zeroconf discovery; unused with --connect. */
  discover: Discover;
  /** Called before connecting to a server that may need a route (global IPv6 via an interface). */
  prepareServer?(s: ServerAddress): Promise<void>;
  signal: AbortSignal;
}

type Decrypter = (message: Buffer) => Promise<Buffer>;

/** Load the OpenPGP keys; started early so it overlaps connecting. */
async function makeDecrypter(keys: KeyMaterial): Promise<Decrypter> {
  const pgp = await import("../pgp/index.js");
  const loaded = await pgp.loadDecryptionKeys(keys.pgpPublic, keys.pgpSecret);
  return (message) => pgp.decryptSecret(message, loaded);
}

export async function obtainPassword(opts: ClientOptions, keys: KeyMaterial, deps: RunDeps): Promise<Buffer> {
  const { log } = deps;
  const credentials = Credentials.rawKey(keys.tlsPublicPem, keys.tlsPrivatePem);
  const decrypter = makeDecrypter(keys);
  // A bad OpenPGP key is fatal, as for Mandos: stop at once instead of retrying.
  const keyFailure = decrypter.then(
    () => new Promise<never>(() => {}),
    (err: unknown) => Promise.reject(new Error(`cannot use the OpenPGP keys: ${errorMessage(err)}`)),
  );
  const timers = new Set<NodeJS.Timeout>();
  const pool = new ServerPool(opts.retrySeconds * 1000, {
    attempt: async (server, signal) => {
      await deps.prepareServer?.(server);
      log.debug(`trying ${describeServer(server)}`);
      return fetchSecret(
        server,
        {
          credentials,
          priority: opts.priority,
          connectTimeoutMs: 10_000,
          handshakeTimeoutMs: 10_000,
          answerTimeoutMs: opts.timeoutSeconds * 1000,
          decrypt: async (message) => (await decrypter)(message),
        },
        signal,
      );
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
    onFailure: (_server, err) => log.info(`${errorMessage(err)}; retrying in ${opts.retrySeconds} s`),
  });

  let discovery: { stop(): void } | null = null;
  if (opts.connect) {
    const server: ServerAddress = { ...opts.connect };
    const zone = opts.interfaces.filter((i) => i !== "none");
    if (zone.length === 1) server.interfaceName = zone[0];
    pool.add(server);
  } else {
    discovery = deps.discover(
      (s) => {
        log.debug(`found server ${describeServer(s)}`);
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
    discovery?.stop();
    for (const t of timers) clearTimeout(t);
    credentials.dispose();
  }
}
