// One Mandos client as the server tracks it: enabled or not, when it
// expires, when its checker runs, and whether a request for its secret is
// waiting for approval. The model is pure: every operation is given the
// current time, and instead of acting it returns effects (start or kill a
// checker, emit a D-Bus signal, log a line, answer a request). The server
// carries them out and arms one timer at nextDeadline(), so all of Mandos's
// timing rules can be tested with a fake clock.
//
// The rules follow Mandos 1.8.16 (its Client and ClientHandler classes):
// - enable() schedules the first checker one interval ahead and expires the
//   client two intervals ahead; at start-up the first checker is instead at
//   a random fraction of an interval (init_checker(randomize_start=True)).
// - A successful checker, CheckedOK() or setting LastCheckedOK bump the
//   expiry to now + timeout; sending the secret bumps it to now +
//   extended_timeout. When the expiry passes, the client is disabled and its
//   checker killed. A new checker never starts while one is still running.
// - Approval is needed only when approval_delay is non-zero. Approve(b) holds
//   for approval_duration, answering every request in that window; without
//   an answer, approved_by_default decides when the delay has passed.
// Deliberate differences, safer than Mandos: a request is re-checked for
// "disabled" whenever anything changes (Mandos could still send the secret
// of a client disabled while it waited), and approvals pending are counted
// down when the request is decided rather than after the TLS goodbye.
import { checkerAttributes, expandChecker } from "../config/checker.js";
import { pythonRepr } from "./timefmt.js";
import type { ServerEvent } from "./events.js";

export type LogLevel = "error" | "warning" | "info" | "debug";

/** The settings of a client that clients.conf gives and D-Bus may change. */
export interface ClientSettings {
  name: string;
  /** Uppercase hex, "" if none (as Mandos keeps it). */
  keyId: string;
  fingerprint: string;
  host: string;
  /** Checker template, still holding %(attr)s for run-time expansion. */
  checker: string;
  timeoutMs: number;
  extendedTimeoutMs: number;
  intervalMs: number;
  approvalDelayMs: number;
  approvalDurationMs: number;
  approvedByDefault: boolean;
}

/** Everything kept about a client across restarts (times are epoch ms). */
export interface ClientRecord extends ClientSettings {
  secret: Buffer;
  enabled: boolean;
  created: number;
  lastEnabled: number | null;
  lastCheckedOK: number | null;
  /** -2: no checker has finished yet; -1: the last one was killed by a signal. */
  lastCheckerStatus: number;
  lastCheckerSignal: number | null;
  lastApprovalRequest: number | null;
  expires: number | null;
}

export type CheckerResult = { code: number } | { signal: number };

/** The last Approve(b): its answer and until when (epoch ms) it holds. */
export interface Approval {
  value: boolean;
  until: number;
}

/** The settings clients.conf gives and D-Bus may change at run time. */
export const RUNTIME_SETTINGS = [
  "host",
  "checker",
  "timeoutMs",
  "extendedTimeoutMs",
  "intervalMs",
  "approvalDelayMs",
  "approvalDurationMs",
  "approvedByDefault",
] as const;

/** What servers of a fleet share about a client (see src/server/fleet/). */
export const SHARED_FIELDS = [
  "enabled",
  "lastEnabled",
  "lastCheckedOK",
  "lastCheckerStatus",
  "lastCheckerSignal",
  "lastApprovalRequest",
  "expires",
  ...RUNTIME_SETTINGS,
] as const;

export type SharedFields = Pick<ClientRecord, (typeof SHARED_FIELDS)[number]>;

/** State decided elsewhere in the fleet, for adopt(); never a checker command (fleet/shared.ts says why). */
export interface AdoptedState extends Omit<SharedFields, "checker"> {
  approval: Approval | null;
  /** null: keep the secret as it is. */
  secret: Buffer | null;
}

export type ClientSignal =
  | { name: "CheckerStarted"; command: string }
  | { name: "CheckerCompleted"; exitCode: number; waitStatus: number; command: string }
  | { name: "GotSecret" }
  | { name: "Rejected"; reason: string }
  | { name: "NeedApproval"; timeoutMs: number; approvedByDefault: boolean };

