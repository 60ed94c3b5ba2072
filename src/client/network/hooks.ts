// Network hooks (mandos-client(8mandos), NETWORK HOOKS): programs in a
// directory that set up extra interfaces (bridges, VPNs) before the client
// looks for servers, and take them down again at exit.
//
// Behaviour checked against Debian's mandos-client 1.8.16 run in a network
// namespace: hooks run one at a time in byte order of their names (scandir
// with alphasort, C locale), for "stop" in the same order as for "start";
// names outside [A-Za-z0-9_.-] and entries that are not executable regular
// files are skipped; stdin is /dev/null and stdout goes to stderr; DELAY is
// the --delay value printed with C's "%f" ("2.500000"); DEVICE is the
// --interface list joined with commas ("none" included); a failing hook is a
// warning and the client carries on.
// Differences, on purpose:
// - Debian passes no argument (the mode is only in $MODE, so hooks use
//   "${MODE:-$1}"); the manual says the mode is the first argument, so we
//   pass it: hooks written either way work.
// - Debian drops names of interfaces that do not exist yet from DEVICE
//   before running the hooks, so a hook creating the interface named with
//   --interface never sees its name; we pass the names as given, which is
//   what the manual describes.
// - Each hook gets a time limit (Debian waits for ever); at the limit its
//   whole process group is terminated, then killed.
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";
import { open, readdir, stat } from "node:fs/promises";
import type { Logger } from "../../cli/log.js";
import { compareNames } from "../../sys/interfaces.js";

export const DEFAULT_HOOK_DIR = "/lib/mandos/network-hooks.d";

export type HookMode = "start" | "stop" | "files" | "modules";

/** The variables this program sets for hooks (others are inherited). */
export const HOOK_VARIABLES = ["MANDOSNETHOOKDIR", "DEVICE", "MODE", "VERBOSITY", "DELAY", "CONNECT"] as const;

/** Only letters, digits, "_", "." and "-": no editor backups (x~), no dpkg leftovers with odd characters. */
export function isValidHookName(name: string): boolean {
  return /^[A-Za-z0-9_.-]+$/.test(name);
}

/** What a directory entry turned out to be (after following symlinks, as stat(2)). */
export interface HookCandidate {
  name: string;
  /** "file" for a regular file, "other" for anything else, "unreadable" if stat failed. */
  kind: "file" | "other" | "unreadable";
  /** Permission bits (only the execute bits matter). */
  mode: number;
}

export interface HookChoice {
  /** Hooks to run, in order. */
  run: string[];
  /** Entries left out, with the reason (one debug line each). */
  skipped: { name: string; reason: string }[];
}

/** Pure: which entries are hooks, and in which order they run. */
export function chooseHooks(entries: readonly HookCandidate[]): HookChoice {
  const run: string[] = [];
  const skipped: { name: string; reason: string }[] = [];
  for (const e of entries) {
    if (!isValidHookName(e.name)) skipped.push({ name: e.name, reason: "bad name" });
    else if (e.kind === "unreadable") skipped.push({ name: e.name, reason: "cannot stat it" });
    else if (e.kind !== "file") skipped.push({ name: e.name, reason: "not a file" });
    else if ((e.mode & 0o111) === 0) skipped.push({ name: e.name, reason: "not executable" });
    else run.push(e.name);
  }
  run.sort(compareNames);
  return { run, skipped };
}

/**
 * Whether a file starts like something the kernel can execute: "#!" or an
 * ELF header. Node's spawn (execvp) would hand anything else to /bin/sh;
 * Mandos's fexecve refuses it, and so do we.
 */
