// What the servers of a fleet share about each client, as one JSON value
// per client in etcd, and the pure rules for it: encoding a client model's
// state, reading it back (checked field by field), and merging a change
// made here with one another server committed first.
//
// The checker command is not shared: it runs as the checker user on
// whichever server holds the client's lock, so one taken from etcd would
// let anyone who can write there run commands on every server. Each server
// keeps clients.conf's (and a D-Bus change to it stays on that server).
//
// Merging is a three-way merge per field: the fields this server changed
// since the value it last saw committed (the base) win, every other field
// is taken from the newer committed value. Retried as a compare-and-swap on
// the key's revision, two servers changing one client at once both get
// their change in, in etcd's order, and neither is lost.
import { SHARED_FIELDS, type Approval, type ClientModel, type SharedFields } from "../client-model.js";
import type { StoredSecret } from "../state.js";

/** The fields shared: all but the checker command. */
const FIELDS = SHARED_FIELDS.filter((k): k is Exclude<(typeof SHARED_FIELDS)[number], "checker"> => k !== "checker");

export interface SharedState extends Omit<SharedFields, "checker"> {
  approval: Approval | null;
  /** The secret: clients.conf's, or one set over D-Bus sealed with clients.conf's. */
  secret: StoredSecret;
}

const KEYS = [...FIELDS, "approval", "secret"] as const;
type Key = (typeof KEYS)[number];

export class SharedStateError extends Error {
  override name = "SharedStateError";
}

/** A client model's shared state; `secret` is its (already sealed) secret. */
export function encodeShared(model: ClientModel, secret: StoredSecret): SharedState {
  const out: Record<string, unknown> = {};
  for (const k of FIELDS) out[k] = model.record[k];
  out.approval = model.approval;
  out.secret = secret;
  return out as unknown as SharedState;
}

/** The JSON stored in etcd: keys always in one order, so equal states are equal text. */
export function serializeShared(s: SharedState): string {
  const out: Record<string, unknown> = {};
  for (const k of KEYS) out[k] = s[k];
  return JSON.stringify(out);
}

export function sameShared(a: SharedState, b: SharedState): boolean {
  return serializeShared(a) === serializeShared(b);
}

const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const numOrNull = (v: unknown) => v === null || isNum(v);
const isStr = (v: unknown) => typeof v === "string";
const isBool = (v: unknown) => typeof v === "boolean";

const CHECKS: Record<Key, (v: unknown) => boolean> = {
  enabled: isBool,
  lastEnabled: numOrNull,
  lastCheckedOK: numOrNull,
  lastCheckerStatus: isNum,
  lastCheckerSignal: numOrNull,
  lastApprovalRequest: numOrNull,
  expires: numOrNull,
  host: isStr,
  timeoutMs: isNum,
  extendedTimeoutMs: isNum,
  intervalMs: isNum,
  approvalDelayMs: isNum,
  approvalDurationMs: isNum,
  approvedByDefault: isBool,
  approval: (v) => v === null || (typeof v === "object" && isBool((v as Approval).value) && isNum((v as Approval).until)),
  secret: (v) => {
    const s = v as Record<string, unknown> | null;
    return s?.source === "config" || (s?.source === "runtime" && [s.salt, s.iv, s.tag, s.data].every(isStr));
  },
};

/** Parse a stored value; throws SharedStateError naming the key and field. */
export function parseShared(text: string, key: string): SharedState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new SharedStateError(`${key}: not JSON`);
  }
  if (!data || typeof data !== "object") throw new SharedStateError(`${key}: not an object`);
  const o = data as Record<string, unknown>;
  for (const k of KEYS) if (!CHECKS[k](o[k])) throw new SharedStateError(`${key}: bad or missing "${k}"`);
  return o as unknown as SharedState;
}

/**
 * `local` holds this server's uncommitted changes on top of `base`; `remote`
 * is newer and committed. The result: `remote` with those changes applied.
 * A client disabled by either side has no expiry.
 */
export function mergeShared(base: SharedState, local: SharedState, remote: SharedState): SharedState {
  const out: Record<string, unknown> = {};
  for (const k of KEYS) {
    const mine = JSON.stringify(local[k]) !== JSON.stringify(base[k]);
    out[k] = mine ? local[k] : remote[k];
  }
  const merged = out as unknown as SharedState;
  if (!merged.enabled) merged.expires = null;
  return merged;
}

/**
 * Whether `local` differs from `base` only by a later expiry: a timeout
 * bump from serving a secret, which may wait to be batched with others.
 */
export function onlyExpiryBump(base: SharedState, local: SharedState): boolean {
  if (base.expires === null || local.expires === null || local.expires <= base.expires) return false;
  return sameShared({ ...local, expires: base.expires }, base);
}

/**
 * What to fall back to when a change could not be committed: the committed
 * state, except that a disable made here stays in effect (a server never
 * serves a client it was told to disable, and tries to commit it again).
 */
export function revertShared(committed: SharedState, local: SharedState): SharedState {
  if (committed.enabled && !local.enabled) return { ...committed, enabled: false, expires: null };
  return committed;
}
