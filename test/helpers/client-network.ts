// Network namespaces for the client-network tests. A test file runs its
// effect scenarios inside a namespace by starting itself again under
// `ip netns exec` (which also gives the child a /sys of that namespace);
// in that child, childMain() runs the named scenario and prints its result.
// The child refuses to run in the parent's network namespace, so a
// scenario can never touch the machine's own interfaces or routes.
//
// Importing this file has no effects: the test runner also runs it as a
// test file.
import { spawnSync } from "node:child_process";
import { readlinkSync } from "node:fs";
import { run } from "./index.js";
import { RigCleanup, ip } from "./rig-cleanup.js";

const live = new RigCleanup("mcn");

const ROLE = "MANDOS_CN_SCENARIO";
const ARG = "MANDOS_CN_ARG";
const PARENT_NS = "MANDOS_CN_PARENT_NETNS";
const RESULT = "@@mandos-cn-result@@ ";
const ERROR = "@@mandos-cn-error@@ ";

export type Scenario = (arg: unknown) => Promise<unknown>;

function currentNetns(): string {
  return readlinkSync("/proc/self/ns/net");
}

/** True in a child started by runInNetns(). */
export function isChild(): boolean {
  return process.env[ROLE] !== undefined;
}

/** In the child: run the scenario named by the parent and report; then exit. */
export async function childMain(scenarios: Record<string, Scenario>): Promise<void> {
  const name = process.env[ROLE] ?? "";
  const parentNs = process.env[PARENT_NS];
  try {
    if (!parentNs || parentNs === currentNetns()) throw new Error("refusing to run outside a test network namespace");
    const scenario = scenarios[name];
    if (!scenario) throw new Error(`no scenario ${JSON.stringify(name)}`);
    const arg: unknown = JSON.parse(process.env[ARG] ?? "null");
    const result = await scenario(arg);
    process.stdout.write(`${RESULT}${JSON.stringify(result ?? null)}\n`);
    process.exit(0);
  } catch (err) {
    process.stdout.write(`${ERROR}${(err as Error).message?.replace(/\n/g, " ") ?? String(err)}\n`);
    process.exit(1);
  }
}

/** A namespace of our own (its lo down), and `ip -n NS …` inside it. */
export class Netns {
  private constructor(readonly name: string) {}

  static create(): Netns {
    return new Netns(live.createNamespace({ loopbackUp: false }));
  }

  /** Run `ip -n NAME ARGS`; throws with ip's message on failure. */
  ip(...args: string[]): string {
    return ip(["-n", this.name, ...args]);
  }

  /** Run a program inside the namespace. */
  exec(cmd: string, args: string[], timeoutMs = 20_000) {
    return spawnSync("ip", ["netns", "exec", this.name, cmd, ...args], { encoding: "utf8", timeout: timeoutMs, killSignal: "SIGKILL" });
  }

  /** Link flags as `ip` shows them, e.g. ["BROADCAST","MULTICAST","UP","LOWER_UP"]. */
  flags(dev: string): string[] {
    const [link] = JSON.parse(this.ip("-j", "link", "show", "dev", dev)) as { flags: string[] }[];
    return link.flags;
  }

  routes6(): { dst: string; dev?: string }[] {
    return JSON.parse(this.ip("-j", "-6", "route", "show", "table", "main") || "[]") as { dst: string; dev?: string }[];
  }

  /** A veth pair (both down). */
  veth(a: string, b: string): void {
    this.ip("link", "add", a, "type", "veth", "peer", "name", b);
  }

  /** Delete it now, killing what still runs in it (also done at exit). */
  delete(): void {
    live.removeNamespace(this.name);
  }
}

export interface ChildOutcome<T> {
  ok: boolean;
  result: T | null;
  error: string | null;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Run `scenario` of the test file `file` (its compiled path) inside `ns`.
 * `onLine` sees each line the child prints (e.g. to signal it when ready).
 */
export async function runInNetns<T = unknown>(
  ns: Netns,
  file: string,
  scenario: string,
  arg: unknown = null,
  opts: { timeoutMs?: number; onLine?: (line: string, pid: number) => void } = {},
): Promise<ChildOutcome<T>> {
  const { code, signal, stdout, stderr } = await run("ip", ["netns", "exec", ns.name, process.execPath, file], {
    env: { ...process.env, [ROLE]: scenario, [ARG]: JSON.stringify(arg), [PARENT_NS]: currentNetns() },
    timeoutMs: opts.timeoutMs ?? 30_000,
    onLine: opts.onLine,
  });
  const lines = stdout.toString().split("\n");
  const res = lines.find((l) => l.startsWith(RESULT));
  const bad = lines.find((l) => l.startsWith(ERROR));
  return {
    ok: res !== undefined,
    result: res !== undefined ? (JSON.parse(res.slice(RESULT.length)) as T) : null,
    error: bad !== undefined ? bad.slice(ERROR.length) : res === undefined ? `child ended without a result: ${stderr.trim()}` : null,
    code,
    signal,
    stderr,
  };
}

/** Print a line the parent's onLine() can react to (from a scenario). */
export function tellParent(line: string): void {
  process.stdout.write(`${line}\n`);
}
