// Reload (SIGHUP, `systemctl reload mandos`): read mandos.conf and
// clients.conf again and serve what they say now, without a restart.
// Both files are read and checked before anything changes: a problem in
// either is one error line naming the file, line and problem, and the
// server goes on exactly as before. Unlike a start, which leaves a bad
// clients.conf section out and serves the rest (as Mandos does), a reload
// refuses the whole file: a typo must not remove a client that serves.
// The decisions are reconcile.ts's; the listening socket and connections
// in flight are left alone.
import { join } from "node:path";
import { UsageError } from "../cli/args.js";
import type { Level, Logger } from "../cli/log.js";
import { ConfigError, loadClientsConf, type ServerConfig } from "../config/index.js";
import type { Listener } from "./listener.js";
import type { ServerArgs } from "./options.js";
import { changedNames, reconcile, reconcileSettings } from "./reconcile.js";
import type { MandosServer } from "./server.js";
import { readSettings, toConfigured } from "./startup.js";
import type { ConfiguredClient } from "./state.js";

/** A logger whose level a reload may change (debuglevel). */
export interface AdjustableLogger {
  log: Logger;
  setLevel(level: Level): void;
}

export function adjustableLogger(open: (level: Level) => Logger, level: Level): AdjustableLogger {
  let inner = open(level);
  const log: Logger = {
    error: (m) => inner.error(m),
    warning: (m) => inner.warning(m),
    info: (m) => inner.info(m),
    debug: (m) => inner.debug(m),
    get debugEnabled() {
      return inner.debugEnabled;
    },
  };
  return { log, setLevel: (l) => (inner = open(l)) };
}

type Read = { settings: ServerConfig; level: Level; clients: ConfiguredClient[] } | { problem: string };

/** Both files, or the first problem in them as one line. */
function readBoth(args: ServerArgs): Read {
  let settings: ServerConfig;
  let level: Level;
  try {
    ({ settings, level } = readSettings(args));
  } catch (err) {
    if (err instanceof ConfigError) return { problem: err.message };
    // Mandos's checks after merging (and the debug level) name no line.
    if (err instanceof UsageError) return { problem: `${join(args.configdir, "mandos.conf")}: ${err.message}` };
    throw err;
  }
  const read = loadClientsConf(join(args.configdir, "clients.conf"));
  if (read.errors.length > 0) {
    for (const c of read.clients) c.secret.fill(0);
    const more = read.errors.length > 1 ? ` (and ${read.errors.length - 1} more problems)` : "";
    return { problem: read.errors[0]! + more };
  }
  return { settings, level, clients: read.clients.map(toConfigured) };
}

export interface ReloadTarget {
  args: ServerArgs;
  /** The settings the server runs with; a reload replaces those it can change. */
  settings: ServerConfig;
  server: MandosServer;
  listener: Listener;
  logger: AdjustableLogger;
  now?: () => number;
}

/** Reload once; false if a file had a problem and nothing changed. */
export function reload(t: ReloadTarget): boolean {
  const log = t.logger.log;
  const read = readBoth(t.args);
  if ("problem" in read) {
    log.error(`Reload refused, configuration unchanged: ${read.problem}`);
    return false;
  }
  const change = reconcileSettings(t.settings, read.settings);
  t.settings = change.settings;
  t.logger.setLevel(read.level);
  t.listener.configure(change.settings);
  if (change.needRestart.length > 0) {
    log.warning(`mandos.conf: ${change.needRestart.join(", ")} changed, but only a restart applies ${change.needRestart.length > 1 ? "them" : "it"}; running with the old value until then`);
  }
  if (change.applied.length > 0) log.info(`mandos.conf: now using the new ${change.applied.join(", ")}`);

  const plan = reconcile(t.server.configuration(), read.clients, (t.now ?? Date.now)());
  for (const r of plan.replaced) log.info(`Client ${r.name} has another key ID or fingerprint: replaced, its run-time state starts afresh`);
  for (const u of plan.changed) log.info(`Client ${u.name}: ${changedNames(u).join(", ")} changed in clients.conf`);
  t.server.applyConfiguration(plan);
  log.info(
    `Reloaded: ${t.server.clients().length} clients (${plan.added.length} added, ${plan.removed.length} removed, ` +
      `${plan.replaced.length} replaced, ${plan.changed.length} changed, ${plan.unchanged.length} unchanged)`,
  );
  return true;
}

/**
 * SIGHUP from now on. Until the server serves, a SIGHUP waits: systemd
 * sends none before READY=1, but a hand-made one must neither be lost nor
 * stop the server (Node's default, and Mandos's).
 */
export function onHangup(): (handler: () => void) => void {
  let handler: (() => void) | null = null;
  let pending = false;
  process.on("SIGHUP", () => {
    if (handler) handler();
    else pending = true;
  });
  return (h) => {
    handler = h;
    if (pending) {
      pending = false;
      h();
    }
  };
}