export type Effect =
  | { type: "spawnChecker"; checkerId: number; command: string }
  | { type: "killChecker"; checkerId: number }
  | { type: "signal"; signal: ClientSignal }
  | { type: "log"; level: LogLevel; message: string; event?: ServerEvent }
  | { type: "requestDone"; requestId: number; granted: boolean };

export interface ModelOptions {
  /** Uniform in [0, 1): spreads the first checkers over an interval at start-up. */
  random?: () => number;
  /** The client's D-Bus object path, offered to checkers as %(dbus_object_path)s. */
  dbusObjectPath?: string | null;
}

interface PendingRequest {
  deadline: number;
  /** Counted in approvalsPending (only when approval was required at the start). */
  counted: boolean;
  notified: boolean;
}

/**
 * Checkers are never scheduled closer than this: Mandos would start them
 * back to back with a tiny interval; a floor keeps our timer loop sane.
 */
export const MIN_CHECKER_PERIOD_MS = 1000;

export class ClientModel {
  readonly record: ClientRecord;
  /** The running checker's id, or null. */
  private checkerId: number | null = null;
  private lastCheckerId = 0;
  private currentCommand: string | null = null;
  private nextCheckerAt: number | null = null;
  private nextCheckerRandomized = false;
  /** Mandos's "approved": true/false for approval_duration after Approve(), else null. */
  private approved: boolean | null = null;
  private approvalResets: number[] = [];
  private lastApproval: Approval | null = null;
  /** Whether this server runs the checker and decides timeouts (in a fleet, only one does). */
  private checking = true;
  private requests = new Map<number, PendingRequest>();
  private approvalsPending = 0;
  private effects: Effect[] = [];
  private readonly random: () => number;
  private readonly dbusObjectPath: string | null;

  constructor(record: ClientRecord, opts: ModelOptions = {}) {
    this.record = record;
    this.random = opts.random ?? Math.random;
    this.dbusObjectPath = opts.dbusObjectPath ?? null;
  }

  // ---- What D-Bus shows -------------------------------------------------

  get name(): string {
    return this.record.name;
  }
  get checkerRunning(): boolean {
    return this.checkerId !== null;
  }
  get approvalPending(): boolean {
    return this.approvalsPending > 0;
  }
  /** Epoch ms of the next checker start, for tests and diagnostics. */
  get nextCheckerTime(): number | null {
    return this.nextCheckerAt;
  }

  /** The last Approve(b), for the other servers of a fleet. */
  get approval(): Approval | null {
    return this.lastApproval;
  }
  get holdsChecker(): boolean {
    return this.checking;
  }

  /** Effects produced since the last call, in order. */
  takeEffects(): Effect[] {
    const out = this.effects;
    this.effects = [];
    return out;
  }

  /** When tick() must next be called, or null if nothing is scheduled. */
  nextDeadline(): number | null {
    const times: number[] = [...this.approvalResets];
    for (const req of this.requests.values()) times.push(req.deadline);
    if (this.record.enabled && this.checking) {
      if (this.record.expires !== null) times.push(this.record.expires);
      if (this.nextCheckerAt !== null) times.push(this.nextCheckerAt);
    }
    return times.length ? Math.min(...times) : null;
  }

  // ---- Operations -------------------------------------------------------

  /** Server start: an enabled client's first checker at a random point in its interval. */
  startup(now: number): void {
    if (this.record.enabled && this.checking) this.initChecker(now, true);
  }

  /** Run whatever timers are due at `now`. */
  tick(now: number): void {
    const dueResets = this.approvalResets.filter((t) => t <= now);
    if (dueResets.length) {
      this.approvalResets = this.approvalResets.filter((t) => t > now);
      this.approved = null;
    }
    const r = this.record;
    if (!this.checking) return this.settle(now);
    if (r.enabled && r.expires !== null && now >= r.expires) {
      this.log("info", `Disabling client ${r.name}: timeout passed`, { kind: "disabled_by_timeout", client: r.name });
      this.disable(now);
    }
    if (r.enabled && this.nextCheckerAt !== null && now >= this.nextCheckerAt) {
      const randomized = this.nextCheckerRandomized;
      this.runChecker();
      this.nextCheckerAt = now + Math.max(r.intervalMs, MIN_CHECKER_PERIOD_MS);
      this.nextCheckerRandomized = false;
      if (randomized && r.expires !== null) r.expires = Math.max(r.expires, now + r.intervalMs);
    }
    this.settle(now);
  }

