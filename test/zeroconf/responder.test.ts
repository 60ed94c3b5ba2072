// The built-in responder's state machine on stand-in links and a fake
// clock: probing, announcing, renaming on conflicts and lost tie-breaks,
// the rename limit, answering queries, following interfaces, goodbyes.
// The same responder on real sockets is in netns.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Responder, type ResponderSettings } from "../../src/zeroconf/responder.js";
import { FLAG_AA, type DnsRecord } from "../../src/zeroconf/dns.js";
import { aaaa, fakeEffects, netInterface, ptr, recordingLog, srv, txt, type FakeLink, type Sent } from "./fakes.js";

const INST = "Mandos._mandos._tcp.local";

function rig(settings: Partial<ResponderSettings> = {}, interfaces = [netInterface("eth0", 2, ["fe80::1"], ["169.254.1.1/16"])]) {
  const w = fakeEffects(interfaces);
  const log = recordingLog();
  const events: string[] = [];
  const responder = new Responder(
    { name: "Mandos", serviceType: "_mandos._tcp", port: 4711, hostLabel: "server", protocols: ["ipv6"], maxRenames: 5, log, ...settings },
    {
      established: () => void events.push("established"),
      renamed: (n) => void events.push(`renamed ${n}`),
      failed: (err) => void events.push(`failed ${err.message}`),
    },
    w.fx,
  );
  return Object.assign(w, { log, events, responder });
}

const isProbe = (s: Sent) => s.message.type === "query" && (s.message.authorities?.length ?? 0) > 0;
const probedName = (s: Sent) => s.message.questions?.[0]?.name;
const answerTypes = (s: Sent) => (s.message.answers ?? []).map((r) => r.type).sort();

/** Start and run until every link has announced (twice). */
async function announced(r: ReturnType<typeof rig>) {
  r.responder.start();
  await r.clock.advance(2000);
  for (const l of r.links) l.take();
}

test("probes three times 250 ms apart, announces twice a second apart, and is established once every link is", async () => {
  const r = rig({ protocols: ["ipv6", "ipv4"] });
  r.random = 0.5;
  r.responder.start();
  const [v6, v4] = [r.link("eth0", "ipv6"), r.link("eth0", "ipv4")];
  await r.clock.advance(999);
  for (const l of [v6, v4]) {
    const sent = l.take();
    assert.deepEqual(sent.map((s) => [s.at, isProbe(s) ? "probe" : s.message.type]), [
      [125, "probe"],
      [375, "probe"],
      [625, "probe"],
      [875, "response"],
    ]);
    assert.equal(probedName(sent[0]!), INST);
    assert.deepEqual(sent[0]!.message.questions?.[1], { name: "server.local", type: "ANY", class: "IN" });
    assert.equal(sent[3]!.message.flags, FLAG_AA);
    assert.deepEqual(answerTypes(sent[3]!), l === v6 ? ["AAAA", "PTR", "PTR", "SRV", "TXT"] : ["A", "PTR", "PTR", "SRV", "TXT"]);
  }
  assert.deepEqual(r.events, ["established"], "once, when both links had announced");
  await r.clock.advance(1000);
  assert.deepEqual(v6.take().map((s) => s.at), [1875], "the second announcement");
  await r.clock.advance(60_000);
  assert.equal(v6.sent.length, 0, "then quiet until asked");
  assert.equal(r.clock.pending, 0);
  assert.ok(r.log.lines.includes('test: Zeroconf: announcing service "Mandos" (_mandos._tcp) on port 4711 with the built-in mDNS responder'));
});

