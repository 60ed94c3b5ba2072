// The server's start-up steps, in the order main() takes them (see
// main.ts). Each does one thing and reports failure by throwing a one-line
// error, so main() reads as the list of steps and each can be tested alone.
import { accessSync, constants, readFileSync, renameSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { errorMessage, makeLogger, type Level, type Logger } from "../cli/log.js";
import { ConfigError, loadClientsConf, loadServerConf, overlayServerConfig, type ClientConfig, type ServerConfig } from "../config/index.js";
import { UsageError } from "../cli/args.js";
import { TlsError, checkPriority } from "../tls/index.js";
import { CheckerRunner } from "./checker.js";
import { CheckerLauncher, checkerIdentity } from "./checker-launcher.js";
import { syslogLogger } from "./daemon.js";
import { startListener, type Listener } from "./listener.js";
import { checkSettings, logLevel, type ServerArgs } from "./options.js";
import { dropPrivileges } from "./privileges.js";
import type { Checkers, MandosServer } from "./server.js";
import { StateFileError, readStateFile, restoreClients, type ConfiguredClient, type Restored, type StateFile } from "./state.js";
import { removeStaleTemporaries } from "./state-writer.js";
import type { ClientView, ServerMetrics } from "./metrics.js";
import { formatHostPort, serveMetrics } from "./metrics-http.js";
import { journalLogger, stderrIsJournal } from "../sys/journal.js";

/**
 * mandos.conf under the command line; throws UsageError or ConfigError.
 * GnuTLS checks the priority string here, at start and at each reload:
 * a session would find a bad one only at every handshake.
 */
export function readSettings(args: ServerArgs): { settings: ServerConfig; level: Level } {
  const path = join(args.configdir, "mandos.conf");
  const settings = overlayServerConfig(loadServerConf(path), args.overrides);
  checkSettings(settings);
  try {
    checkPriority(settings.priority);
  } catch (err) {
    if (!(err instanceof TlsError)) throw err;
    throw args.overrides.priority !== undefined ? new UsageError(`--priority: ${err.message}`) : new ConfigError(`${path}: priority: ${err.message}`);
  }
  return { settings, level: logLevel(settings.debuglevel, settings.debug) };
}

/**
 * Standard error in the foreground, syslog in the background, as Mandos;
 * journald's native protocol when standard error is the journal (under
 * systemd), so events carry their fields.
 */
export function openLog(settings: ServerConfig, level: Level, background: boolean): Logger {
  const tag = settings.servicename === "Mandos" ? "Mandos" : `Mandos (${settings.servicename})`;
  if (background) return syslogLogger(level, tag);
  const stderr = makeLogger("mandos", { level });
  return stderrIsJournal() ? journalLogger("mandos", level, stderr) : stderr;
}

/**
 * Metrics if mandos.conf asks for them (metrics_address); gauges read
 * `clients` at each scrape. prom-client is loaded only then: it costs
 * 100-150 ms of start-up.
 */
export async function metricsFor(settings: ServerConfig, clients: () => Iterable<ClientView>): Promise<ServerMetrics | null> {
  if (settings.metricsAddress === null) return null;
  const { createMetrics } = await import("./metrics.js");
  return createMetrics(clients);
}

/** The metrics endpoint, bound like the listening socket: before root is given up. */
export async function serveMetricsFor(settings: ServerConfig, metrics: ServerMetrics | null, log: Logger): Promise<void> {
  if (settings.metricsAddress === null || metrics === null) return;
  const served = await serveMetrics(settings.metricsAddress, metrics.registry, log);
  log.info(`Serving metrics on http://${formatHostPort(served.address)}/metrics`);
}

export function toConfigured(c: ClientConfig): ConfiguredClient {
  return { ...c, keyId: c.keyId ?? "", fingerprint: c.fingerprint ?? "" };
}

/** clients.conf: its bad sections are logged and left out, as Mandos does. */
export function readClients(configdir: string, log: Logger): ConfiguredClient[] {
  const clientsConf = loadClientsConf(join(configdir, "clients.conf"));
  for (const e of clientsConf.errors) log.error(e);
  return clientsConf.clients.map(toConfigured);
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

/** The clients as clients.conf and the saved state (unless --no-restore) make them. */
export function restoreState(configured: readonly ConfiguredClient[], statePath: string, restore: boolean, log: Logger): Restored {
  const saved = restore ? loadState(statePath, log) : null;
  const restored = restoreClients(configured, saved, Date.now(), (l, m) => log[l](m));
  for (const r of restored.records) {
    log.debug(`Creating client ${JSON.stringify(r.name)}`);
    log.debug(`  Key ID: ${r.keyId}`);
    log.debug(`  Fingerprint: ${r.fingerprint}`);
  }
  return restored;
}

export interface CheckerStart {
  checkers: Checkers;
  /** Settles once checkers can run as their user; rejects with a one-line reason. */
  ready: Promise<void>;
}

/**
 * Checkers as checker_user: through a launcher started now, while still
 * root. Without root they can only run as the server's own user.
 */
export function startCheckers(settings: ServerConfig, configdir: string, log: Logger, passwd = "/etc/passwd"): CheckerStart {
  let who;
  try {
    who = checkerIdentity(settings.checkerUser, readFileSync(passwd, "utf8"));
  } catch (err) {
    throw new Error(`${join(configdir, "mandos.conf")}: ${errorMessage(err)}`);
  }
  const showOutput = settings.debug;
  const uid = process.getuid?.();
  if (uid !== 0) {
    if (uid !== who.uid) log.warning(`Checkers run as this server's user: only root can run them as ${who.user ?? `uid ${who.uid}`}`);
    return { checkers: new CheckerRunner({ showOutput, warn: (m) => log.warning(m) }), ready: Promise.resolve() };
  }
  const launcher = CheckerLauncher.start({ who, showOutput, warn: (m) => log.warning(m), lost: (m) => log.error(m) });
  return { checkers: launcher, ready: launcher.ready };
}

/**
 * The listening socket systemd passed (mandos.socket), as sd_listen_fds()
 * finds it: LISTEN_PID is us and LISTEN_FDS counts descriptors from 3.
 * The variables are removed so checkers do not see them.
 */
export function activationSocket(env = process.env): number | null {
  const pid = env.LISTEN_PID;
  const fds = Number(env.LISTEN_FDS);
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  return pid === String(process.pid) && fds >= 1 ? 3 : null;
}

/** The listening socket: the one passed in, or one bound as the settings say. */
export function listen(settings: ServerConfig, socketFd: number | null, server: MandosServer, log: Logger): Promise<Listener> {
  return startListener({
    ...(settings.address !== null ? { address: settings.address } : {}),
    ...(settings.port !== null ? { port: settings.port } : {}),
    ...(settings.interface !== null ? { interfaceName: settings.interface } : {}),
    ...(socketFd !== null ? { socketFd } : {}),
    useIpv6: settings.useIpv6,
    priority: settings.priority,
    maxConnectionsPerAddress: settings.maxConnectionsPerAddress,
    events: server.events,
    handler: server,
    log,
  });
}

/** Root is needed no more once the socket is bound and the checker launcher started. */
export function giveUpRoot(log: Logger): void {
  dropPrivileges(log);
}

/** The user this process runs as, for messages: "_mandos (uid 104)". */
function currentUser(): string {
  const uid = process.getuid?.() ?? -1;
  try {
    return `${userInfo().username} (uid ${uid})`;
  } catch {
    return `uid ${uid}`;
  }
}

/**
 * Whether the server, as the user it now runs as, can save its state:
 * null if so, else one line naming the directory and the user. Without
 * this, every save would fail and no change could be acknowledged.
 */
export function stateDirectoryProblem(dir: string, access: (path: string, mode: number) => void = accessSync): string | null {
  try {
    access(dir, constants.W_OK | constants.X_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
    return `the state directory ${dir} is not writable by user ${currentUser()}: ${code}`;
  }
}

/** Temporary files of saves cut short (kill -9 mid-write) go before the first save. */
export function removeLeftovers(statePath: string, log: Logger): void {
  try {
    for (const name of removeStaleTemporaries(statePath)) log.info(`Removed ${name}, left by an interrupted save`);
  } catch (err) {
    log.warning(`Could not remove temporary files beside ${statePath}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}
