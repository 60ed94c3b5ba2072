// The client's life: keys, network setup, privileges, the password, cleanup.
import type { Logger } from "../cli/log.js";
import type { ClientOptions } from "./options.js";
import { readKeys } from "./keys.js";
import { obtainPassword, type Discover } from "./run.js";
import { writePassword } from "./output.js";
import { dropPrivilegesForGood, isRoot, unprivilegedIds } from "./privileges.js";
import { NetworkSession, listHooks } from "./network/index.js";
import { superviseWorker } from "./supervisor.js";
import { receiveStart, runWorker } from "./worker.js";
import { serverNeedsRoute } from "./routing.js";
import { WORKER_ROLE_ENV } from "./ipc.js";
import { protectMemory } from "../sys/no-core.js";
import { errorMessage } from "../cli/log.js";

async function zeroconfDiscovery(opts: ClientOptions, interfaces: string[], log: Logger): Promise<Discover> {
  if (opts.connect) return () => ({ stop() {} });
  // browse.js, not the index: that also loads the server's announcer and D-Bus.
  const { browse } = await import("../zeroconf/browse.js");
  return (found, gone) =>
    browse({
      serviceType: "_mandos._tcp",
      interfaces,
      log,
      onFound: (s) => found({ address: s.address, port: s.port, interfaceName: s.interfaceName }),
      onRemoved: (s) => gone({ address: s.address, port: s.port, interfaceName: s.interfaceName }),
    });
}

/** Resolves with the exit code; the password, if any, is on stdout. */
export async function runClient(opts: ClientOptions, log: Logger): Promise<number> {
  // Keys and the password will be in our memory: keep them out of core files.
  protectMemory();
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  try {
    // Only a child with our IPC channel is the worker; the variable alone is not enough.
    if (process.env[WORKER_ROLE_ENV] === "worker" && process.send) {
      const start = await receiveStart();
      return await runWorker(opts, start, (ifs) => zeroconfDiscovery(opts, ifs, log), log, abort.signal);
    }
    return await runMain(opts, log, abort.signal);
  } catch (err) {
    if (abort.signal.aborted) {
      log.debug("stopped by signal");
      return 1;
    }
    throw err;
  }
}

async function runMain(opts: ClientOptions, log: Logger, signal: AbortSignal): Promise<number> {
  const keys = await readKeys(opts);
  const session = new NetworkSession({
    interfaces: opts.interfaces,
    connect: opts.connectText,
    delaySeconds: opts.delaySeconds,
    hookDir: opts.networkHookDir,
    debug: opts.debug,
    log,
  });
  const onAbort = () => void session.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const report = await session.start();
    const zone = opts.connect ? report.selection.only : null;
    const interfaces = report.selection.use;
    if (isRoot()) {
      const { uid, gid } = unprivilegedIds(process.env);
      const hooks = (await listHooks(opts.networkHookDir)) ?? [];
      if (report.broughtUp.length > 0 || hooks.length > 0 || !opts.connect) {
        // Root work remains (interfaces to take down, hooks to stop, routes
        // to add): keep it here, run the network part unprivileged.
        const { code, output } = await superviseWorker({
          start: { type: "start", keys, zone, interfaces },
          session,
          uid,
          gid,
          log,
          signal,
        });
        if (code === 0 && output.length > 0) writePassword(output);
        else output.fill(0);
        return code;
      }
      dropPrivilegesForGood(uid, gid);
      log.debug(`network part running as uid ${uid}, gid ${gid}`);
    }
    const password = await obtainPassword(opts, keys, {
      log,
      zone,
      discover: await zeroconfDiscovery(opts, interfaces, log),
      signal,
      prepareServer: async (s) => {
        if (!(await serverNeedsRoute(s))) return;
        await session
          .addTemporaryRoute(s.address, s.interfaceName!)
          .catch((err: unknown) => log.info(`no temporary route to ${s.address}: ${errorMessage(err)}`));
      },
    });
    writePassword(password);
    return 0;
  } finally {
    signal.removeEventListener("abort", onAbort);
    await session.close();
  }
}
