// Shared by the benchmarks: timing child processes and summarising.
import { spawn } from "node:child_process";

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Wall-clock milliseconds from spawn to exit; rejects on failure or a wrong answer. */
export function timeRun(cmd: string, args: string[], expect?: string, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      if (code !== 0) return reject(new Error(`${cmd} exited ${code}: ${err.trim().split("\n").slice(0, 8).join(" | ")}`));
      if (expect !== undefined && Buffer.concat(out).toString() !== expect) return reject(new Error(`${cmd}: wrong output`));
      resolve(ms);
    });
  });
}

export const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
