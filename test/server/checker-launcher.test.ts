// The checker user and the messages between the server and its checker
// launcher, which runs as that user and is therefore checked both ways.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkerIdentity, parseReport, parseRequest } from "../../src/server/checker-launcher.js";

const PASSWD = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
_mandos:x:104:112::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
broken:x:notanumber:1::/:/bin/sh
`;

test("checker_user: a name or a uid, with the user's own group; nobody falls back to 65534; never root", () => {
  assert.deepEqual(checkerIdentity("nobody", PASSWD), { user: "nobody", uid: 65534, gid: 65534 });
  assert.deepEqual(checkerIdentity("daemon", PASSWD), { user: "daemon", uid: 1, gid: 1 });
  assert.deepEqual(checkerIdentity("104", PASSWD), { user: "_mandos", uid: 104, gid: 112 });
  assert.deepEqual(checkerIdentity("4242", PASSWD), { user: null, uid: 4242, gid: 4242 }, "a uid without an entry: its own number as group");
  assert.deepEqual(checkerIdentity("nobody", "root:x:0:0::/:/bin/sh\n"), { user: null, uid: 65534, gid: 65534 });
  assert.throws(() => checkerIdentity("root", PASSWD), { message: 'checker_user: "root" is root; checkers must run unprivileged' });
  assert.throws(() => checkerIdentity("0", PASSWD), /is root/);
  assert.throws(() => checkerIdentity("broken", PASSWD), { message: 'checker_user: no user "broken" in /etc/passwd' });
});

test("launcher reports: only well-formed ones pass, and only their known fields", () => {
  assert.deepEqual(parseReport({ type: "ready" }), { type: "ready" });
  assert.deepEqual(parseReport({ type: "exit", key: "/clients/a#1", result: { code: 3 }, extra: 1 }), { type: "exit", key: "/clients/a#1", result: { code: 3 } });
  assert.deepEqual(parseReport({ type: "exit", key: "k", result: { signal: 9 } }), { type: "exit", key: "k", result: { signal: 9 } });
  assert.equal(parseReport({ type: "warning", message: "x".repeat(10_000) })?.type, "warning");
  assert.equal((parseReport({ type: "warning", message: "x".repeat(10_000) }) as { message: string }).message.length, 500);
  for (const bad of [null, "ready", [], { type: "exit", key: 1, result: { code: 0 } }, { type: "exit", key: "k", result: { code: "0" } }, { type: "exit", key: "k" }, { type: "failed" }, { type: "approve" }]) {
    assert.equal(parseReport(bad), null, JSON.stringify(bad));
  }
});

test("launcher requests: spawn and kill only", () => {
  assert.deepEqual(parseRequest({ type: "spawn", key: "k", command: "true" }), { type: "spawn", key: "k", command: "true" });
  assert.deepEqual(parseRequest({ type: "kill", key: "k" }), { type: "kill", key: "k" });
  for (const bad of [null, { type: "spawn", key: "k" }, { type: "kill" }, { type: "exec", key: "k", command: "x" }]) assert.equal(parseRequest(bad), null);
});
