// mandos: give encrypted passwords to authenticated Mandos clients.
// Start-up order follows Mandos: settings (command line over mandos.conf),
// clients.conf, saved state, the listening socket, then drop root, then
// D-Bus and Zeroconf; systemd is told READY=1 when all of that is done.
import { join } from "node:path";
import { renameSync } from "node:fs";
import { UsageError, VERSION } from "../cli/args.js";
import { makeLogger, errorMessage, type Logger } from "../cli/log.js";
import { loadClientsConf, loadServerConf, overlayServerConfig, ConfigError, type ClientConfig, type ServerConfig } from "../config/index.js";
import { CheckerRunner } from "./checker.js";
import { isBackgroundChild, reportReady, runInBackground, syslogLogger, writePidFile } from "./daemon.js";
import { startListener, type Listener } from "./listener.js";
import { dropPrivileges } from "./privileges.js";
import { systemdNotifier } from "./notify.js";
import { USAGE, checkSettings, logLevel, parseServerArgs } from "./options.js";
import { MandosServer } from "./server.js";
import { STATE_FILE, StateFileError, readStateFile, restoreClients, type ConfiguredClient, type StateFile } from "./state.js";
import { joinBus, type BusHandle } from "./bus.js";
import { selfTest } from "./selftest.js";
import { protectMemory } from "../sys/no-core.js";
import { startZeroconf, type Announcement } from "./zeroconf.js";

function usageError(msg: string): never {
  process.stderr.write(`${USAGE.split("\n")[0]}\nmandos: error: ${msg}\n`);
  process.exit(2);
}

export function toConfigured(c: ClientConfig): ConfiguredClient {
  return { ...c, keyId: c.keyId ?? "", fingerprint: c.fingerprint ?? "" };
}

/** Saved state, or null; a bad file is reported in one line and set aside. */
function loadState(path: string, log: Logger): StateFile | null {
  try {
    const state = readStateFile(path);
    if (state === null) log.warning(`Could not load persistent state: no file ${path}`);
    return state;
  } catch (err) {
    const aside = `${path}.bad`;
    let note = "";
    try {
      renameSync(path, aside);
      note = ` (moved to ${aside})`;
    } catch {
      // Leave it; it will be overwritten by the next save.
    }
    log.error(`Ignoring saved state: ${err instanceof StateFileError ? err.message : errorMessage(err)}${note}`);
    return null;
  }
}

/**
 * The listening socket systemd passed (mandos.socket), as sd_listen_fds()
 * finds it: LISTEN_PID is us and LISTEN_FDS counts descriptors from 3.
 * The variables are removed so checkers do not see them.
 */
function activationSocket(env = process.env): number | null {
  const pid = env.LISTEN_PID;
  const fds = Number(env.LISTEN_FDS);
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  return pid === String(process.pid) && fds >= 1 ? 3 : null;
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseServerArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) usageError(err.message);
    throw err;
  }
  if (args.help) {
    process.stdout.write(USAGE + "\n");
    return;
  }
  if (args.version) {
    process.stdout.write(`mandos ${VERSION}\n`);
    return;
  }
  // Client secrets are about to be read: keep them out of core files.
  protectMemory();
  if (args.check) {
    process.exitCode = selfTest() ? 0 : 1;
    return;
  }

  let settings: ServerConfig;
  try {
    settings = overlayServerConfig(loadServerConf(join(args.configdir, "mandos.conf")), args.overrides);
    checkSettings(settings);
  } catch (err) {
    if (err instanceof UsageError) usageError(err.message);
    if (err instanceof ConfigError) {
      process.stderr.write(`mandos: error: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  let level;
  try {
    level = logLevel(settings.debuglevel, settings.debug);
  } catch (err) {
    usageError((err as Error).message);
  }

  const background = isBackgroundChild();
  if (!settings.foreground && !background) return runInBackground();
  const tag = settings.servicename === "Mandos" ? "Mandos" : `Mandos (${settings.servicename})`;
  const log: Logger = background ? syslogLogger(level, tag) : makeLogger("mandos", { level });

  const clientsConf = loadClientsConf(join(args.configdir, "clients.conf"));
  for (const e of clientsConf.errors) log.error(e);
  const configured = clientsConf.clients.map(toConfigured);

  const statePath = join(settings.statedir, STATE_FILE);
  const saved = settings.restore ? loadState(statePath, log) : null;
  const restored = restoreClients(configured, saved, Date.now(), (l, m) => log[l](m));
  for (const r of restored.records) {
    log.debug(`Creating client ${JSON.stringify(r.name)}`);
    log.debug(`  Key ID: ${r.keyId}`);
    log.debug(`  Fingerprint: ${r.fingerprint}`);
  }

  const checkers = new CheckerRunner({ showOutput: settings.debug, warn: (m) => log.warning(m) });
  const server = new MandosServer(configured, restored.records, restored.removed, {
    log,
    checkers,
    statePath,
    dbusPaths: settings.useDbus,
  });

  const notify = systemdNotifier((m) => log.debug(m));
  const socketFd = settings.socket ?? activationSocket();
  // From here on a signal stops the server cleanly, even mid-start-up.
  let listener: Listener | null = null;
  let bus: BusHandle | null = null;
  let announcement: Announcement | null = null;
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.debug(`Server exiting (${why})`);
    notify("STOPPING=1");
    server.stop();
    await server.flushed();
    await announcement?.stop().catch(() => {});
    await listener?.close().catch(() => {});
    bus?.close();
    process.exit(0);
  };
  for (const sig of ["SIGTERM", "SIGHUP", "SIGINT"] as const) process.on(sig, () => void shutdown(sig));

  let serving: Listener;
  try {
    serving = listener = await startListener({
      ...(settings.address !== null ? { address: settings.address } : {}),
      ...(settings.port !== null ? { port: settings.port } : {}),
      ...(settings.interface !== null ? { interfaceName: settings.interface } : {}),
      ...(socketFd !== null ? { socketFd } : {}),
      useIpv6: settings.useIpv6,
      priority: settings.priority,
      handler: server,
      log,
    });
  } catch (err) {
    log.error(errorMessage(err));
    process.exit(1);
  }
  // Synchronously after the bind: no connection is served before this.
  if (background) writePidFile(log);
  dropPrivileges(log);
  server.start();

  if (settings.useDbus) bus = await joinBus(server, log);
  if (stopping) return;

  if (settings.zeroconf) {
    announcement = await startZeroconf({
      name: settings.servicename,
      port: serving.port,
      ...(settings.interface !== null ? { interfaceName: settings.interface } : {}),
      useIpv6: settings.useIpv6,
      log,
    });
  }

  log.info(`Now listening on address ${JSON.stringify(settings.address ?? (settings.useIpv6 ? "::" : "0.0.0.0"))}, port ${serving.port}`);
  notify(`READY=1\nSTATUS=Serving ${server.clients().length} clients on port ${serving.port}\nMAINPID=${process.pid}`);
  if (background) reportReady();
}

main().catch((err: unknown) => {
  process.stderr.write(`mandos: error: ${errorMessage(err)}\n`);
  process.exit(1);
});
