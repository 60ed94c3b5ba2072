// What happens in the server that an operator watches: connections and their
// outcome, secrets sent, refusals and why, checkers, timeouts, approvals, and
// how long handshakes and state writes take.
//
// Two consumers, two shapes:
// - ServerEvents, a typed observer the server core calls (metrics count
//   these; no client names, so a fleet of thousands stays a handful of
//   series);
// - the log lines that name a client carry a ServerEvent too, which becomes
//   journal fields (MESSAGE_ID per kind, MANDOS_CLIENT, MANDOS_REASON…), so
//   `journalctl MESSAGE_ID=… MANDOS_CLIENT=…` filters them. On standard
//   error they are today's lines, unchanged. No event carries a secret.
import type { Level, LogFields, Logger } from "../cli/log.js";

/** Seconds since it was called, each time it is read: the durations events carry. */
export function stopwatch(): () => number {
  const started = performance.now();
  return () => (performance.now() - started) / 1000;
}

export type ConnectionOutcome = "served" | "refused" | "abandoned" | "failed" | "over_limit";
export const CONNECTION_OUTCOMES: readonly ConnectionOutcome[] = ["served", "refused", "abandoned", "failed", "over_limit"];

/** fleet_unconfirmed: a fleet member without a confirmed view of etcd past its grace period (fail closed). */
export type RefusalReason = "unknown_key" | "disabled" | "approval_denied" | "approval_timeout" | "handshake_failure" | "bad_version" | "fleet_unconfirmed";
export const REFUSAL_REASONS: readonly RefusalReason[] = ["unknown_key", "disabled", "approval_denied", "approval_timeout", "handshake_failure", "bad_version", "fleet_unconfirmed"];

export type CheckerOutcome = "success" | "failure" | "crashed";
export const CHECKER_OUTCOMES: readonly CheckerOutcome[] = ["success", "failure", "crashed"];

/** The server core's observer; every method is cheap and never throws. */
export interface ServerEvents {
  /** A connection ended (or was turned away at once: over_limit). */
  connectionEnded(outcome: ConnectionOutcome): void;
  /** The TLS handshake of a connection completed, after `seconds`. */
  handshakeDone(seconds: number): void;
  /** A secret went out, `seconds` after the connection was accepted (approval waits included). */
  secretSent(seconds: number): void;
  refused(reason: RefusalReason): void;
  checkerRan(outcome: CheckerOutcome): void;
  disabledByTimeout(): void;
  approvalRequested(): void;
  approvalGiven(): void;
  /** A state file write (or a fleet's etcd commit) ended, successfully or not, after `seconds`. */
  stateWritten(seconds: number, ok: boolean): void;
}

export const NO_EVENTS: ServerEvents = {
  connectionEnded() {},
  handshakeDone() {},
  secretSent() {},
  refused() {},
  checkerRan() {},
  disabledByTimeout() {},
  approvalRequested() {},
  approvalGiven() {},
  stateWritten() {},
};

/** An event about one client (or one unknown key), as its log line carries it. */
export type ServerEvent =
  | { kind: "served"; client: string }
  | { kind: "refused"; reason: RefusalReason; client?: string; keyId?: string; address?: string }
  | { kind: "disabled_by_timeout"; client: string }
  | { kind: "checker_ran"; client: string; outcome: CheckerOutcome }
  | { kind: "approval_requested"; client: string }
  | { kind: "approval_given"; client: string; by: "operator" | "default" };

/**
 * Stable 128-bit message ids, as in systemd's catalogs: fixed forever
 * (documented in mandos(8), EVENTS), so journal filters keep working.
 */
export const MESSAGE_IDS = {
  served: "ccb8e202e6e84afc9001f31be8d58489",
  refused: "a0b6adecd62f4a0d8bec70df340b706c",
  disabled_by_timeout: "5aa0d2358841450083ec68d8c9226f06",
  checker_failed: "5262a5c2635f47d89abd040950d5311e",
  approval_requested: "b2cdc1538d5748ee8550c3fa73d54544",
  approval_given: "be3a059fbd2d4cb6afa392445c3576b5",
} as const;

/** The journal fields of an event (a successful checker run has no MESSAGE_ID: nothing to watch). */
export function journalFields(e: ServerEvent): LogFields {
  const f: Record<string, string> = {};
  switch (e.kind) {
    case "served":
    case "disabled_by_timeout":
    case "approval_requested":
      f.MESSAGE_ID = MESSAGE_IDS[e.kind];
      break;
    case "refused":
      f.MESSAGE_ID = MESSAGE_IDS.refused;
      f.MANDOS_REASON = e.reason;
      if (e.keyId) f.MANDOS_KEY_ID = e.keyId;
      if (e.address) f.MANDOS_ADDRESS = e.address;
      break;
    case "checker_ran":
      if (e.outcome !== "success") f.MESSAGE_ID = MESSAGE_IDS.checker_failed;
      f.MANDOS_CHECKER_RESULT = e.outcome;
      break;
    case "approval_given":
      f.MESSAGE_ID = MESSAGE_IDS.approval_given;
      f.MANDOS_APPROVED_BY = e.by;
      break;
  }
  if (e.client !== undefined) f.MANDOS_CLIENT = e.client;
  return f;
}

/** Tell the observer what an event about a client counts as (a served one is counted where its time is known). */
export function observe(events: ServerEvents, e: ServerEvent): void {
  switch (e.kind) {
    case "refused":
      return events.refused(e.reason);
    case "disabled_by_timeout":
      return events.disabledByTimeout();
    case "checker_ran":
      return events.checkerRan(e.outcome);
    case "approval_requested":
      return events.approvalRequested();
    case "approval_given":
      return events.approvalGiven();
    case "served":
      return;
  }
}

/** Log an event's line with its journal fields, and tell the observer. */
export function report(log: Logger, events: ServerEvents, level: Level, message: string, e: ServerEvent): void {
  log[level](message, journalFields(e));
  observe(events, e);
}