export function isExecutableFormat(head: Uint8Array): boolean {
  if (head.length >= 2 && head[0] === 0x23 && head[1] === 0x21) return true;
  return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

/** C's printf("%f") of the float Mandos keeps --delay in: 2.5 → "2.500000". */
export function formatDelay(seconds: number): string {
  return Math.fround(seconds).toFixed(6);
}

/** DEVICE: the --interface names (comma lists already split) joined by commas, "none" included. */
export function hookDeviceList(spec: readonly string[]): string {
  return spec.filter((n) => n !== "").join(",");
}

export interface HookSettings {
  hookDir: string;
  /** DEVICE, see hookDeviceList(). */
  device: string;
  debug: boolean;
  /** --delay in seconds. */
  delaySeconds: number;
  /** --connect exactly as given on the command line, or null/undefined without --connect. */
  connect?: string | null;
}

/** Pure: the environment a hook runs with: the inherited one with our variables replaced. */
export function hookEnvironment(
  settings: HookSettings,
  mode: HookMode,
  base: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && !(HOOK_VARIABLES as readonly string[]).includes(k)) env[k] = v;
  }
  env.MANDOSNETHOOKDIR = settings.hookDir;
  env.DEVICE = settings.device;
  env.MODE = mode;
  env.VERBOSITY = settings.debug ? "1" : "0";
  if (mode === "start" || mode === "stop") {
    env.DELAY = formatDelay(settings.delaySeconds);
    if (settings.connect != null) env.CONNECT = settings.connect;
  }
  return env;
}

// ---------------------------------------------------------------- effects

/** The hooks in `dir` to run, in order; null if the directory does not exist. */
export async function listHooks(dir: string, log?: Logger): Promise<string[] | null> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      log?.debug(`network hook directory "${dir}" not found`);
      return null;
    }
    throw new Error(`cannot read network hook directory "${dir}": ${code ?? String(err)}`);
  }
  const entries = await Promise.all(
    names.map(async (name): Promise<HookCandidate> => {
      // Never stat a name we would refuse anyway (it may be a path trick like "..").
      if (!isValidHookName(name)) return { name, kind: "other", mode: 0 };
      try {
        const st = await stat(`${dir}/${name}`);
        return { name, kind: st.isFile() ? "file" : "other", mode: st.mode };
      } catch {
        return { name, kind: "unreadable", mode: 0 };
      }
    }),
  );
  const choice = chooseHooks(entries);
  for (const s of choice.skipped) log?.debug(`ignoring network hook ${JSON.stringify(s.name)}: ${s.reason}`);
  return choice.run;
}

export interface HookResult {
  name: string;
  outcome: "ok" | "failed" | "timeout" | "error" | "aborted";
  /** Exit status, if it exited. */
  code: number | null;
  /** Signal that ended it, if any. */
  signal: NodeJS.Signals | null;
  /** One-line description for anything but "ok". */
  message?: string;
  /** Standard output, for the "files" and "modules" modes only. */
  output?: string;
}

export interface RunHooksOptions extends HookSettings {
  mode: HookMode;
  /** Per-hook time limit; default 60 s. */
  timeoutMs?: number;
  /** Between SIGTERM and SIGKILL at the time limit; default 2 s. */
  killGraceMs?: number;
  log?: Logger;
  /** Base environment; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where hooks' stdout and stderr go in the start/stop modes; default 2 (our stderr), as Mandos. */
  outputFd?: number;
  /** Abort (SIGTERM): the running hook is terminated, the rest are not run. */
  signal?: AbortSignal;
}

/**
 * Run every hook in the directory with MODE, one after the other. Never
 * throws for a hook's failure: each is logged as one warning line and
 * reported in the result; an unreadable directory is one warning too.
 */
export async function runNetworkHooks(opts: RunHooksOptions): Promise<HookResult[]> {
  const log = opts.log;
  let hooks: string[] | null;
  try {
    hooks = await listHooks(opts.hookDir, log);
  } catch (err) {
    log?.warning((err as Error).message);
    return [];
  }
  const results: HookResult[] = [];
  for (const name of hooks ?? []) {
    if (opts.signal?.aborted) break;
    log?.debug(`running network hook "${name}" (${opts.mode})`);
    const result = await runOneHook(name, opts);
    results.push(result);
    if (result.outcome === "ok") log?.debug(`network hook "${name}" ran successfully`);
    else if (result.outcome !== "aborted") log?.warning(result.message ?? `network hook "${name}" failed`);
  }
  return results;
}

