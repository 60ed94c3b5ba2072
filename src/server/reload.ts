// Reload (SIGHUP, `systemctl reload mandos`): read mandos.conf and
// clients.conf again and serve what they say now, without a restart.
// Both files are read and checked before anything changes: a problem in
// either is one error line naming the file, line and problem, and the
// server goes on exactly as before. Unlike a start, which leaves a bad
// clients.conf section out and serves the rest (as Mandos does), a reload
// refuses the whole file: a typo must not remove a client that serves.
// The decisions are reconcile.ts's; the listening socket and connections
// in flight are left alone.
import type { Level, Logger } from "../cli/log.js";
import type { ServerConfig } from "../config/index.js";
import type { ConfigurationSource } from "./config-reader.js";
import type { Listener } from "./listener.js";
import { changedNames, reconcile, reconcileSettings } from "./reconcile.js";
import type { MandosServer } from "./server.js";

/** A logger whose level a reload may change (debuglevel). */
export interface AdjustableLogger {
  log: Logger;
  setLevel(level: Level): void;
}

export function adjustableLogger(open: (level: Level) => Logger, level: Level): AdjustableLogger {
  let inner = open(level);
  const log: Logger = {
    error: (m, fields) => inner.error(m, fields),
    warning: (m, fields) => inner.warning(m, fields),
    info: (m, fields) => inner.info(m, fields),
    debug: (m, fields) => inner.debug(m, fields),
    get debugEnabled() {
      return inner.debugEnabled;
    },
  };
  return { log, setLevel: (l) => (inner = open(l)) };
}

export interface ReloadTarget {
  /** Reads both files (as root, when the server started as root). */
  source: ConfigurationSource;
  /** The settings the server runs with; a reload replaces those it can change. */
  settings: ServerConfig;
  server: MandosServer;
  listener: Listener;
  logger: AdjustableLogger;
  now?: () => number;
}

/** Reload once; false if a file had a problem and nothing changed. */
export async function reload(t: ReloadTarget): Promise<boolean> {
  const log = t.logger.log;
  const read = await t.source.read();
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