test("a conflicting response renames the service and probes again under the new name", async () => {
  const r = rig();
  r.responder.start();
  await r.clock.advance(0);
  const link = r.link("eth0");
  assert.equal(probedName(link.take()[0]!), INST);
  link.receive({ isResponse: true, answers: [srv("Mandos", 9999, "other.local")] });
  assert.equal(r.responder.name, "Mandos #2");
  assert.deepEqual(r.events, ["renamed Mandos #2"]);
  await r.clock.advance(1000);
  const sent = link.take();
  assert.deepEqual(sent.filter(isProbe).map(probedName), Array(3).fill("Mandos #2._mandos._tcp.local"));
  assert.deepEqual(r.events, ["renamed Mandos #2", "established"]);
  // Identical data (our own echo) and goodbyes are no conflict; nor is a response from another port.
  link.receive({ isResponse: true, answers: [srv("Mandos #2", 4711)] });
  link.receive({ isResponse: true, answers: [srv("Mandos #2", 1, "x.local", 0)] });
  link.receive({ isResponse: true, answers: [srv("Mandos #2", 1, "x.local")] }, { port: 40000 });
  assert.equal(r.responder.name, "Mandos #2");
  // Another address for our host name renames the host, not the service.
  link.receive({ isResponse: true, answers: [aaaa("server.local", "fe80::77")] });
  assert.equal(r.responder.name, "Mandos #2");
  await r.clock.advance(1000);
  assert.deepEqual(link.take().filter(isProbe).map((s) => s.message.questions?.[1]?.name), Array(3).fill("server-2.local"));
});

test("a simultaneous probe: the loser renames, the winner carries on", async () => {
  const r = rig();
  r.responder.start();
  await r.clock.advance(0);
  const link = r.link("eth0");
  link.receive({ questions: [{ name: INST, type: "ANY" }], authorities: [srv("Mandos", 4710), txt("Mandos")] });
  assert.equal(r.responder.name, "Mandos", "their records sort lower: we win");
  link.receive({ questions: [{ name: INST, type: "ANY" }], authorities: [srv("Mandos", 4712), txt("Mandos")] });
  assert.equal(r.responder.name, "Mandos #2", "theirs sort higher: we lose and rename");
  await r.clock.advance(1000);
  assert.deepEqual(r.events, ["renamed Mandos #2", "established"]);
});

test("past the rename limit it fails, stops without goodbye, and closes its links", async () => {
  const r = rig({ maxRenames: 1 });
  await announced(r);
  const link = r.link("eth0");
  link.receive({ isResponse: true, answers: [srv("Mandos", 9999, "other.local")] });
  await r.clock.advance(1000);
  link.take();
  link.receive({ isResponse: true, answers: [srv("Mandos #2", 9999, "other.local")] });
  await r.clock.advance(0);
  assert.deepEqual(r.events, ["established", "renamed Mandos #2", "established", "failed Zeroconf: no suitable service name found after 1 renames"]);
  assert.ok(r.log.lines.includes("test: error: Zeroconf: no suitable service name found after 1 renames"));
  assert.deepEqual(link.sent, [], "no goodbye");
  assert.ok(link.closed);
  assert.equal(r.clock.pending, 0);
});

test("queries: multicast answers at most once a second per record, legacy unicast to the sender with short TTLs", async () => {
  const r = rig();
  await announced(r);
  const link = r.link("eth0");
  await r.clock.advance(1000);
  const query = { questions: [{ name: "_mandos._tcp.local", type: "PTR" }] };
  link.receive(query);
  assert.equal(link.sent.length, 0, "a shared record's answer waits 20-120 ms");
  await r.clock.advance(20);
  const [answer] = link.take();
  assert.deepEqual(answerTypes(answer!), ["PTR"]);
  assert.deepEqual((answer!.message.additionals ?? []).map((x) => x.type).sort(), ["AAAA", "SRV", "TXT"]);
  assert.equal(answer!.to, undefined, "multicast");
  link.receive(query);
  await r.clock.advance(500);
  assert.equal(link.sent.length, 0, "not again within a second");
  link.receive({ questions: [{ name: INST, type: "SRV" }] });
  assert.deepEqual(link.take().map(answerTypes), [["SRV"]], "a unique record is answered at once");
  await r.clock.advance(600);
  link.receive(query);
  await r.clock.advance(120);
  assert.equal(link.take().length, 1, "a second later, again");
  link.receive({ questions: [{ name: "_mandos._tcp.local", type: "PTR" }], answers: [ptr("Mandos")] });
  await r.clock.advance(2000);
  assert.equal(link.take().length, 0, "known answer suppressed");

  link.receive({ id: 77, ...query }, { address: "fe80::5", port: 40000 });
  const [legacy] = link.take();
  assert.deepEqual(legacy!.to, { address: "fe80::5", port: 40000 });
  assert.equal(legacy!.message.id, 77);
  assert.deepEqual(legacy!.message.questions, query.questions);
  const all: DnsRecord[] = [...(legacy!.message.answers ?? []), ...(legacy!.message.additionals ?? [])];
  assert.ok(all.length === 4 && all.every((x) => x.ttl! <= 10 && x.flush === false));
});