async function readHead(path: string): Promise<Uint8Array | null> {
  try {
    const fh = await open(path, "r");
    try {
      const buf = Buffer.alloc(4);
      const { bytesRead } = await fh.read(buf, 0, 4, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
}

async function runOneHook(name: string, opts: RunHooksOptions): Promise<HookResult> {
  const head = await readHead(`${opts.hookDir}/${name}`);
  if (head !== null && !isExecutableFormat(head)) {
    return { name, outcome: "error", code: null, signal: null, message: `cannot run network hook "${name}": not a program (no "#!" or ELF header)` };
  }
  return spawnHook(name, opts);
}

function spawnHook(name: string, opts: RunHooksOptions): Promise<HookResult> {
  const capture = opts.mode === "files" || opts.mode === "modules";
  const out = opts.outputFd ?? 2;
  const stdio: StdioOptions = ["ignore", capture ? "pipe" : out, out];
  const asRoot = process.getuid?.() === 0;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const graceMs = opts.killGraceMs ?? 2_000;
  return new Promise<HookResult>((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(`${opts.hookDir}/${name}`, [opts.mode], {
        argv0: name,
        env: hookEnvironment(opts, opts.mode, opts.env),
        stdio,
        // Own process group, so a hook's children can be killed with it.
        detached: true,
        // As Mandos: run as root with group root and no supplementary
        // groups (libuv drops them when a uid/gid is given).
        ...(asRoot ? { uid: 0, gid: 0 } : {}),
      });
    } catch (err) {
      resolve({ name, outcome: "error", code: null, signal: null, message: `cannot run network hook "${name}": ${(err as Error).message}` });
      return;
    }
    const pid = child.pid;
    const chunks: Buffer[] = [];
    child.stdout?.on("data", (d: Buffer) => chunks.push(d));
    let why: "timeout" | "aborted" | null = null;
    let graceTimer: NodeJS.Timeout | undefined;
    const killGroup = (sig: NodeJS.Signals) => {
      if (pid === undefined) return;
      try {
        process.kill(-pid, sig);
      } catch {
        // Already gone.
      }
    };
    const stop = (reason: "timeout" | "aborted") => {
      if (why !== null) return;
      why = reason;
      killGroup("SIGTERM");
      graceTimer = setTimeout(() => killGroup("SIGKILL"), graceMs);
    };
    const timer = setTimeout(() => stop("timeout"), timeoutMs);
    const onAbort = () => stop("aborted");
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let settled = false;
    const finish = (r: HookResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      opts.signal?.removeEventListener("abort", onAbort);
      resolve(r);
    };
    child.on("error", (err: NodeJS.ErrnoException) => {
      finish({ name, outcome: "error", code: null, signal: null, message: `cannot run network hook "${name}": ${err.code ?? err.message}` });
    });
    // "exit", not "close": a hook may leave a daemon behind (an openvpn
    // hook does) that keeps our stderr open for ever.
    const ended = capture ? "close" : "exit";
    child.on(ended, (code: number | null, signal: NodeJS.Signals | null) => {
      // Left-over processes of a hook that was stopped go with it.
      if (why !== null) killGroup("SIGKILL");
      const base = { name, code, signal, ...(capture ? { output: Buffer.concat(chunks).toString() } : {}) };
      if (why === "timeout") {
        finish({ ...base, outcome: "timeout", message: `network hook "${name}" did not finish within ${timeoutMs / 1000} s; killed` });
      } else if (why === "aborted") {
        finish({ ...base, outcome: "aborted", message: `network hook "${name}" stopped` });
      } else if (signal !== null) {
        finish({ ...base, outcome: "failed", message: `network hook "${name}" died by signal ${signal}` });
      } else if (code !== 0) {
        finish({ ...base, outcome: "failed", message: `network hook "${name}" exited with status ${code}` });
      } else {
        finish({ ...base, outcome: "ok" });
      }
    });
  });
}
