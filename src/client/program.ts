// The client's life: keys, network setup, privileges, the password, cleanup.
import type { Logger } from "../cli/log.js";
import type { ClientOptions } from "./options.js";
import { readKeys } from "./keys.js";
import { obtainPassword, type Discover } from "./run.js";
import { writePassword } from "./output.js";
import { confirmUnprivileged, dropPrivilegesForGood, unprivilegedIds } from "./privileges.js";
import { isRoot } from "../sys/privileges.js";
import { NetworkSession, listHooks, type DelegatedSteps } from "./network/index.js";
import { superviseWorker } from "./supervisor.js";
import { runWorker } from "./worker.js";
import { routePreparer } from "./routing.js";
import { eventReporter } from "./events.js";
import { clientRole, connectToPrivileged, requestedSteps } from "./ipc.js";
import { InterfaceFollower } from "./follow.js";
import { MAX_REPLY_BYTES } from "../protocol/privileged-requests.js";
import { protectMemory } from "../sys/no-core.js";

async function zeroconfDiscovery(opts: ClientOptions, follower: InterfaceFollower, log: Logger): Promise<Discover> {
  if (opts.connect.length > 0) return () => ({ stop() {} });
  // browse.js, not the index: that also loads the server's announcer and D-Bus.
  const { browse } = await import("../zeroconf/browse.js");
  return (found, gone) =>
    browse({
      serviceType: "_mandos._tcp",
      select: follower.select,
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
    // Only a child given our channel has a role; the variable alone is not enough.
    const role = clientRole(process.env);
    if (role === "worker") {
      return await runWorker(opts, (follower) => zeroconfDiscovery(opts, follower, log), log, abort.signal);
    }
    return await runMain(opts, role === "agent" && !isRoot() ? agentSteps(log) : null, log, abort.signal);
  } catch (err) {
    if (abort.signal.aborted) {
      log.debug("stopped by signal");
      return 1;
    }
    throw err;
  }
}

/**
 * Run by the password agent without privileges: the agent brings
 * interfaces up and adds routes on our requests, and undoes them when we
 * end. Nothing here is privileged, and the kernel must confirm it.
 */
function agentSteps(log: Logger): DelegatedSteps {
  confirmUnprivileged();
  log.debug(`running as uid ${process.getuid?.()}, gid ${process.getgid?.()}, without privileges; the password agent does the network steps`);
  const requester = connectToPrivileged(
    MAX_REPLY_BYTES,
    () => {},
    (reason) => log.debug(`no more network steps: ${reason}`),
  );
  return requestedSteps(requester);
}

async function runMain(opts: ClientOptions, delegate: DelegatedSteps | null, log: Logger, signal: AbortSignal): Promise<number> {
  const keys = readKeys(opts);
  // Checked before the network is touched.
  const ids = isRoot() ? unprivilegedIds(process.env) : null;
  const session = new NetworkSession({
    interfaces: opts.interfaces,
    connect: opts.connectText,
    delaySeconds: opts.delaySeconds,
    hookDir: opts.networkHookDir,
    debug: opts.debug,
    log,
    ...(delegate ? { delegate } : {}),
  });
  const onAbort = () => void session.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const report = await session.start();
    const zone = opts.connect.length > 0 ? report.selection.only : null;
    const interfaces = report.selection.use;
    const steps: DelegatedSteps = {
      bringUp: (name) => session.adopt(name),
      addRoute: (address, interfaceName) => session.addTemporaryRoute(address, interfaceName),
    };
    if (ids) {
      const hooks = (await listHooks(opts.networkHookDir)) ?? [];
      if (report.broughtUp.length > 0 || hooks.length > 0 || opts.connect.length === 0) {
        // Root work remains (interfaces to take down or to bring up later,
        // hooks to stop, routes to add): keep it here, run the network
        // part unprivileged.
        const { code, output } = await superviseWorker({
          command: [process.execPath, ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)],
          start: { type: "start", keys, zone, interfaces },
          steps,
          ...ids,
          log,
          signal,
        });
        if (code === 0 && output.length > 0) writePassword(output);
        else output.fill(0);
        return code;
      }
      dropPrivilegesForGood(ids);
      log.debug(`network part running as uid ${ids.uid}, gid ${ids.gid}`);
    }
    const follower = new InterfaceFollower(report.selection.rules, interfaces, steps.bringUp, log);
    const password = await obtainPassword(opts, keys, {
      log,
      zone,
      discover: await zeroconfDiscovery(opts, follower, log),
      signal,
      prepareServer: routePreparer(steps.addRoute, log),
      onServerEvent: eventReporter(process.env),
    });
    writePassword(password);
    return 0;
  } finally {
    signal.removeEventListener("abort", onAbort);
    await session.close();
  }
}
