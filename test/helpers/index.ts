// Shared test utilities: temporary directories, running programs, and
// explicit skip reasons for tests whose requirements are missing.
import { spawn, spawnSync, type SpawnOptions } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (tests run from dist/test/...). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const BIN = join(ROOT, "bin");

export const isRoot = process.getuid?.() === 0;

export function tempDir(prefix = "mandos-test-"): { path: string; [Symbol.dispose](): void; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  const cleanup = () => rmSync(path, { recursive: true, force: true });
  return { path, cleanup, [Symbol.dispose]: cleanup };
}

export function which(cmd: string): string | null {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Reason to skip, or false: for `test(..., { skip: requires(...) })`. */
export function requires(opts: { root?: boolean; commands?: string[]; files?: string[] }): string | false {
  if (opts.root && !isRoot) return "needs root";
  for (const c of opts.commands ?? []) if (!which(c)) return `needs ${c} (run test/setup.sh as root)`;
  for (const f of opts.files ?? []) if (!existsSync(f)) return `needs ${f} (run test/setup.sh as root)`;
  return false;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Run a program to completion with a hard timeout (kills it after).
 * `onLine` sees each line of its stdout as it comes, with its PID (e.g. to
 * signal it once it reports being ready).
 */
export function run(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { input?: string | Buffer; timeoutMs?: number; onLine?: (line: string, pid: number) => void } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let pending = "";
    child.stdout!.on("data", (d: Buffer) => {
      out.push(d);
      if (!opts.onLine) return;
      pending += d.toString();
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        opts.onLine(line, child.pid ?? -1);
      }
    });
    child.stderr!.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() });
    });
    child.stdin!.on("error", () => {}); // a program may exit without reading its input
    child.stdin!.end(opts.input ?? "");
  });
}
