// mandos: give encrypted passwords to authenticated Mandos clients.
// Start-up order follows Mandos: settings (command line over mandos.conf),
// clients.conf, saved state, the listening socket, then drop root, then
// D-Bus and Zeroconf; systemd is told READY=1 when all of that is done.
// The steps live in startup.ts; this file puts them in order.
import { join } from "node:path";
import { UsageError, VERSION } from "../cli/args.js";
import { errorMessage, type Level, type Logger } from "../cli/log.js";
import { ConfigError, type ServerConfig } from "../config/index.js";
import { isBackgroundChild, reportReady, runInBackground, writePidFile } from "./daemon.js";
import type { Listener } from "./listener.js";
import { systemdNotifier, type Notifier } from "./notify.js";
import { USAGE, parseServerArgs, type ServerArgs } from "./options.js";
import { MandosServer } from "./server.js";
import { STATE_FILE } from "./state.js";
import { joinBus, type BusHandle } from "./bus.js";
import { selfTest } from "./selftest.js";
import { protectMemory } from "../sys/no-core.js";
import { startZeroconf, type Announcement } from "./zeroconf.js";
import { adjustableLogger, onHangup, reload, type AdjustableLogger, type ReloadTarget } from "./reload.js";
import { readInProcess, startPrivilegedReader } from "./config-reader.js";
import type { EtcdStore } from "./fleet/etcd-store.js";
import {
  activationSocket,
  giveUpRoot,
  listen,
  metricsFor,
  openLog,
  readClients,
  readSettings,
  removeLeftovers,
  restoreState,
  serveMetricsFor,
  startCheckers,
  stateDirectoryProblem,
} from "./startup.js";

function usageError(msg: string): never {
  process.stderr.write(`${USAGE.split("\n")[0]}\nmandos: error: ${msg}\n`);
  process.exit(2);
}

function commandLine(argv: readonly string[]): ServerArgs {
  try {
    return parseServerArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) usageError(err.message);
    throw err;
  }
}

