// Checkers run as a user of their own (checker_user, by default nobody),
// not as the server's: the server's user may call every D-Bus method,
// Approve included, while a checker runs whatever clients.conf says against
// hosts the network controls. The server gives up root once its socket is
// bound, so before that it starts this launcher: a small process that
// drops to the checker user at once and then runs checkers when asked over
// its IPC channel. It holds no privilege and no secret, and it exits when
// the server does. Every checker shares that one user, so checkers can
// still disturb one another, as they could before; they can no longer act
// as the server.
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { CheckerResult } from "./client-model.js";
import type { Checkers } from "./server.js";
import type { Identity } from "./privileges.js";

export type LauncherRequest = { type: "spawn"; key: string; command: string } | { type: "kill"; key: string };

export type LauncherReport =
  | { type: "ready" }
  | { type: "exit"; key: string; result: CheckerResult }
  | { type: "warning"; message: string }
  | { type: "failed"; message: string };

const isObject = (m: unknown): m is Record<string, unknown> => typeof m === "object" && m !== null;
const isInt = (v: unknown): v is number => Number.isSafeInteger(v);

/** The launcher's messages, checked field by field: it runs as the checkers' user. */
export function parseReport(m: unknown): LauncherReport | null {
  if (!isObject(m)) return null;
  switch (m.type) {
    case "ready":
      return { type: "ready" };
    case "exit": {
      const r = m.result;
      if (typeof m.key !== "string" || !isObject(r)) return null;
      if (isInt(r.code)) return { type: "exit", key: m.key, result: { code: r.code } };
      if (isInt(r.signal)) return { type: "exit", key: m.key, result: { signal: r.signal } };
      return null;
    }
    case "warning":
    case "failed":
      return typeof m.message === "string" ? { type: m.type, message: m.message.slice(0, 500) } : null;
    default:
      return null;
  }
}

/** The server's requests, checked the same way by the launcher. */
export function parseRequest(m: unknown): LauncherRequest | null {
  if (!isObject(m) || typeof m.key !== "string") return null;
  if (m.type === "kill") return { type: "kill", key: m.key };
  if (m.type === "spawn" && typeof m.command === "string") return { type: "spawn", key: m.key, command: m.command };
  return null;
}

export interface LauncherOptions {
  who: Identity;
  showOutput: boolean;
  warn(msg: string): void;
  /** After start-up: the launcher died, no checker can run any more. */
  lost(msg: string): void;
}

/** The default checker user when the system has no "nobody" entry. */
const NOBODY = 65534;

/**
 * checker_user as an identity, from /etc/passwd's text: a user name or a
 * uid, with that user's own group. Root is refused.
 */
export function checkerIdentity(value: string, passwd: string): Identity {
  const entries = passwd
    .split("\n")
    .map((line) => line.split(":"))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!))
    .map((f) => ({ user: f[0]!, uid: Number(f[2]), gid: Number(f[3]) }));
  let who: Identity | undefined = entries.find((e) => e.user === value);
  if (!who && /^\d+$/.test(value)) {
    const uid = Number(value);
    const e = entries.find((x) => x.uid === uid);
    who = { user: e?.user ?? null, uid, gid: e?.gid ?? uid };
  }
  if (!who && value === "nobody") who = { user: null, uid: NOBODY, gid: NOBODY };
  if (!who) throw new Error(`checker_user: no user ${JSON.stringify(value)} in /etc/passwd`);
  if (who.uid === 0) throw new Error(`checker_user: ${JSON.stringify(value)} is root; checkers must run unprivileged`);
  return who;
}

/** As a shell reports a command it could not run: the check fails. */
const NOT_RUN: CheckerResult = { code: 127 };
const START_TIMEOUT_MS = 10_000;

/** The server's side: Checkers whose processes the launcher starts. */
export class CheckerLauncher implements Checkers {
  private readonly waiting = new Map<string, (result: CheckerResult) => void>();
  private alive = true;
  private stopping = false;
  /** Resolves once the launcher runs as the checker user; rejects with a one-line reason. */
  readonly ready: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    opts: LauncherOptions,
  ) {
    let started = false;
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the checker launcher did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      child.on("message", (raw: unknown) => {
        const m = parseReport(raw);
        if (m === null) return opts.warn("checker launcher: ignored a malformed message");
        switch (m.type) {
          case "ready":
            started = true;
            clearTimeout(timer);
            return resolve();
          case "failed":
            clearTimeout(timer);
            return reject(new Error(m.message));
          case "warning":
            return opts.warn(m.message);
          case "exit":
            return this.finish(m.key, m.result);
        }
      });
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot start the checker launcher: ${err.message}`));
      });
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        this.alive = false;
        const why = `the checker launcher exited (${signal ?? `code ${code}`})`;
        if (!started) return reject(new Error(why));
        if (!this.stopping) opts.lost(`${why}: checkers cannot run until the server restarts`);
        for (const key of [...this.waiting.keys()]) this.finish(key, NOT_RUN);
      });
    });
  }

  /** Start the launcher; the caller must be root, and awaits `ready` before use. */
  static start(opts: LauncherOptions): CheckerLauncher {
    const program = fileURLToPath(new URL("./checker-launcher-main.js", import.meta.url));
    const child = fork(program, [String(opts.who.uid), String(opts.who.gid), opts.showOutput ? "show" : "hide"], {
      cwd: "/",
      // Its own session: a terminal's ^C reaches the server, which stops it.
      detached: true,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      serialization: "json",
    });
    return new CheckerLauncher(child, opts);
  }

  spawn(key: string, command: string, onExit: (result: CheckerResult) => void): void {
    this.waiting.set(key, onExit);
    // Never call back from inside the caller's change.
    if (!this.alive) return void setImmediate(() => this.finish(key, NOT_RUN));
    this.send({ type: "spawn", key, command });
  }

  kill(key: string): void {
    this.send({ type: "kill", key });
  }

  killAll(): void {
    this.stopping = true;
    for (const key of this.waiting.keys()) this.kill(key);
  }

  private finish(key: string, result: CheckerResult): void {
    const onExit = this.waiting.get(key);
    if (!onExit) return;
    this.waiting.delete(key);
    onExit(result);
  }

  private send(m: LauncherRequest): void {
    if (this.alive && this.child.connected) this.child.send(m);
  }
}