  enable(now: number): void {
    const r = this.record;
    if (r.enabled) return;
    r.enabled = true;
    r.lastEnabled = now;
    this.initChecker(now, false);
    this.settle(now);
  }

  disable(now: number): void {
    const r = this.record;
    if (!r.enabled) return;
    r.expires = null;
    this.nextCheckerAt = null;
    this.stopChecker();
    r.enabled = false;
    this.settle(now);
  }

  /** CheckedOK(), LastCheckedOK = anything, or a checker exiting with 0. */
  checkedOK(now: number): void {
    const r = this.record;
    r.lastCheckedOK = now;
    r.lastCheckerStatus = 0;
    r.lastCheckerSignal = null;
    this.bumpTimeout(now, r.timeoutMs);
  }

  /** StartChecker(), CheckerRunning = true: start one now unless one runs. */
  startChecker(now: number): void {
    this.runChecker();
    this.settle(now);
  }

  /** StopChecker(), CheckerRunning = false: kill the running checker, if any. */
  stopChecker(): void {
    if (this.checkerId === null) return;
    this.log("debug", `Stopping checker for ${this.record.name}`);
    this.effects.push({ type: "killChecker", checkerId: this.checkerId });
    this.checkerId = null;
    this.currentCommand = null;
  }

  /** A checker process ended. Results of checkers stopped meanwhile are ignored. */
  checkerExited(now: number, checkerId: number, result: CheckerResult): void {
    if (checkerId !== this.checkerId) return;
    const command = this.currentCommand ?? "";
    this.checkerId = null;
    this.currentCommand = null;
    const r = this.record;
    if ("code" in result) {
      r.lastCheckerStatus = result.code;
      r.lastCheckerSignal = null;
      if (result.code === 0) {
        this.log("info", `Checker for ${r.name} succeeded`, { kind: "checker_ran", client: r.name, outcome: "success" });
        this.checkedOK(now);
      } else {
        this.log("info", `Checker for ${r.name} failed`, { kind: "checker_ran", client: r.name, outcome: "failure" });
      }
      // Wait status as wait(2) encodes a normal exit: code in the second byte.
      this.signal({ name: "CheckerCompleted", exitCode: result.code, waitStatus: result.code << 8, command });
    } else {
      r.lastCheckerStatus = -1;
      r.lastCheckerSignal = result.signal;
      this.log("warning", `Checker for ${r.name} crashed?`, { kind: "checker_ran", client: r.name, outcome: "crashed" });
      // Mandos 1.8 sends (-1 << 8) | signal here; WTERMSIG() still finds the signal.
      this.signal({ name: "CheckerCompleted", exitCode: -1, waitStatus: (-1 << 8) | result.signal, command });
    }
    this.settle(now);
  }

  setTimeout(now: number, ms: number): void {
    const r = this.record;
    const old = r.timeoutMs;
    r.timeoutMs = ms;
    if (r.enabled && r.expires !== null) {
      r.expires += ms - old;
      if (r.expires <= now) this.disable(now);
    }
    this.settle(now);
  }

  setInterval(now: number, ms: number): void {
    const r = this.record;
    r.intervalMs = ms;
    if (r.enabled && this.nextCheckerAt !== null) {
      this.nextCheckerAt = now + Math.max(ms, MIN_CHECKER_PERIOD_MS);
      this.nextCheckerRandomized = false;
      this.runChecker();
    }
    this.settle(now);
  }

  /** Plain settings whose change needs no rescheduling. */
  setSetting<K extends "extendedTimeoutMs" | "approvalDelayMs" | "approvalDurationMs" | "approvedByDefault" | "host" | "checker">(
    now: number,
    key: K,
    value: ClientRecord[K],
  ): void {
    this.record[key] = value;
    this.settle(now);
  }

