// Rig for password-agent tests with systemd's real ask-password tools.
// systemd-ask-password only uses /run/systemd/ask-password, so every
// scenario runs in fresh namespaces — mount (a private tmpfs on that
// directory) and PID (when the scenario ends or is killed, the kernel kills
// every process left in it) — via unshare(1). The test file itself is the
// program run inside: with AGENT_NS_SCENARIO set it runs that scenario and
// writes a JSON report for the outer test to check.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { BIN, requires } from "./index.js";

export const ASK_DIR = "/run/systemd/ask-password";
export const REPLY_PASSWORD = "/lib/systemd/systemd-reply-password";
const INNER = "AGENT_NS_SCENARIO";

export const needsAskRig = () =>
  requires({ root: true, commands: ["unshare", "mount", "systemd-ask-password"], files: [REPLY_PASSWORD] });

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Scenario = (params: Record<string, Json>, rig: InnerRig) => Promise<Json>;

export interface NamespaceRun {
  report: Record<string, Json>;
  /** Standard error of the program run inside (the scenario's own diagnostics). */
  stderr: string;
}

/** Outer side: run `scenario` of `testFile` inside new mount+PID namespaces. */
export async function runScenario(
  testFile: string,
  scenario: string,
  params: Record<string, Json> = {},
  timeoutMs = 30_000,
): Promise<NamespaceRun> {
  // Everything the scenario writes lives in here, removed even if it is killed.
  const work = mkdtempSync(join(tmpdir(), "agent-ns-"));
  chmodSync(work, 0o755); // the fake client runs as an unprivileged user
  const reportPath = join(work, "report.json");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    [INNER]: scenario,
    AGENT_NS_PARAMS: JSON.stringify(params),
    AGENT_NS_REPORT: reportPath,
    AGENT_NS_WORK: work,
  };
  // Inside, the file must not behave as a node:test child process.
  delete env.NODE_TEST_CONTEXT;
  try {
    const child = spawn(
      "unshare",
      ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc", process.execPath, testFile],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    // Whatever the inner program prints goes to the error message, never to the test runner's stdout.
    child.stdout!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const code: number | null = await new Promise((resolve) => child.on("close", (c) => resolve(c)));
    clearTimeout(timer);
    let report: Record<string, Json>;
    try {
      report = JSON.parse(readFileSync(reportPath, "utf8")) as Record<string, Json>;
    } catch {
      throw new Error(`scenario ${scenario} left no report (exit ${code}); stderr:\n${stderr}`);
    }
    if (report["error"]) throw new Error(`scenario ${scenario} failed: ${String(report["error"])}\nstderr:\n${stderr}`);
    return { report, stderr };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Inner side: if this process is a scenario run, run it and exit; else return. */
export async function runScenarioIfInner(scenarios: Record<string, Scenario>): Promise<boolean> {
  const name = process.env[INNER];
  if (!name) return false;
  const reportPath = process.env.AGENT_NS_REPORT!;
  const rig = new InnerRig();
  let report: Json;
  try {
    const scenario = scenarios[name];
    if (!scenario) throw new Error(`no scenario ${name}`);
    // PID 1 of a new PID namespace: make sure the tmpfs goes where a private mount can be.
    if (process.pid !== 1) throw new Error("not in a new PID namespace");
    rig.mountAskDirectory();
    report = await scenario(JSON.parse(process.env.AGENT_NS_PARAMS ?? "{}") as Record<string, Json>, rig);
  } catch (err) {
    report = { error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
  rig.cleanup();
  writeFileSync(reportPath, JSON.stringify(report));
  process.exit(0);
}

export interface Exit {
  code: number | null;
  signal: string | null;
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited (and its pipes closed). */
  done: Promise<Exit>;
}

export interface QuestionFile {
  file: string;
  pid: number;
  socket: string;
  id: string;
  notAfter: string;
}

/** Helpers for the program running inside the namespaces. */
export class InnerRig {
  private readonly procs: Proc[] = [];
  readonly work: string;

  constructor() {
    // Readable and executable by the unprivileged user the client runs as.
    this.work = mkdtempSync(join(process.env.AGENT_NS_WORK ?? tmpdir(), "rig-"));
    chmodSync(this.work, 0o755);
  }

  mountAskDirectory(): void {
    mkdirSync(ASK_DIR, { recursive: true });
    // mode=0755 as systemd makes it (a bare tmpfs would be 1777).
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", ASK_DIR], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`mount tmpfs on ${ASK_DIR}: ${r.stderr}`);
  }

  spawn(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string | Buffer } = {}): Proc {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString("latin1")));
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.stdin!.on("error", () => {});
    child.stdin!.end(opts.input ?? "");
    const done = new Promise<Exit>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, signal) => resolve({ code, signal }));
    });
    const p: Proc = { child, pid: child.pid!, stdout: () => out, stderr: () => err, done };
    this.procs.push(p);
    return p;
  }

  /** systemd-ask-password asking through the agent mechanism. */
  ask(opts: { id?: string; timeout?: number; echo?: boolean; acceptCached?: boolean; message?: string } = {}): Proc {
    const args = ["--no-tty", "-n", `--timeout=${opts.timeout ?? 20}`];
    if (opts.id !== undefined) args.push(`--id=${opts.id}`);
    if (opts.echo) args.push("--echo");
    if (opts.acceptCached) args.push("--accept-cached");
    args.push(opts.message ?? "Password:");
    return this.spawn("systemd-ask-password", args);
  }

  /** Our agent (bin/password-agent) with the given arguments. */
  agent(args: string[]): Proc {
    return this.spawn(process.execPath, [join(BIN, "password-agent"), ...args]);
  }

  questions(): QuestionFile[] {
    const out: QuestionFile[] = [];
    for (const file of readdirSync(ASK_DIR)) {
      if (!file.startsWith("ask.")) continue;
      let text: string;
      try {
        text = readFileSync(join(ASK_DIR, file), "utf8");
      } catch {
        continue; // not a readable file (the bad ones), or gone
      }
      const get = (k: string): string => text.match(new RegExp(`^${k}=(.*)$`, "m"))?.[1] ?? "";
      out.push({ file, pid: Number(get("PID")), socket: get("Socket"), id: get("Id"), notAfter: get("NotAfter") });
    }
    return out;
  }

  /** The question file written by the asker with this PID. */
  async questionOf(asker: Proc, timeoutMs = 5000): Promise<QuestionFile> {
    let q: QuestionFile | undefined;
    await waitFor(() => (q = this.questions().find((x) => x.pid === asker.pid)) !== undefined, timeoutMs, `question of PID ${asker.pid}`);
    return q!;
  }

  /** A fake Mandos client: a shell script, readable and executable by anyone. */
  script(name: string, body: string): string {
    const path = join(this.work, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    chmodSync(path, 0o755);
    return path;
  }

  /** A file the unprivileged client may write its observations to. */
  recordFile(name: string): string {
    const path = join(this.work, name);
    writeFileSync(path, "", { mode: 0o666 });
    chmodSync(path, 0o666);
    return path;
  }

  cleanup(): void {
    for (const p of this.procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    rmSync(this.work, { recursive: true, force: true });
  }
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolve with the exit of p, or reject after timeoutMs. */
export function exitWithin(p: Proc, timeoutMs: number, what: string): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not exit within ${timeoutMs} ms; stderr:\n${p.stderr()}`)), timeoutMs);
    p.done.then(
      (e) => {
        clearTimeout(t);
        resolve(e);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
