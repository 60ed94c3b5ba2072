// src/sys/unix-dgram.ts: real AF_UNIX datagram sockets through libc.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { bindDatagram, sendDatagram, sockaddrUn, UnixDgramError } from "../../src/sys/unix-dgram.js";
import { tempDir } from "../helpers/index.js";

test("one datagram arrives whole, binary data included", () => {
  using dir = tempDir();
  const path = join(dir.path, "sck");
  const rx = bindDatagram(path);
  try {
    const data = Buffer.concat([Buffer.from("+"), randomBytes(3000), Buffer.from([0])]);
    sendDatagram(path, data);
    sendDatagram(path, Buffer.from("second"));
    assert.deepEqual(rx.receive(1000), data);
    assert.deepEqual(rx.receive(1000), Buffer.from("second"));
    assert.equal(rx.receive(50), null);
  } finally {
    rx.close();
  }
});

test("abstract socket names (as NOTIFY_SOCKET may use)", () => {
  const name = `@mandos-ts-test-${process.pid}-${randomBytes(4).toString("hex")}`;
  const rx = bindDatagram(name);
  try {
    sendDatagram(name, Buffer.from("READY=1"));
    assert.deepEqual(rx.receive(1000), Buffer.from("READY=1"));
  } finally {
    rx.close();
  }
  assert.equal(sockaddrUn("@ab").length, 2 + 1 + 2);
  assert.equal(sockaddrUn("/ab").length, 2 + 3 + 1);
});

function errorCode(f: () => void): string {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof UnixDgramError, String(err));
    assert.ok(!err.message.includes("\n"));
    return `${err.syscall} ${err.code} ${err.message}`;
  }
  assert.fail("no error");
}

test("errors name the call, the socket and errno", () => {
  using dir = tempDir();
  const missing = join(dir.path, "missing");
  assert.match(errorCode(() => sendDatagram(missing, Buffer.from("x"))), new RegExp(`^sendto ENOENT sendto ${missing}: ENOENT \\(`));
  // A socket file nobody is bound to any more.
  const stale = join(dir.path, "stale");
  bindDatagram(stale).close();
  assert.match(errorCode(() => sendDatagram(stale, Buffer.from("x"))), /^sendto ECONNREFUSED .*ECONNREFUSED \(connection refused\)/);
  const plain = join(dir.path, "plain");
  writeFileSync(plain, "");
  assert.match(errorCode(() => sendDatagram(plain, Buffer.from("x"))), /^sendto ECONNREFUSED/);
  assert.match(errorCode(() => sendDatagram(`/${"x".repeat(200)}`, Buffer.from("x"))), /ENAMETOOLONG/);
  assert.match(errorCode(() => bindDatagram(stale)), /^bind EADDRINUSE/);
});