  setSecret(secret: Buffer): void {
    const old = this.record.secret;
    this.record.secret = Buffer.from(secret);
    if (old !== this.record.secret) old.fill(0);
  }

  /** Approve(b): answers waiting requests, and any new ones for approval_duration. */
  approve(now: number, value: boolean): void {
    this.takeApproval({ value, until: now + this.record.approvalDurationMs });
    this.settle(now);
  }

  private takeApproval(a: Approval): void {
    this.lastApproval = a;
    this.approved = a.value;
    this.approvalResets.push(a.until);
  }

  /**
   * In a fleet: this server now runs (or no longer runs) the checker and
   * decides timeouts. A server taking over checks soon, and keeps the
   * expiry the previous holder set.
   */
  setChecking(now: number, on: boolean): void {
    if (on === this.checking) return;
    this.checking = on;
    if (!on) {
      this.stopChecker();
      this.nextCheckerAt = null;
    } else if (this.record.enabled) {
      this.nextCheckerAt = now + Math.floor(this.random() * Math.min(this.record.intervalMs, MIN_CHECKER_PERIOD_MS));
      this.nextCheckerRandomized = false;
    }
    this.settle(now);
  }

  /**
   * Take state another server of the fleet committed: enabling, disabling
   * and approving as if done here (so waiting requests are decided), the
   * rest as given.
   */
  adopt(now: number, s: AdoptedState): void {
    const r = this.record;
    const wasEnabled = r.enabled;
    const oldInterval = r.intervalMs;
    if (wasEnabled && !s.enabled) this.disable(now);
    for (const k of SHARED_FIELDS) if (k !== "checker") (r as unknown as Record<string, unknown>)[k] = s[k];
    if (s.secret !== null && !s.secret.equals(r.secret)) this.setSecret(s.secret);
    if (this.checking && r.enabled && (!wasEnabled || oldInterval !== r.intervalMs)) {
      this.nextCheckerAt = now + Math.max(r.intervalMs, MIN_CHECKER_PERIOD_MS);
      this.nextCheckerRandomized = false;
    }
    const a = s.approval;
    if (a !== null && (this.lastApproval?.value !== a.value || this.lastApproval.until !== a.until)) {
      if (a.until > now) this.takeApproval(a);
      else this.lastApproval = a;
    }
    this.settle(now);
  }

  /**
   * A client presenting this client's key asks for the secret. The answer
   * comes as a requestDone effect, now or after approval.
   */
  beginRequest(now: number, requestId: number): void {
    const counted = this.record.approvalDelayMs > 0;
    if (counted) this.approvalsPending += 1;
    this.requests.set(requestId, { deadline: now + this.record.approvalDelayMs, counted, notified: false });
    this.settle(now);
  }

  /** The peer went away before an answer. */
  cancelRequest(now: number, requestId: number): void {
    const req = this.requests.get(requestId);
    if (!req) return;
    this.finish(requestId, req, null);
    this.settle(now);
  }

  /** The secret went out over TLS: log, bump by extended_timeout, GotSecret. */
  secretSent(now: number): void {
    this.log("info", `Sending secret to ${this.record.name}`, { kind: "served", client: this.record.name });
    this.bumpTimeout(now, this.record.extendedTimeoutMs);
    this.signal({ name: "GotSecret" });
    this.settle(now);
  }

  // ---- Internals --------------------------------------------------------

  private initChecker(now: number, randomize: boolean): void {
    const r = this.record;
    const interval = r.intervalMs;
    const delay = randomize ? Math.floor(this.random() * (interval + 1)) : interval;
    this.nextCheckerAt = now + Math.max(delay, randomize ? 0 : MIN_CHECKER_PERIOD_MS);
    this.nextCheckerRandomized = randomize;
    // A checker may take up to an interval, so expire one interval after it starts.
    r.expires = now + delay + interval;
  }

  private bumpTimeout(now: number, ms: number): void {
    if (this.record.enabled) this.record.expires = now + ms;
  }

