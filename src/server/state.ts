// Persistent client state, kept in <statedir>/clients.json and rewritten
// atomically on every change (temporary file, fsync, rename, fsync of the
// directory), so a kill -9 at any moment leaves either the old or the new
// state, never a torn one. Mandos saves a pickle only at exit; we keep the
// same information and restore it with the same rules:
// - A client removed from clients.conf is dropped; a new one starts fresh.
// - For each setting, a value that changed in clients.conf since the state
//   was saved wins; otherwise the saved (possibly run-time changed) value.
// - A secret changed at run time is stored encrypted with a key derived from
//   the clients.conf secret: if that secret changed, the old one is lost and
//   the new clients.conf secret is used (as Mandos does with OpenPGP).
// - An enabled client past its expiry stays enabled only if its last
//   checker succeeded; its expiry then restarts from now.
// One refinement: a client removed over D-Bus stays removed after a restart
// (as in Mandos) only while its clients.conf section is unchanged.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { RUNTIME_SETTINGS, type ClientRecord, type ClientSettings, type LogLevel } from "./client-model.js";

export const STATE_FILE = "clients.json";
const FORMAT = "mandos-ts state";
const VERSION = 1;

/** A clients.conf section as the server uses it (from src/config's ClientConfig). */
export interface ConfiguredClient extends ClientSettings {
  secret: Buffer;
  enabled: boolean;
}

/** The clients.conf values a restart compares against (no secret). */
export type ConfigSnapshot = Omit<ConfiguredClient, "secret">;

export type StoredSecret = { source: "config" } | { source: "runtime"; salt: string; iv: string; tag: string; data: string };

interface StoredClient extends Omit<ClientRecord, "secret"> {
  secret: StoredSecret;
}

export interface StateFile {
  format: typeof FORMAT;
  version: number;
  /** clients.conf as it was when this state was saved, including removed clients. */
  config: ConfigSnapshot[];
  clients: StoredClient[];
  /** Clients removed over D-Bus. */
  removed: string[];
}

export class StateFileError extends Error {
  override name = "StateFileError";
}

export const SETTING_KEYS = ["keyId", "fingerprint", ...RUNTIME_SETTINGS, "enabled"] as const;

export function snapshot(c: ConfiguredClient): ConfigSnapshot {
  const out: Record<string, unknown> = { name: c.name };
  for (const k of SETTING_KEYS) out[k] = c[k];
  return out as unknown as ConfigSnapshot;
}

export function sameConfig(a: ConfigSnapshot, b: ConfigSnapshot): boolean {
  return SETTING_KEYS.every((k) => a[k] === b[k]);
}

// ---- Secrets changed at run time -----------------------------------------

function secretKey(configSecret: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", configSecret, salt, "mandos-ts runtime secret", 32));
}

export function sealSecret(secret: Buffer, configSecret: Buffer): StoredSecret {
  if (secret.equals(configSecret)) return { source: "config" };
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = secretKey(configSecret, salt);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const data = Buffer.concat([cipher.update(secret), cipher.final()]);
  key.fill(0);
  return {
    source: "runtime",
    salt: salt.toString("base64"),
    iv: iv.toString("base64"),
    tag: cipher.getAuthTag().toString("base64"),
    data: data.toString("base64"),
  };
}

/** The stored secret, or null if it cannot be opened with this clients.conf secret. */
export function openSecret(stored: StoredSecret, configSecret: Buffer): Buffer | null {
  if (stored.source === "config") return Buffer.from(configSecret);
  try {
    const key = secretKey(configSecret, Buffer.from(stored.salt, "base64"));
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(stored.iv, "base64"));
    decipher.setAuthTag(Buffer.from(stored.tag, "base64"));
    const out = Buffer.concat([decipher.update(Buffer.from(stored.data, "base64")), decipher.final()]);
    key.fill(0);
    return out;
  } catch {
    return null;
  }
}

// ---- Reading and writing ---------------------------------------------------

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isNumOrNull = (v: unknown) => v === null || isNum(v);
const isStr = (v: unknown): v is string => typeof v === "string";
const isBool = (v: unknown): v is boolean => typeof v === "boolean";

function checkSettings(o: Record<string, unknown>, where: string): void {
  const fields: [string, (v: unknown) => boolean][] = [
    ["name", isStr],
    ["keyId", isStr],
    ["fingerprint", isStr],
    ["host", isStr],
    ["checker", isStr],
    ["timeoutMs", isNum],
    ["extendedTimeoutMs", isNum],
    ["intervalMs", isNum],
    ["approvalDelayMs", isNum],
    ["approvalDurationMs", isNum],
    ["approvedByDefault", isBool],
    ["enabled", isBool],
  ];
  for (const [k, ok] of fields) if (!ok(o[k])) throw new StateFileError(`${where}: bad or missing "${k}"`);
}

