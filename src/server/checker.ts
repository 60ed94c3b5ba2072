// Runs checker commands: "/bin/sh -c COMMAND" in "/", stdin from /dev/null,
// output shown only in debug mode (as Mandos does), as the server's own
// (already unprivileged) user. Each checker gets its own process group, so
// stopping it also stops whatever the shell started (fping, ssh-keyscan…).
import { spawn, type ChildProcess } from "node:child_process";
import type { CheckerResult } from "./client-model.js";
import { constants } from "node:os";

export interface CheckerRunnerOptions {
  /** Show checkers' stdout/stderr (debug mode); otherwise discard them. */
  showOutput: boolean;
  /** After SIGTERM, how long before SIGKILL. */
  killGraceMs?: number;
  shell?: string;
  warn?: (msg: string) => void;
}

export class CheckerRunner {
  private running = new Map<string, ChildProcess>();
  private readonly killGraceMs: number;
  private readonly shell: string;

  constructor(private readonly opts: CheckerRunnerOptions) {
    this.killGraceMs = opts.killGraceMs ?? 5000;
    this.shell = opts.shell ?? "/bin/sh";
  }

  /** Start a checker; `key` names it for kill(). onExit is called once. */
  spawn(key: string, command: string, onExit: (result: CheckerResult) => void): void {
    let done = false;
    const finish = (result: CheckerResult) => {
      if (done) return;
      done = true;
      if (this.running.get(key) === child) this.running.delete(key);
      onExit(result);
    };
    const out = this.opts.showOutput ? "inherit" : "ignore";
    const child = spawn(this.shell, ["-c", command], {
      cwd: "/",
      stdio: ["ignore", out, out],
      detached: true,
    });
    this.running.set(key, child);
    child.on("error", (err) => {
      this.opts.warn?.(`could not run checker: ${err.message}`);
      // As a shell reports a command it cannot run.
      finish({ code: 127 });
    });
    child.on("exit", (code, signal) => {
      if (code !== null) finish({ code });
      else finish({ signal: signal ? (constants.signals[signal] ?? 0) : 0 });
    });
  }

  /** Stop a checker and its children: SIGTERM, then SIGKILL after a grace period. */
  kill(key: string): void {
    const child = this.running.get(key);
    if (!child) return;
    this.running.delete(key);
    const signalGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        try {
          child.kill(sig);
        } catch {
          // already gone
        }
      }
    };
    signalGroup("SIGTERM");
    if (child.exitCode === null && child.signalCode === null) {
      const timer = setTimeout(() => signalGroup("SIGKILL"), this.killGraceMs);
      timer.unref();
      child.once("exit", () => clearTimeout(timer));
    }
  }

  killAll(): void {
    for (const key of [...this.running.keys()]) this.kill(key);
  }

  get count(): number {
    return this.running.size;
  }
}
