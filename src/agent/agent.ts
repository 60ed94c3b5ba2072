// The password agent at work: watches the agent directory, keeps a table of
// question files, runs the Mandos client while a question is pending (or at
// once, when prefetching), sends its secret to every pending question, and
// when prefetching holds it for a while for questions still to come.
// Decisions come from the pure functions in question.ts and lifecycle.ts;
// this file only carries them out.
import { statSync, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../cli/log.js";
import { errorMessage } from "../cli/log.js";
import { startClient, type ClientEndEvent, type ClientRun } from "./client.js";
import {
  answerDatagram,
  classifyClientEnd,
  nextStep,
  restartDelayMs,
  tally,
  type ClientPhase,
} from "./lifecycle.js";
import type { AgentOptions } from "./options.js";
import { describeStatus, isLive, questionStatus, untrustedDirectoryReason, type Question, type QuestionStatus } from "./question.js";
import { currentIdentity, examineQuestionFile, facts, listQuestionFiles } from "./questions-dir.js";
import { loadUnixDgram, sendDatagram } from "../sys/unix-dgram.js";
import { protectMemory } from "../sys/no-core.js";
import { interpreterOf, unreachableReason } from "./reach.js";
import { selectionOfClient, serveClientNetwork, type ClientNetwork } from "./network.js";

export interface AgentHost {
  log: Logger;
  /** CLOCK_MONOTONIC, microseconds. */
  monotonicMicros(): bigint;
  processAlive(pid: number): boolean;
  /** Our uid: files owned by root or by it are trusted. */
  uid: number;
}

/** How long the client gets between SIGTERM and SIGKILL. */
export const CLIENT_STOP_GRACE_MS = 5000;
/** How often askers are checked for having died (no event tells us). */
export const ASKER_POLL_MS = 500;

/** sysexits: the agent directory cannot be watched (as Mandos 1.8). */
export const EXIT_NO_DIRECTORY = 72;

type Entry =
  | { kind: "bad"; identity: string }
  | { kind: "question"; identity: string; question: Question; status: QuestionStatus; answered: boolean };

/** A prefetched secret, in this process's memory only, until `untilMs`. */
interface Held {
  secret: Buffer;
  untilMs: number;
  /** Question Ids it answered: the same Id asked again means it failed. */
  answeredIds: Set<string>;
}

export class PasswordAgent {
  private readonly entries = new Map<string, Entry>();
  private held: Held | null = null;
  /** Prefetching and no secret fetched yet. */
  private prefetchPending: boolean;
  private client: ClientPhase = { kind: "idle" };
  private run_: ClientRun | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;
  private rescanQueued = false;
  private quitting = false;
  /** Exit status to leave with once the client we are stopping has ended. */
  private exitAfterClient: number | null = null;
  private finished = false;
  private readonly trusted: number[];
  /**
   * The client's --interface selection and --connect, when we do its
   * network steps: we are root, it runs as another user, and we can read
   * its options (otherwise it is not ours to help, and gets no channel).
   */
  private readonly clientSelection: { interfaces: string[]; connect: string | null } | null;
  /** The steps done for the running client, undone when it ends. */
  private network: ClientNetwork | null = null;
  private resolveExit: (code: number) => void = () => {};

  constructor(
    private readonly opts: AgentOptions,
    private readonly host: AgentHost,
  ) {
    this.trusted = host.uid === 0 ? [0] : [0, host.uid];
    this.prefetchPending = opts.prefetch;
    const selection = host.uid === 0 && opts.user !== 0 ? selectionOfClient(opts.client.slice(1)) : null;
    this.clientSelection = selection && !("unknown" in selection) ? selection : null;
  }

  /** Run until idle; resolves with the exit status. */
  run(): Promise<number> {
    const dir = this.opts.agentDirectory;
    const log = this.host.log;
    try {
      const reason = untrustedDirectoryReason(facts(statSync(dir)), this.trusted);
      if (reason !== null) {
        log.error(`refusing agent directory ${dir}: it ${reason}`);
        return Promise.resolve(1);
      }
      // fs.watch is libuv's inotify watch (IN_CREATE, IN_MOVED_TO,
      // IN_DELETE, IN_MODIFY, …), with no dependency: the "inotify-node"
      // package named in the design does not exist in the npm registry
      // (404). Its events are coalesced, may be dropped on queue overflow,
      // and name no inode, so an event only means "look again": each one
      // (and the start) triggers a rescan of the whole directory, compared
      // with what we hold by inode, size and times. The watch starts before
      // the first scan, so a file created between the two is not missed.
      this.watcher = watch(dir, { persistent: true }, () => this.queueRescan());
      this.watcher.on("error", (err) => this.fatal(`watching ${dir} failed: ${errorMessage(err)}`));
    } catch (err) {
      log.error(`cannot watch agent directory ${dir}: ${errorMessage(err)}`);
      return Promise.resolve(EXIT_NO_DIRECTORY);
    }
    if (this.host.uid !== 0) log.warning("not running as root: systemd's askers ignore answers from other users");
    const exit = new Promise<number>((resolve) => (this.resolveExit = resolve));
    if (!this.rescan()) return exit;
    if (this.entries.size === 0 && !this.opts.prefetch) {
      // Started (by the path unit) for a question that is already gone.
      log.error(`no question files in ${dir}`);
      this.finish(1);
      return exit;
    }
    this.reconcile();
    return exit;
  }

  /** SIGTERM/SIGINT (and switch-root, shutdown): drop what is held, stop the client if it runs, then exit 0. */
  quit(): void {
    if (this.finished) return;
    this.quitting = true;
    this.prefetchPending = false;
    this.dropHeld("the agent is stopping");
    this.reconcile();
  }

  private queueRescan(): void {
    if (this.rescanQueued || this.finished) return;
    this.rescanQueued = true;
    setImmediate(() => {
      this.rescanQueued = false;
      if (this.finished) return;
      if (this.rescan()) this.reconcile();
    });
  }

  /** Bring the table in line with the directory; false if it became unreadable. */
  private rescan(): boolean {
    const dir = this.opts.agentDirectory;
    let names: string[];
    try {
      names = listQuestionFiles(dir);
    } catch (err) {
      this.fatal(`cannot read agent directory ${dir}: ${errorMessage(err)}`);
      return false;
    }
    const present = new Set(names);
    for (const [name, entry] of this.entries) {
      if (present.has(name)) continue;
      this.entries.delete(name);
      if (entry.kind === "question" && entry.status === "pending" && !entry.answered) {
        this.host.log.info(`question ${join(dir, name)} was withdrawn`);
      }
    }
    for (const name of names) {
      const known = this.entries.get(name);
      if (known && currentIdentity(dir, name) === known.identity) continue;
      const ex = examineQuestionFile(dir, name, this.trusted);
      if (ex.kind === "gone") {
        this.entries.delete(name);
      } else if (ex.kind === "bad") {
        // Logged once per version of the file, however often we rescan.
        this.host.log.warning(`ignoring ${join(dir, name)}: it ${ex.reason}`);
        this.entries.set(name, { kind: "bad", identity: ex.identity });
      } else {
        this.entries.set(name, { kind: "question", identity: ex.identity, question: ex.question, status: "pending", answered: false });
        this.refreshStatus(name, this.entries.get(name) as Entry & { kind: "question" }, true);
      }
    }
    return true;
  }

  /** Re-evaluate a question against the clock and its asker; log changes once. */
  private refreshStatus(name: string, e: Entry & { kind: "question" }, fresh: boolean): void {
    const status = questionStatus(e.question, this.host.monotonicMicros(), (p) => this.host.processAlive(p), this.opts.idPrefixes);
    if (!fresh && status === e.status) return;
    const was = e.status;
    e.status = status;
    const path = join(this.opts.agentDirectory, name);
    if (status === "pending") {
      if (fresh) this.host.log.debug(`new question ${path}`);
    } else if (fresh) {
      this.host.log.info(`ignoring question ${path}: ${describeStatus(status, e.question)}`);
    } else if (was === "pending" && !e.answered) {
      this.host.log.info(`dropping question ${path}: ${describeStatus(status, e.question)}`);
    }
  }

  private questions(): Array<[string, Entry & { kind: "question" }]> {
    const out: Array<[string, Entry & { kind: "question" }]> = [];
    for (const [name, e] of this.entries) if (e.kind === "question") out.push([name, e]);
    return out;
  }

  /** Decide and act until the decision is to wait. */
  private reconcile(): void {
    for (let guard = 0; guard < 10 && !this.finished; guard++) {
      const qs = this.questions();
      for (const [name, e] of qs) this.refreshStatus(name, e, false);
      const held = this.held;
      const { pending, reasked, lingering } = tally(
        qs.map(([, e]) => ({ ...e, reasked: held !== null && e.question.id !== "" && held.answeredIds.has(e.question.id) })),
        this.quitting,
      );
      const nowMs = Number(this.host.monotonicMicros() / 1000n);
      const step = nextStep({
        pending,
        reasked,
        lingering,
        client: this.client,
        nowMs,
        held: held && { untilMs: held.untilMs },
        prefetch: this.prefetchPending && !this.quitting,
      });
      switch (step.kind) {
        case "answer-held":
          this.answerAll(held!.secret, held!.answeredIds);
          continue;
        case "drop-held":
          this.dropHeld(reasked > 0 ? "a question it answered was asked again" : "its hold time is over");
          continue;
        case "start-client":
          this.startClient();
          continue;
        case "stop-client":
          this.client = { kind: "stopping" };
          this.run_?.stop(CLIENT_STOP_GRACE_MS);
          continue;
        case "exit":
          this.finish(step.code);
          return;
        case "wait":
          this.armTimer(step.untilMs, qs.some(([, e]) => isLive(e.status)));
          return;
      }
    }
  }

  /** One timer for the next thing time alone can change. */
  private armTimer(untilMs: number | undefined, anyLive: boolean): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const nowUs = this.host.monotonicMicros();
    let delayMs = Infinity;
    if (untilMs !== undefined) delayMs = Math.min(delayMs, untilMs - Number(nowUs / 1000n));
    if (anyLive) delayMs = Math.min(delayMs, ASKER_POLL_MS);
    for (const [, e] of this.questions()) {
      if (isLive(e.status) && e.question.notAfterUs !== 0n) {
        delayMs = Math.min(delayMs, Number((e.question.notAfterUs - nowUs) / 1000n) + 1);
      }
    }
    if (delayMs === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reconcile();
    }, Math.min(Math.max(0, delayMs), 2 ** 31 - 1)); // longer delays would fire at once
  }

  /** The user the client runs as, for messages: "user 65534". */
  private clientUser(): string {
    return this.host.uid === 0 ? `user ${this.opts.user}` : `user ${this.host.uid}`;
  }

  /**
   * Why the client's user cannot even start it (the program, or the
   * interpreter its "#!" line names, out of its reach), or null. Checked
   * before each start: a program tree in root's 0700 home would otherwise
   * fail only inside the child, again and again, until the question expires.
   */
  private unstartableReason(): string | null {
    if (this.host.uid !== 0) return null; // run as ourselves: exec says it all
    const who = { uid: this.opts.user, gids: [this.opts.group] };
    const program = this.opts.client[0]!;
    const programReason = unreachableReason(program, who, { read: true, execute: true });
    if (programReason !== null) return programReason;
    const interpreter = interpreterOf(program);
    return interpreter === null ? null : unreachableReason(interpreter, who, { execute: true });
  }

  private startClient(): void {
    const o = this.opts;
    const unstartable = this.unstartableReason();
    if (unstartable !== null) {
      this.fatal(`the Mandos client ${o.client[0]} cannot run as ${this.clientUser()}: ${unstartable}`);
      return;
    }
    this.client = { kind: "running" };
    const selection = this.clientSelection;
    try {
      const run = startClient(
        {
          command: o.client,
          helperDirectory: o.helperDirectory,
          credentials: this.host.uid === 0 ? { uid: o.user, gid: o.group } : null,
          channel: selection !== null,
        },
        {
          onSpawnError: (err) => {
            this.run_ = undefined; // it never ran: nothing to wait for
            void this.undoNetwork();
            this.fatal(`cannot run the Mandos client ${o.client[0]} as ${this.clientUser()}: ${errorMessage(err)}`);
          },
          // Its run ends once what was done for it is undone: a next run starts on a clean network.
          onEnd: (e) => void this.undoNetwork().then(() => this.clientEnded(e)),
        },
      );
      this.run_ = run;
      if (run.channel && selection) {
        this.network = serveClientNetwork(run.channel, selection, this.host.log, (reason) => {
          this.host.log.error(`the Mandos client ${o.client[0]} ${reason}; stopped it`);
          run.kill();
        });
      }
    } catch (err) {
      this.fatal(`cannot run Mandos client ${o.client[0]}: ${errorMessage(err)}`);
      return;
    }
    // Load koffi for the datagram sender now, while the client works in
    // parallel, rather than after its answer arrives.
    try {
      loadUnixDgram();
      // The client's answer will be in our memory: keep it out of core files.
      protectMemory();
    } catch (err) {
      this.fatal(`cannot prepare for the answer: ${errorMessage(err)}`);
    }
  }

  /** Undo the network steps done for the client that ended (never rejects). */
  private undoNetwork(): Promise<void> {
    const network = this.network;
    this.network = null;
    if (!network) return Promise.resolve();
    return network.close().catch((err: unknown) => this.host.log.warning(`undoing the network steps: ${errorMessage(err)}`));
  }

  private clientEnded(e: ClientEndEvent): void {
    const outcome = classifyClientEnd({
      code: e.code,
      signal: e.signal,
      outputLength: e.output.length,
      overflow: e.overflow,
      stoppedByUs: e.stoppedByUs,
      stderrTail: e.stderrTail,
    });
    this.run_ = undefined;
    if (this.exitAfterClient !== null) {
      e.output.fill(0);
      return this.finish(this.exitAfterClient);
    }
    try {
      if (outcome.kind === "password") {
        this.failures = 0;
        this.client = { kind: "idle" };
        if (this.quitting) {
          // Told to stop (switch-root, shutdown) while the run was ending: neither held nor sent.
        } else if (this.opts.prefetch) {
          this.prefetchPending = false;
          this.hold(e.output);
        } else if (this.rescan()) {
          // Look once more first: questions that came or went since the last event count too.
          this.answerAll(e.output);
        }
      } else if (outcome.kind === "hopeless") {
        this.fatal(`the Mandos client ${this.opts.client[0]} cannot run as ${this.clientUser()}: ${outcome.reason}; not retrying`);
        return;
      } else if (outcome.kind === "stopped") {
        this.failures = 0;
        this.client = { kind: "idle" };
      } else {
        this.failures++;
        const delay = restartDelayMs(this.failures);
        const nowMs = Number(this.host.monotonicMicros() / 1000n);
        this.client = { kind: "backoff", untilMs: nowMs + delay };
        this.host.log.warning(`Mandos client ${outcome.reason}; next try in ${delay / 1000} s if a question is still pending`);
      }
    } finally {
      e.output.fill(0);
    }
    if (!this.finished) this.reconcile();
  }

  /** Keep a copy of the secret for questions to come; reconcile answers the pending ones. */
  private hold(secret: Buffer): void {
    this.dropHeld("a new one arrived");
    const nowMs = Number(this.host.monotonicMicros() / 1000n);
    // Buffer.alloc, not a slice of the client's output, which the caller wipes.
    const copy = Buffer.alloc(secret.length);
    secret.copy(copy);
    this.held = { secret: copy, untilMs: nowMs + this.opts.holdMs, answeredIds: new Set() };
    this.host.log.info(`holding the secret for questions to come, for ${this.opts.holdMs / 1000} s at most`);
  }

  private dropHeld(why: string): void {
    if (this.held === null) return;
    this.held.secret.fill(0);
    this.held = null;
    this.host.log.info(`dropped the held secret: ${why}`);
  }

  /** Send the secret to every question still pending, once each; note their Ids in `answeredIds`. */
  private answerAll(password: Buffer, answeredIds?: Set<string>): void {
    const dir = this.opts.agentDirectory;
    for (const [name, e] of this.questions()) {
      this.refreshStatus(name, e, false);
      if (e.status !== "pending" || e.answered) continue;
      e.answered = true; // one answer per question file, even if sending fails
      if (e.question.id !== "") answeredIds?.add(e.question.id);
      const datagram = answerDatagram(password);
      try {
        sendDatagram(e.question.socket, datagram);
        this.host.log.info(`answered question ${join(dir, name)}${e.question.id ? ` (${e.question.id})` : ""}`);
      } catch (err) {
        this.host.log.warning(`cannot answer question ${join(dir, name)}: ${errorMessage(err)}`);
      } finally {
        datagram.fill(0);
      }
    }
  }

  private fatal(message: string): void {
    if (this.finished || this.exitAfterClient !== null) return;
    this.host.log.error(message);
    if (this.run_) {
      // Never leave a client behind: exit once it has ended (SIGKILL after the grace).
      this.exitAfterClient = 1;
      this.run_.stop(CLIENT_STOP_GRACE_MS);
      return;
    }
    this.finish(1);
  }

  private finish(code: number): void {
    if (this.finished) return;
    this.finished = true;
    this.dropHeld("the agent is exiting");
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
    this.resolveExit(code);
  }
}
