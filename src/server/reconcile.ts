// What a reload (SIGHUP, `systemctl reload mandos`) changes: the running
// clients and settings against a freshly parsed clients.conf and
// mandos.conf. Pure decisions; the server applies them
// (MandosServer.applyConfiguration) and reload.ts does the reading.
//
// The rules are those of a restart with saved state (state.ts), minus the
// restart: a setting whose clients.conf value changed since it was last read
// is applied; a setting changed only over D-Bus keeps its D-Bus value; and a
// client with no change keeps everything it has at run time (timers,
// enabled state, running checker, pending approvals, LastCheckedOK).
//
// A section whose key id or fingerprint changed is another machine, or the
// same one with new keys: its runtime state belonged to the old key, a
// request the old key has pending must not get the secret, and Mandos's
// D-Bus API declares KeyID and Fingerprint constant for an object's life.
// So it is replaced: the old object goes (ClientRemoved) and a fresh one
// comes (ClientAdded) at the same path.
import { isDeepStrictEqual } from "node:util";
import type { ClientModel, ClientRecord } from "./client-model.js";
import type { ServerConfig } from "../config/index.js";
import type { FleetConfig } from "../config/server.js";
import { SETTING_KEYS, freshRecord, sameConfig, snapshot, type ConfiguredClient } from "./state.js";

/** clients.conf settings a reload changes in place (besides the secret): all but the identity. */
type IdentityKey = "keyId" | "fingerprint";
export const UPDATABLE_KEYS = SETTING_KEYS.filter((k): k is Exclude<(typeof SETTING_KEYS)[number], IdentityKey> => k !== "keyId" && k !== "fingerprint");
export type UpdatableKey = (typeof UPDATABLE_KEYS)[number];

export interface ClientUpdate {
  name: string;
  /** Only the settings whose clients.conf value changed, with their new values. */
  settings: Partial<Pick<ConfiguredClient, UpdatableKey>>;
  /** The new clients.conf secret, or null if it did not change. */
  secret: Buffer | null;
}

/** What the server runs now, as reconcile() needs it. */
export interface RunningConfiguration {
  /** clients.conf as last read. */
  configured: readonly ConfiguredClient[];
  /** The clients served now. */
  records: readonly ClientRecord[];
  /** Clients removed over D-Bus (kept out while their section is unchanged). */
  removed: ReadonlySet<string>;
}

export interface Reconciliation {
  /** The new clients.conf: what the state file records from now on. */
  configured: ConfiguredClient[];
  /** New sections (or a D-Bus-removed client whose section changed): fresh records. */
  added: ClientRecord[];
  /** Names of served clients whose section is gone. */
  removed: string[];
  /** Served clients whose key id or fingerprint changed: fresh records under the same name. */
  replaced: ClientRecord[];
  changed: ClientUpdate[];
  unchanged: string[];
  /** Clients removed over D-Bus that stay removed. */
  removedOverDbus: string[];
}

function differences(before: ConfiguredClient, after: ConfiguredClient): ClientUpdate {
  const settings: Record<string, unknown> = {};
  for (const k of UPDATABLE_KEYS) if (before[k] !== after[k]) settings[k] = after[k];
  return { name: after.name, settings, secret: before.secret.equals(after.secret) ? null : after.secret };
}

/** Running clients against the new clients.conf; `now` dates what is created. */
export function reconcile(running: RunningConfiguration, next: readonly ConfiguredClient[], now: number): Reconciliation {
  const live = new Map(running.records.map((r) => [r.name, r]));
  const before = new Map(running.configured.map((c) => [c.name, c]));
  const out: Reconciliation = { configured: [...next], added: [], removed: [], replaced: [], changed: [], unchanged: [], removedOverDbus: [] };
  const names = new Set<string>();
  for (const conf of next) {
    names.add(conf.name);
    const record = live.get(conf.name);
    // A record carries every clients.conf field: the fallback if the old section is unknown.
    const old = before.get(conf.name) ?? (record as ConfiguredClient | undefined);
    if (!record) {
      if (running.removed.has(conf.name) && old && sameConfig(snapshot(old), snapshot(conf))) out.removedOverDbus.push(conf.name);
      else out.added.push(freshRecord(conf, now));
    } else if (old!.keyId !== conf.keyId || old!.fingerprint !== conf.fingerprint) {
      out.replaced.push(freshRecord(conf, now));
    } else {
      const update = differences(old!, conf);
      if (Object.keys(update.settings).length === 0 && update.secret === null) out.unchanged.push(conf.name);
      else out.changed.push(update);
    }
  }
  for (const name of live.keys()) if (!names.has(name)) out.removed.push(name);
  return out;
}

