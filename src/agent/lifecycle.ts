// The agent's decisions, as pure functions of what it knows: how many
// questions wait for an answer, whether other live questions exist, what the
// client is doing, and the time. agent.ts carries them out.
import type { QuestionStatus } from "./question.js";

/** What the Mandos client process is doing. */
export type ClientPhase =
  | { kind: "idle" }
  | { kind: "running" }
  /** Being stopped by us (SIGTERM sent, SIGKILL after a grace period). */
  | { kind: "stopping" }
  /** Failed; not to be started again before `untilMs` (monotonic ms). */
  | { kind: "backoff"; untilMs: number };

export interface AgentView {
  /** Questions to answer with the client's secret. */
  pending: number;
  /**
   * Of those, questions asked again with an Id the held secret already
   * answered: systemd-cryptsetup asks again when a passphrase fails, so the
   * held secret must not be sent to them; they need a fresh fetch.
   */
  reasked: number;
  /** Live questions we answered already or leave to other agents. */
  lingering: number;
  client: ClientPhase;
  nowMs: number;
  /** A secret held from an earlier fetch, to drop at `untilMs`. */
  held: { untilMs: number } | null;
  /** Fetch even with no question: prefetching, and nothing fetched yet. */
  prefetch: boolean;
}

export type Step =
  | { kind: "start-client" }
  | { kind: "stop-client" }
  /** Answer the pending questions with the held secret. */
  | { kind: "answer-held" }
  /** Wipe the held secret. */
  | { kind: "drop-held" }
  | { kind: "exit"; code: number }
  /** Nothing to do until an event, or until `untilMs` at the latest. */
  | { kind: "wait"; untilMs?: number };

/** What the agent holds about one question file. */
export interface QuestionState {
  status: QuestionStatus;
  /** We sent it an answer already (each file gets one at most). */
  answered: boolean;
  /** Its Id was answered by the secret now held (see AgentView.reasked). */
  reasked?: boolean;
}

/**
 * Count the questions to answer (and, of those, the ones asked again), and
 * the other live ones: answered but still there, or left to other agents.
 * Void ones (expired, asker gone) count for nothing. When quitting,
 * nothing counts.
 */
export function tally(questions: readonly QuestionState[], quitting = false): { pending: number; reasked: number; lingering: number } {
  if (quitting) return { pending: 0, reasked: 0, lingering: 0 };
  let pending = 0;
  let reasked = 0;
  let lingering = 0;
  for (const q of questions) {
    if (q.status === "expired" || q.status === "asker-gone") continue;
    if (q.status === "pending" && !q.answered) {
      pending++;
      if (q.reasked) reasked++;
    } else lingering++;
  }
  return { pending, reasked, lingering };
}

/**
 * The next thing to do. A held secret answers new questions at once, and
 * is dropped when its time is up or when a question it answered is asked
 * again. Otherwise the client runs while a question is pending (or, when
 * prefetching, until it has fetched once), is stopped when nothing needs
 * it, and the agent exits once no live question file remains and nothing
 * is held: it stays while questions it answered still exist (so systemd's
 * path unit, which starts it while any "ask.*" file exists, does not start
 * it again for them) and while questions left to other agents wait.
 */
export function nextStep(v: AgentView): Step {
  const c = v.client;
  if (v.held !== null) {
    if (v.nowMs >= v.held.untilMs || v.reasked > 0) return { kind: "drop-held" };
    if (v.pending > 0) return { kind: "answer-held" };
  }
  if (v.pending > 0 || (v.prefetch && v.held === null)) {
    if (c.kind === "idle") return { kind: "start-client" };
    if (c.kind === "backoff") return v.nowMs >= c.untilMs ? { kind: "start-client" } : { kind: "wait", untilMs: c.untilMs };
    return { kind: "wait" };
  }
  if (c.kind === "running") return { kind: "stop-client" };
  if (c.kind === "stopping") return { kind: "wait" };
  if (v.held !== null) return { kind: "wait", untilMs: v.held.untilMs };
  if (v.lingering > 0) return { kind: "wait" };
  return { kind: "exit", code: 0 };
}

