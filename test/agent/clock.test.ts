// The agent's view of the host: CLOCK_MONOTONIC and asker liveness.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import koffi from "koffi";
import { monotonicMicros, processAlive } from "../../src/agent/host.js";

test("monotonicMicros() is clock_gettime(CLOCK_MONOTONIC), not BOOTTIME or REALTIME", () => {
  const libc = koffi.load("libc.so.6");
  const clockGettime = libc.func("int clock_gettime(int clk, _Out_ void *ts)");
  const read = (clk: number) => {
    const ts = Buffer.alloc(16);
    assert.equal(clockGettime(clk, ts), 0);
    return ts.readBigInt64LE(0) * 1_000_000n + ts.readBigInt64LE(8) / 1000n;
  };
  const CLOCK_REALTIME = 0;
  const CLOCK_MONOTONIC = 1;
  const a = read(CLOCK_MONOTONIC);
  const ours = monotonicMicros();
  const b = read(CLOCK_MONOTONIC);
  assert.ok(a <= ours && ours <= b, `${a} <= ${ours} <= ${b}`);
  // And clearly not the wall clock.
  assert.ok(read(CLOCK_REALTIME) - ours > 1_000_000n);
});

test("processAlive: self yes, a reaped child no, an unreaped zombie no, PID 1 yes", async () => {
  assert.equal(processAlive(process.pid), true);
  assert.equal(processAlive(1), true); // EPERM when not root still means alive
  const child = spawn("true");
  await new Promise((r) => child.on("exit", r));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(processAlive(child.pid!), false);
  // A zombie: after exec, `sleep 3` is the parent of `sleep 0.1` and never reaps it.
  const parent = spawn("sh", ["-c", "sleep 0.1 & echo $!; exec sleep 3"], { stdio: ["ignore", "pipe", "ignore"] });
  try {
    const pid = await new Promise<number>((resolve) => parent.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim()))));
    await new Promise((r) => setTimeout(r, 400));
    assert.doesNotThrow(() => process.kill(pid, 0)); // kill() alone would call it alive
    assert.equal(processAlive(pid), false);
  } finally {
    parent.kill("SIGKILL");
  }
});