/**
 * Apply one client's clients.conf changes through the operations D-Bus
 * uses, so each has its run-time meaning: a new timeout moves the expiry, a
 * new interval reschedules the checker, enabled starts or stops the client.
 */
export function applyUpdate(model: ClientModel, now: number, update: ClientUpdate): void {
  if (update.secret !== null) model.setSecret(update.secret);
  const s = update.settings;
  for (const key of UPDATABLE_KEYS) {
    if (key === "enabled" || s[key] === undefined) continue;
    if (key === "timeoutMs") model.setTimeout(now, s.timeoutMs!);
    else if (key === "intervalMs") model.setInterval(now, s.intervalMs!);
    else model.setSetting(now, key, s[key]!);
  }
  // Last, so that an enabled client's first checker uses the new interval.
  if (s.enabled === true) model.enable(now);
  if (s.enabled === false) model.disable(now);
}

/** The clients.conf names of an update's changes, for the log (never a value). */
export function changedNames(update: ClientUpdate): string[] {
  const names = Object.keys(update.settings).map((k) => confName(k.replace(/Ms$/, "")));
  return update.secret === null ? names : [...names, "secret"];
}

/** mandos.conf settings a running server takes; the others wait for a restart. */
const AT_RUNTIME: ReadonlySet<keyof ServerConfig> = new Set(["debuglevel", "priority", "maxConnectionsPerAddress"] as const);

export interface SettingsChange {
  /** The settings to run with: the running ones with the new runtime values. */
  settings: ServerConfig;
  /** Which runtime settings changed, as mandos.conf names them. */
  applied: string[];
  /** Changed settings that need a restart (kept as they run), as mandos.conf names them. */
  needRestart: string[];
}

/** mandos.conf's name of a setting: maxConnectionsPerAddress → max_connections_per_address. */
function confName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** mandos.conf's names of the etcd_* options, by FleetConfig field. */
const FLEET_OPTIONS: Record<keyof FleetConfig, string> = {
  endpoints: "etcd_endpoints",
  prefix: "etcd_prefix",
  ca: "etcd_ca",
  cert: "etcd_cert",
  key: "etcd_key",
  graceMs: "etcd_grace",
  leaseTtlMs: "etcd_lease_ttl",
};

/** The etcd_* options that differ (etcd_endpoints alone turns the fleet on or off). */
function fleetNames(running: FleetConfig | null, next: FleetConfig | null): string[] {
  if (running === null || next === null) return [FLEET_OPTIONS.endpoints];
  return (Object.keys(FLEET_OPTIONS) as (keyof FleetConfig)[]).filter((k) => !isDeepStrictEqual(running[k], next[k])).map((k) => FLEET_OPTIONS[k]);
}

/**
 * The running settings against the newly read ones (command line overlaid
 * on both). Values are compared by content: two readings of the same file
 * give equal, not identical, objects (metrics_address, the etcd options).
 */
export function reconcileSettings(running: ServerConfig, next: ServerConfig): SettingsChange {
  const settings: ServerConfig = { ...running };
  const applied: string[] = [];
  const needRestart: string[] = [];
  for (const key of Object.keys(next) as (keyof ServerConfig)[]) {
    if (isDeepStrictEqual(next[key], running[key])) continue;
    if (AT_RUNTIME.has(key)) {
      (settings as unknown as Record<string, unknown>)[key] = next[key];
      applied.push(confName(key));
    } else if (key === "fleet") needRestart.push(...fleetNames(running.fleet, next.fleet));
    else needRestart.push(confName(key));
  }
  return { settings, applied, needRestart };
}