  private runChecker(): void {
    if (this.checkerId !== null) return; // never two at once: let the slow one finish
    if (!this.checking) return; // another server of the fleet checks this client
    const r = this.record;
    let command: string;
    try {
      command = expandChecker(r.checker, this.checkerAttributes());
    } catch (err) {
      this.log("error", `Could not format string ${pythonRepr(r.checker)} for ${r.name}: ${(err as Error).message}`);
      return;
    }
    this.lastCheckerId += 1;
    this.checkerId = this.lastCheckerId;
    this.currentCommand = command;
    this.log("info", `Starting checker ${pythonRepr(command)} for ${r.name}`);
    this.effects.push({ type: "spawnChecker", checkerId: this.checkerId, command });
    this.signal({ name: "CheckerStarted", command });
  }

  /** The attributes a checker template may use, printed as Mandos prints them. */
  checkerAttributes(): Record<string, string | number | boolean | null> {
    const r = this.record;
    const date = (ms: number | null) => (ms === null ? null : new Date(ms));
    return checkerAttributes({
      name: r.name,
      host: r.host,
      keyId: r.keyId,
      fingerprint: r.fingerprint,
      enabled: r.enabled,
      timeoutMs: r.timeoutMs,
      intervalMs: r.intervalMs,
      approvalDelayMs: r.approvalDelayMs,
      approvalDurationMs: r.approvalDurationMs,
      created: new Date(r.created),
      expires: date(r.expires),
      lastEnabled: date(r.lastEnabled),
      lastCheckedOk: date(r.lastCheckedOK),
      lastApprovalRequest: date(r.lastApprovalRequest),
      dbusObjectPath: this.dbusObjectPath,
    });
  }

  /** Decide every waiting request that can be decided now. */
  private settle(now: number): void {
    for (const [id, req] of [...this.requests]) this.evaluate(now, id, req);
  }

  private evaluate(now: number, id: number, req: PendingRequest): void {
    const r = this.record;
    if (!r.enabled) {
      this.log("info", `Client ${r.name} is disabled`, { kind: "refused", reason: "disabled", client: r.name });
      this.signal({ name: "Rejected", reason: "Disabled" });
      return this.finish(id, req, false);
    }
    if (this.approved === true || r.approvalDelayMs === 0) {
      if (req.counted && this.approved === true) this.log("info", `Client ${r.name} approved`, { kind: "approval_given", client: r.name, by: "operator" });
      return this.finish(id, req, true);
    }
    if (this.approved === false) {
      this.log("warning", `Client ${r.name} was not approved`, { kind: "refused", reason: "approval_denied", client: r.name });
      this.signal({ name: "Rejected", reason: "Denied" });
      return this.finish(id, req, false);
    }
    if (now >= req.deadline) {
      if (r.approvedByDefault) {
        this.log("info", `Client ${r.name} approved by default`, { kind: "approval_given", client: r.name, by: "default" });
        return this.finish(id, req, true);
      }
      this.log("warning", `Client ${r.name} timed out while waiting for approval`, { kind: "refused", reason: "approval_timeout", client: r.name });
      this.signal({ name: "Rejected", reason: "Approval timed out" });
      return this.finish(id, req, false);
    }
    if (!req.notified) {
      req.notified = true;
      this.log("info", `Client ${r.name} needs approval`, { kind: "approval_requested", client: r.name });
      r.lastApprovalRequest = now;
      this.signal({ name: "NeedApproval", timeoutMs: r.approvalDelayMs, approvedByDefault: r.approvedByDefault });
    }
  }

  /** granted null: cancelled, nobody to answer. */
  private finish(id: number, req: PendingRequest, granted: boolean | null): void {
    this.requests.delete(id);
    if (req.counted) this.approvalsPending -= 1;
    if (granted !== null) this.effects.push({ type: "requestDone", requestId: id, granted });
  }

  private signal(signal: ClientSignal): void {
    this.effects.push({ type: "signal", signal });
  }

  private log(level: LogLevel, message: string, event?: ServerEvent): void {
    this.effects.push(event ? { type: "log", level, message, event } : { type: "log", level, message });
  }
}