export const RESTART_DELAY_BASE_MS = 1000;
export const RESTART_DELAY_MAX_MS = 30_000;

/**
 * Delay before starting the client again after `failures` failed runs in a
 * row (1 → 1 s, 2 → 2 s, 4 s, … up to 30 s). mandos-client already retries
 * servers itself, so an exit means something is wrong for longer (network
 * not up yet, server unreachable, keys missing): back off rather than spin.
 */
export function restartDelayMs(failures: number): number {
  if (failures <= 0) return 0;
  return Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_BASE_MS * 2 ** Math.min(failures - 1, 20));
}

/** How a client run ended, as far as the agent cares. */
export type ClientOutcome =
  | { kind: "password" }
  | { kind: "stopped" }
  | { kind: "failed"; reason: string }
  /** Failed in a way no later run can mend (files it cannot read, bad options). */
  | { kind: "hopeless"; reason: string };

export interface ClientEnd {
  code: number | null;
  signal: string | null;
  outputLength: number;
  /** The client printed more than the agent accepts. */
  overflow: boolean;
  /** We asked it to stop (no question left, or the agent is quitting). */
  stoppedByUs: boolean;
  /** The end of what it wrote to standard error (never secret material). */
  stderrTail?: string;
}

/** sysexits EX_USAGE and EX_CONFIG: bad options, or key files it cannot use. */
const CONFIG_EXITS = new Set([64, 78]);

/** Node's and libc's words for a file the client could not open or load. */
const UNREADABLE: Array<[RegExp, (m: RegExpExecArray) => string]> = [
  [/\bEACCES: permission denied, \w+ '([^']+)'/, (m) => `cannot read ${m[1]} (EACCES)`],
  [/Cannot find (?:module|package) '([^']+)'/, (m) => `cannot load ${m[1]} (missing, or in a directory it cannot search)`],
  [/^.*Permission denied.*$/m, (m) => m[0].trim()],
];

/**
 * Why a failed run cannot succeed if started again, or null: the client
 * exited with a configuration status, or its last words say it could not
 * read a file. Retrying those in silence would only run out the question's
 * time, so the agent says so at once instead.
 */
export function hopelessReason(e: ClientEnd): string | null {
  const tail = e.stderrTail ?? "";
  for (const [re, say] of UNREADABLE) {
    const m = re.exec(tail);
    if (m) return say(m);
  }
  if (e.code !== null && CONFIG_EXITS.has(e.code)) {
    const last = tail.trim().split("\n").pop()?.trim();
    return `exited with status ${e.code}${last ? `: ${last}` : ""}`;
  }
  return null;
}

/**
 * Exit status 0 with output is a secret; everything else is a failure to be
 * retried, except a stop we asked for. An empty output with status 0 is
 * refused: Mandos never serves an empty secret, and answering an empty
 * passphrase would only burn one of cryptsetup's tries.
 */
export function classifyClientEnd(e: ClientEnd): ClientOutcome {
  if (e.stoppedByUs) return { kind: "stopped" };
  if (e.overflow) return { kind: "failed", reason: "printed too much output" };
  if (e.signal !== null) return { kind: "failed", reason: `was killed by ${e.signal}` };
  if (e.code !== 0) {
    const hopeless = hopelessReason(e);
    if (hopeless !== null) return { kind: "hopeless", reason: hopeless };
    return { kind: "failed", reason: `exited with status ${e.code}` };
  }
  if (e.outputLength === 0) return { kind: "failed", reason: "exited with status 0 but printed no password" };
  return { kind: "password" };
}

/**
 * The answer datagram: "+", the password, and a NUL. The receiver reads the
 * rest as a list of NUL-terminated passwords (systemd's own agents and
 * Mandos 1.8's agent send that terminator too); a lone "-" would cancel.
 */
export function answerDatagram(password: Buffer): Buffer {
  // Buffer.alloc, not allocUnsafe: small unsafe buffers come from a shared pool.
  const d = Buffer.alloc(1 + password.length + 1);
  d[0] = 0x2b; // "+"
  password.copy(d, 1);
  return d;
}