/** Settings, or exit: 2 for a usage mistake, 1 for a bad mandos.conf. */
function settingsOrExit(args: ServerArgs): { settings: ServerConfig; level: Level } {
  try {
    return readSettings(args);
  } catch (err) {
    if (err instanceof UsageError) usageError(err.message);
    if (err instanceof ConfigError) {
      process.stderr.write(`mandos: error: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

/** What is running, for a stop that may come at any point of start-up. */
interface Running {
  listener: Listener | null;
  bus: BusHandle | null;
  announcement: Announcement | null;
  fleet: EtcdStore | null;
  stopping: boolean;
}

/** From here on a signal stops the server cleanly, even mid-start-up. */
function stopOnSignals(server: MandosServer, notify: Notifier, log: Logger): Running {
  const running: Running = { listener: null, bus: null, announcement: null, fleet: null, stopping: false };
  const shutdown = async (why: string) => {
    if (running.stopping) return;
    running.stopping = true;
    log.debug(`Server exiting (${why})`);
    notify("STOPPING=1");
    server.stop();
    // A failed save was logged when it failed.
    await server.flushed().catch(() => {});
    await running.fleet?.stop().catch(() => {});
    await running.announcement?.stop().catch(() => {});
    await running.listener?.close().catch(() => {});
    running.bus?.close();
    process.exit(0);
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => void shutdown(sig));
  return running;
}

/**
 * A reload, as systemd's notify protocol wants it told: RELOADING=1 (with
 * the monotonic time systemd 253 asks for), then READY=1 once the new state
 * is saved, so `systemctl reload` ends with the reload in effect.
 */
async function reloadAndNotify(target: ReloadTarget, notify: Notifier, running: Running): Promise<void> {
  if (running.stopping) return;
  notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
  try {
    await reload(target);
  } catch (err) {
    target.logger.log.error(`Reload failed: ${errorMessage(err)}`);
  }
  // A failed save was logged when it failed.
  await target.server.flushed().catch(() => {});
  if (!running.stopping) notify(`READY=1\nSTATUS=${status(target.server, target.listener)}`);
}

function status(server: MandosServer, listener: Listener): string {
  return `Serving ${server.clients().length} clients on port ${listener.port}`;
}

async function serve(args: ServerArgs, settings: ServerConfig, background: boolean, logger: AdjustableLogger): Promise<void> {
  const { configdir } = args;
  const log = logger.log;
  const configured = readClients(configdir, log);
  const statePath = join(settings.statedir, STATE_FILE);
  const restored = restoreState(configured, statePath, settings.restore, log);
  const { checkers, ready } = startCheckers(settings, configdir, log);
  const metrics = await metricsFor(settings, () => server.clients().map((c) => c.model));
  // In a fleet, etcd keeps the state; the local file only seeds it (create-only).
  // Loaded only for a fleet: etcd3 and gRPC take a while to load. The
  // secrets it seals by are clients.conf's as last read (reloads included).
  const fleet = settings.fleet
    ? new (await import("./fleet/etcd-store.js")).EtcdStore({ config: settings.fleet, log, events: metrics?.events, configSecret: (name): Buffer | undefined => server.configuration().configured.find((c) => c.name === name)?.secret })
    : null;
  const server: MandosServer = new MandosServer(configured, restored.records, restored.removed, {
    log,
    checkers,
    statePath,
    dbusPaths: settings.useDbus,
    events: metrics?.events,
    ...(fleet ? { store: fleet } : {}),
  });
  const notify = systemdNotifier((m) => log.debug(m));
  const socketFd = settings.socket ?? activationSocket();
  const running = stopOnSignals(server, notify, log);
  running.fleet = fleet;
  const reloadWith = onHangup();
  // Started while still root: clients.conf is root's to read.
  const source = process.getuid?.() === 0 ? startPrivilegedReader(process.argv.slice(2)) : readInProcess(args);
  await ready;

  const listener = (running.listener = await listen(settings, socketFd, server, log));
  await serveMetricsFor(settings, metrics, log);
  // Synchronously from the bind to start(): no connection is served before.
  if (background) writePidFile(log);
  giveUpRoot(log);
  const problem = stateDirectoryProblem(settings.statedir);
  if (problem !== null) throw new Error(problem);
  removeLeftovers(statePath, log);
  fleet?.attach(server);
  server.start();
  await fleet?.start();

  if (settings.useDbus) running.bus = await joinBus(server, log);
  if (running.stopping) return;
  if (settings.zeroconf) {
    running.announcement = await startZeroconf({
      name: settings.servicename,
      port: listener.port,
      ...(settings.interface !== null ? { interfaceName: settings.interface } : {}),
      useIpv6: settings.useIpv6,
      log,
    });
  }

  log.info(`Now listening on address ${JSON.stringify(settings.address ?? (settings.useIpv6 ? "::" : "0.0.0.0"))}, port ${listener.port}`);
  notify(`READY=1\nSTATUS=${status(server, listener)}\nMAINPID=${process.pid}`);
  if (background) reportReady();
  const target: ReloadTarget = { source, settings, server, listener, logger };
  // One reload at a time, in the order asked.
  let reloads = Promise.resolve();
  reloadWith(() => (reloads = reloads.then(() => reloadAndNotify(target, notify, running))));
}

async function main(): Promise<void> {
  const args = commandLine(process.argv.slice(2));
  if (args.help) return void process.stdout.write(USAGE + "\n");
  if (args.version) return void process.stdout.write(`mandos ${VERSION}\n`);
  // Client secrets are about to be read: keep them out of core files.
  protectMemory();
  if (args.check) {
    process.exitCode = selfTest() ? 0 : 1;
    return;
  }
  const { settings, level } = settingsOrExit(args);
  const background = isBackgroundChild();
  if (!settings.foreground && !background) return runInBackground();
  const logger = adjustableLogger((l) => openLog(settings, l, background), level);
  const log = logger.log;
  try {
    await serve(args, settings, background, logger);
  } catch (err) {
    log.error(errorMessage(err));
    // The background's log is syslog: whoever started it must see why too.
    if (background) process.stderr.write(`mandos: error: ${errorMessage(err)}\n`);
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`mandos: error: ${errorMessage(err)}\n`);
  process.exit(1);
});