/** Validate parsed JSON as a state file; throws StateFileError naming the problem. */
export function parseStateFile(text: string): StateFile {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(`not JSON (${(err as Error).message})`);
  }
  const d = data as Partial<StateFile> | null;
  if (!d || typeof d !== "object" || d.format !== FORMAT) throw new StateFileError("not a mandos-ts state file");
  if (d.version !== VERSION) throw new StateFileError(`unsupported version ${String(d.version)}`);
  if (!Array.isArray(d.config) || !Array.isArray(d.clients) || !Array.isArray(d.removed)) {
    throw new StateFileError("missing config, clients or removed list");
  }
  d.config.forEach((c, i) => checkSettings(c as unknown as Record<string, unknown>, `config[${i}]`));
  d.clients.forEach((c, i) => {
    const o = c as unknown as Record<string, unknown>;
    const where = `clients[${i}]`;
    checkSettings(o, where);
    for (const k of ["lastEnabled", "lastCheckedOK", "lastCheckerSignal", "lastApprovalRequest", "expires"]) {
      if (!isNumOrNull(o[k])) throw new StateFileError(`${where}: bad "${k}"`);
    }
    if (!isNum(o.created) || !isNum(o.lastCheckerStatus)) throw new StateFileError(`${where}: bad "created" or "lastCheckerStatus"`);
    const s = o.secret as Record<string, unknown> | undefined;
    const sealedOk = s?.source === "runtime" && [s.salt, s.iv, s.tag, s.data].every(isStr);
    if (!(s?.source === "config" || sealedOk)) throw new StateFileError(`${where}: bad "secret"`);
  });
  if (!d.removed.every(isStr)) throw new StateFileError("bad removed list");
  return d as StateFile;
}

/**
 * Read the state file: null if there is none; throws StateFileError (one
 * line, naming the file) if it is unreadable or malformed.
 */
export function readStateFile(path: string): StateFile | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new StateFileError(`${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseStateFile(text);
  } catch (err) {
    throw new StateFileError(`${path}: ${(err as Error).message}`);
  }
}

/** The state to save: every configured client's snapshot, live clients' records. */
export function buildStateFile(configured: readonly ConfiguredClient[], live: readonly ClientRecord[], removed: Iterable<string>): StateFile {
  const byName = new Map(configured.map((c) => [c.name, c]));
  return {
    format: FORMAT,
    version: VERSION,
    config: configured.map(snapshot),
    clients: live.map((r) => {
      const { secret, ...rest } = r;
      const conf = byName.get(r.name);
      return { ...rest, secret: conf ? sealSecret(secret, conf.secret) : { source: "config" as const } };
    }),
    removed: [...removed],
  };
}

export function serializeState(state: StateFile): string {
  return JSON.stringify(state, null, 1) + "\n";
}

export interface RestoreLog {
  (level: LogLevel, message: string): void;
}

export interface Restored {
  records: ClientRecord[];
  /** Clients still removed (configured, removed over D-Bus, section unchanged). */
  removed: string[];
}

/** A client as a fresh start (or a reload that adds it) makes it: no history. */
export function freshRecord(c: ConfiguredClient, now: number): ClientRecord {
  return {
    ...c,
    secret: Buffer.from(c.secret),
    created: now,
    lastEnabled: c.enabled ? now : null,
    lastCheckedOK: null,
    lastCheckerStatus: -2,
    lastCheckerSignal: null,
    lastApprovalRequest: null,
    expires: c.enabled ? now + c.timeoutMs : null,
  };
}

/**
 * Merge clients.conf with saved state (null: none, or --no-restore), in
 * clients.conf order. Pure apart from the log callback.
 */
export function restoreClients(configured: readonly ConfiguredClient[], saved: StateFile | null, now: number, log: RestoreLog): Restored {
  const savedClients = new Map((saved?.clients ?? []).map((c) => [c.name, c]));
  const savedConfig = new Map((saved?.config ?? []).map((c) => [c.name, c]));
  const removedBefore = new Set(saved?.removed ?? []);
  const records: ClientRecord[] = [];
  const removed: string[] = [];
  for (const conf of configured) {
    const stored = savedClients.get(conf.name);
    const oldConf = savedConfig.get(conf.name);
    if (!stored) {
      if (removedBefore.has(conf.name) && oldConf && sameConfig(oldConf, snapshot(conf))) {
        removed.push(conf.name);
        continue;
      }
      records.push(freshRecord(conf, now));
      continue;
    }
    const { secret: storedSecret, ...rest } = stored;
    const r: ClientRecord = { ...rest, name: conf.name, secret: Buffer.alloc(0) };
    // A setting changed in clients.conf since the save wins over the saved value.
    for (const k of SETTING_KEYS) {
      if (!oldConf || oldConf[k] !== conf[k]) (r as unknown as Record<string, unknown>)[k] = conf[k];
    }
    const opened = openSecret(storedSecret, conf.secret);
    if (opened === null) log("debug", `Failed to decrypt ${conf.name} old secret`);
    r.secret = opened ?? Buffer.from(conf.secret);
    if (r.enabled) {
      if (r.expires === null) {
        // Enabled by a clients.conf change while it was disabled.
        r.expires = now + r.timeoutMs;
        r.lastEnabled ??= now;
      } else if (now >= r.expires) {
        if (r.lastCheckedOK === null) {
          log("warning", `disabling client ${r.name} - Client never performed a successful checker`);
          r.enabled = false;
        } else if (r.lastCheckerStatus !== 0) {
          log("warning", `disabling client ${r.name} - Client last checker failed with error code ${r.lastCheckerStatus}`);
          r.enabled = false;
        } else {
          r.expires = now + r.timeoutMs;
          log("debug", `Last checker succeeded, keeping ${r.name} enabled`);
        }
      }
    }
    if (!r.enabled) {
      // As Mandos's Client.__init__ does for a disabled client.
      r.lastEnabled = null;
      r.expires = null;
    }
    records.push(r);
  }
  return { records, removed };
}
