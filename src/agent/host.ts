// The two facts about the host that question decisions need: the
// CLOCK_MONOTONIC time, and whether an asking process still exists.
import { readFileSync } from "node:fs";

/**
 * CLOCK_MONOTONIC in microseconds, the clock of a question's NotAfter.
 * process.hrtime.bigint() is libuv's uv_hrtime(), which on Linux reads
 * clock_gettime(CLOCK_MONOTONIC) — not CLOCK_BOOTTIME or the wall clock;
 * test/agent/clock.test.ts checks it against libc and systemd-ask-password.
 */
export function monotonicMicros(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/**
 * kill(pid, 0): ESRCH means gone, EPERM means alive but not ours to signal.
 * A zombie still answers kill(), so /proc/PID/stat is consulted too: an
 * asker that died but was not reaped yet cannot read an answer either.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // The state letter follows the parenthesised command name, which may itself hold ")".
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return true; // no /proc (or another PID namespace's): trust kill()
  }
}
