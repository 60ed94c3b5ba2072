// The request protocol between an unprivileged process and the privileged
// one that does network steps for it: framing, validation and limits as
// pure functions, and the unprivileged side keeping within the limits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LineSplitter } from "../../src/protocol/json-lines.js";
import { REQUEST_LIMITS, RequestGuard, Requester, parseRequest, type Request } from "../../src/protocol/privileged-requests.js";

const route = (id: number, address = "2001:db8::5", iface = "eth0") => ({ type: "request", id, op: "add-route", address, interface: iface });

test("LineSplitter: lines across chunks, and null once a line passes the limit", () => {
  const s = new LineSplitter(8);
  const lines = (chunk: string) => s.push(Buffer.from(chunk))?.map((b) => b.toString());
  assert.deepEqual(lines("ab"), []);
  assert.deepEqual(lines("c\n12345678\nx"), ["abc", "12345678"]);
  assert.deepEqual(lines("\n"), ["x"]);
  assert.equal(new LineSplitter(8).push(Buffer.from("123456789\n")), null, "a complete line over the limit");
  const endless = new LineSplitter(8);
  assert.deepEqual(endless.push(Buffer.from("1234")), []);
  assert.equal(endless.push(Buffer.from("56789")), null, "a line without its newline, over the limit");
});

test("parseRequest: an add-route request, and a reason for anything else", () => {
  assert.deepEqual(parseRequest(route(1)), { ok: true, request: route(1) });
  assert.deepEqual(parseRequest(route(2, "192.0.2.7", "enp0s31f6")), { ok: true, request: route(2, "192.0.2.7", "enp0s31f6") });
  const bad: [unknown, string][] = [
    [null, "a message that is not an object"],
    [[1], "a message that is not an object"],
    ["request", "a message that is not an object"],
    [{ type: "start" }, 'a message of type "start"'],
    [{ ...route(1), id: 0 }, "a request with id 0"],
    [{ ...route(1), id: 1.5 }, "a request with id 1.5"],
    [{ ...route(1), id: "1" }, 'a request with id "1"'],
    [{ ...route(1), op: "exec" }, 'a request for an unknown operation "exec"'],
    [{ ...route(1), op: "toString" }, 'a request for an unknown operation "toString"'],
    [{ ...route(1), gateway: "2001:db8::1" }, 'a add-route request with an unknown field "gateway"'],
    [JSON.parse('{"type":"request","id":1,"op":"add-route","address":"::1","interface":"lo","__proto__":{}}'), 'a add-route request with an unknown field "__proto__"'],
    [route(1, "2001:db8::5; reboot"), 'a add-route request with an invalid address "2001:db8::5; reboot"'],
    [route(1, "x".repeat(100)), `a add-route request with an invalid address "${"x".repeat(39)}`],
    [{ ...route(1), address: ["::1"] }, 'a add-route request with an invalid address ["::1"]'],
    [route(1, "2001:db8::5", ""), 'a add-route request with an invalid interface ""'],
    [route(1, "2001:db8::5", "../etc"), 'a add-route request with an invalid interface "../etc"'],
    [route(1, "2001:db8::5", ".."), 'a add-route request with an invalid interface ".."'],
    [route(1, "2001:db8::5", "eth0:1"), 'a add-route request with an invalid interface "eth0:1"'],
    [route(1, "2001:db8::5", "eth 0"), 'a add-route request with an invalid interface "eth 0"'],
    [route(1, "2001:db8::5", "a234567890123456"), 'a add-route request with an invalid interface "a234567890123456"'],
  ];
  for (const [m, reason] of bad) assert.deepEqual(parseRequest(m), { ok: false, reason }, JSON.stringify(m));
});

test("parseRequest: a bring-up request names an interface and nothing else", () => {
  const up = (id: number, iface: unknown) => ({ type: "request", id, op: "bring-up", interface: iface });
  assert.deepEqual(parseRequest(up(3, "enp0s31f6")), { ok: true, request: up(3, "enp0s31f6") });
  const bad: [unknown, string][] = [
    [{ ...up(1, "eth0"), address: "2001:db8::5" }, 'a bring-up request with an unknown field "address"'],
    [up(1, "eth0 reboot"), 'a bring-up request with an invalid interface "eth0 reboot"'],
    [up(1, "a/b"), 'a bring-up request with an invalid interface "a/b"'],
    [up(1, 7), "a bring-up request with an invalid interface 7"],
    [{ type: "request", id: 1, op: "bring-up" }, "a bring-up request with an invalid interface undefined"],
  ];
  for (const [m, reason] of bad) assert.deepEqual(parseRequest(m), { ok: false, reason }, JSON.stringify(m));
});

test("RequestGuard: ids only grow, at most maxUnanswered at once and maxRequests in all", () => {
  const limits = { ...REQUEST_LIMITS, maxUnanswered: 2, maxRequests: 3 };
  const g = new RequestGuard(limits);
  assert.equal(g.admit(route(1)).ok, true);
  assert.deepEqual(g.admit(route(1)), { ok: false, reason: "a request with id 1 after id 1" });
  assert.equal(g.admit(route(5)).ok, true);
  assert.deepEqual(g.admit(route(6)), { ok: false, reason: "a request while 2 were unanswered" });
  g.answered();
  assert.equal(g.admit(route(6)).ok, true);
  g.answered();
  g.answered();
  assert.deepEqual(g.admit(route(7)), { ok: false, reason: "more than 3 requests" });
});

test("Requester: waits for a free slot, refuses past the limit without sending, fails on close", async () => {
  const sent: Request[] = [];
  const r = new Requester((m) => sent.push(m), { ...REQUEST_LIMITS, maxUnanswered: 2, maxRequests: 4 });
  const outcome = (p: Promise<void>) => p.then(() => "ok", (err: Error) => err.message);
  const a = outcome(r.request({ op: "add-route", address: "2001:db8::1", interface: "eth0" }));
  const b = outcome(r.request({ op: "add-route", address: "2001:db8::2", interface: "eth0" }));
  const c = outcome(r.request({ op: "add-route", address: "2001:db8::3", interface: "eth0" }));
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(sent.map((m) => m.id), [1, 2], "the third waits for a slot");
  assert.equal(r.receive({ type: "start" }), false);
  assert.equal(r.receive({ type: "reply", id: 1, error: null }), true);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(sent.map((m) => m.id), [1, 2, 3]);
  r.receive({ type: "reply", id: 2, error: "cannot add a route to 2001:db8::2: refused" });
  await new Promise((resolve) => setImmediate(resolve));
  const d = outcome(r.request({ op: "add-route", address: "2001:db8::4", interface: "eth0" }));
  const e = outcome(r.request({ op: "add-route", address: "2001:db8::5", interface: "eth0" }));
  r.close("the supervisor closed the channel");
  assert.deepEqual(await Promise.all([a, b, c, d, e]), [
    "ok",
    "cannot add a route to 2001:db8::2: refused",
    "the supervisor closed the channel",
    "the supervisor closed the channel",
    "not asked: already 4 requests in this run",
  ]);
  assert.equal(sent.length, 4);
  assert.deepEqual(sent[0], { type: "request", id: 1, op: "add-route", address: "2001:db8::1", interface: "eth0" });
});