test("follows the interfaces: new addresses re-announced, a vanished interface closed, an unbound link retried", async () => {
  const r = rig({}, [netInterface("eth0", 2, ["fe80::1"]), netInterface("eth1", 3, ["fe80::2"])]);
  await announced(r);
  const [eth0, eth1] = [r.link("eth0"), r.link("eth1")];
  r.interfaces = [netInterface("eth0", 2, ["fe80::1", "fe80::3"])];
  r.responder.reconcile();
  const [update] = eth0.take();
  assert.deepEqual(update!.message.answers?.filter((x) => x.type === "AAAA").map((x) => x.data), ["fe80::1", "fe80::3"]);
  assert.ok(eth1.closed && !eth0.closed);
  assert.equal(r.links.length, 2, "nothing reopened");

  r.bind = false;
  r.interfaces = [netInterface("eth0", 2, ["fe80::1", "fe80::3"]), netInterface("eth2", 4, ["fe80::4"])];
  r.responder.reconcile();
  await r.clock.advance(0);
  assert.ok(r.link("eth2").closed, "a link that could not bind is dropped");
  r.bind = true;
  r.responder.reconcile();
  await r.clock.advance(1000);
  assert.equal(r.link("eth2").take().filter(isProbe).length, 3, "the next survey opens it again");
  // The same interface under a new index (deleted and created again) gets a new link.
  r.interfaces = [netInterface("eth0", 9, ["fe80::1", "fe80::3"])];
  r.responder.reconcile();
  assert.ok(eth0.closed);
  assert.equal(r.link("eth0").interfaceIndex, 9);
});

test("no interface to announce on: warned, and the start counts as established", () => {
  const r = rig({ interfaceName: "eth7" });
  r.responder.start();
  assert.deepEqual(r.events, ["established"]);
  assert.ok(r.log.lines.includes('test: warning: Zeroconf: no interface "eth7" (yet); will announce when it appears'));
  assert.ok(r.log.lines.includes('test: warning: Zeroconf: no interface to announce "Mandos" on yet'));
});

test("stop: goodbyes with TTL 0 for the service's own records only, then the links close", async () => {
  const r = rig({}, [netInterface("eth0", 2, ["fe80::1"]), netInterface("eth1", 3, ["fe80::2"])]);
  await announced(r);
  r.responder.reconcile();
  r.interfaces = [...r.interfaces, netInterface("eth2", 4, ["fe80::4"])];
  r.responder.reconcile(); // eth2 still probing: no goodbye there
  await r.clock.advance(0);
  r.link("eth2").take();
  await r.responder.stop();
  for (const name of ["eth0", "eth1"]) {
    const link: FakeLink = r.link(name);
    const [bye] = link.take();
    assert.deepEqual(bye!.message.answers?.map((x) => [x.type, x.ttl]), [["PTR", 0], ["SRV", 0], ["TXT", 0]]);
    assert.ok(link.closed);
  }
  assert.deepEqual(r.link("eth2").sent, []);
  assert.ok(r.link("eth2").closed);
  assert.equal(r.clock.pending, 0);
  r.link("eth0").receive({ questions: [{ name: INST, type: "SRV" }] });
  assert.deepEqual(r.link("eth0").sent, [], "deaf once stopped");
});
