// writePassword on a non-blocking pipe whose reader is slow: the whole
// password arrives, and while the pipe is full the writer sleeps instead of
// spinning on EAGAIN.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ROOT, run } from "../helpers/index.js";

const dist = join(ROOT, "dist", "src");
const SIZE = 256 * 1024; // four times what a pipe holds

// Makes its standard output non-blocking (it is the pipe's write end), then
// writes the password and reports what that cost.
const writer = `
  const { writePassword } = await import(${JSON.stringify(join(dist, "client", "output.js"))});
  const { libcFunctions } = await import(${JSON.stringify(join(dist, "sys", "libc.js"))});
  const { fstatSync } = await import("node:fs");
  const { createHash, randomBytes } = await import("node:crypto");
  const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000;
  const { fcntl } = libcFunctions({ fcntl: "int fcntl(int fd, int cmd, int arg)" })();
  fcntl(1, F_SETFL, fcntl(1, F_GETFL, 0) | O_NONBLOCK);
  const nonBlocking = (fcntl(1, F_GETFL, 0) & O_NONBLOCK) !== 0;
  const password = randomBytes(${SIZE});
  const sha256 = createHash("sha256").update(password).digest("hex");
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  writePassword(password);
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  const used = process.cpuUsage(cpu);
  process.stderr.write(JSON.stringify({ sha256, fifo: fstatSync(1).isFIFO(), nonBlocking, wiped: password.every((b) => b === 0), wallMs, cpuMs: (used.user + used.system) / 1000 }));`;

// Waits a second, then reads 8 KiB every 10 ms.
const reader = `
  const { readSync, writeSync } = require("node:fs");
  const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  pause(1000);
  const buf = Buffer.alloc(8192);
  for (let n; (n = readSync(0, buf)) > 0; pause(10)) writeSync(1, buf, 0, n);`;

test("writePassword waits in poll() on a full non-blocking pipe instead of spinning", { timeout: 30_000 }, async () => {
  const node = JSON.stringify(process.execPath);
  // A shell pipeline: a real pipe(2) between the two, not a socket.
  const r = await run("sh", ["-c", `${node} --input-type=module -e "$WRITER" | ${node} -e "$READER"`], {
    env: { ...process.env, WRITER: writer, READER: reader },
  });
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stderr) as { sha256: string; fifo: boolean; nonBlocking: boolean; wiped: boolean; wallMs: number; cpuMs: number };
  assert.equal(report.fifo, true);
  assert.equal(report.nonBlocking, true);
  assert.equal(r.stdout.length, SIZE);
  assert.equal(createHash("sha256").update(r.stdout).digest("hex"), report.sha256, "all of it arrives, in order");
  assert.equal(report.wiped, true);
  assert.ok(report.wallMs > 900, `the reader held the writer back (${report.wallMs} ms)`);
  assert.ok(report.cpuMs < 300, `the writer slept while it waited: ${report.cpuMs} ms of CPU in ${report.wallMs} ms`);
});
