// The browser's state machine on stand-in links and a fake clock: when it
// queries, what it reports found and removed (goodbye, silence, vanished
// interface), and how it follows interfaces. The same browser on real
// sockets is in netns.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ServiceBrowser } from "../../src/zeroconf/browse.js";
import type { BrowseOptions, FoundService } from "../../src/zeroconf/types.js";
import { a, aaaa, fakeEffects, netInterface, ptr, recordingLog, srv, type FakeLink } from "./fakes.js";

function rig(opts: Partial<BrowseOptions> = {}, interfaces = [netInterface("eth0", 2, ["fe80::1"], ["169.254.1.1/16"])]) {
  const w = fakeEffects(interfaces);
  const log = recordingLog();
  const events: string[] = [];
  const report = (what: string) => (s: FoundService) => void events.push(`${what} ${s.name} ${s.address} ${s.port} ${s.interfaceName}/${s.interfaceIndex}`);
  const browser = new ServiceBrowser({ log, onFound: report("found"), onRemoved: report("removed"), ...opts }, w.fx);
  return Object.assign(w, { log, events, browser });
}

const queryTimes = (l: FakeLink) => l.take().filter((s) => s.message.type === "query").map((s) => s.at);
const server = (name = "Mandos", address = "fe80::5", ttl = 120) => [ptr(name), srv(name, 4711, "server.local", ttl), aaaa("server.local", address, ttl)];

test("queries at once on a new link, then after 1, 2, 4 … s, up to the longest interval", async () => {
  const r = rig({ queryIntervalMs: 5000 });
  r.browser.start();
  await r.clock.advance(20_000);
  for (const protocol of ["ipv6", "ipv4"] as const) {
    assert.deepEqual(queryTimes(r.link("eth0", protocol)), [0, 1000, 3000, 7000, 12_000, 17_000], protocol);
  }
  r.browser.stop();
  assert.ok(r.links.every((l) => l.closed));
  assert.equal(r.clock.pending, 0);
});

test("a server is reported once per address, with the zone, and removed by its goodbye", async () => {
  const r = rig();
  r.browser.start();
  await r.clock.advance(0);
  const v6 = r.link("eth0", "ipv6");
  v6.receive({ isResponse: true, answers: server() });
  v6.receive({ isResponse: true, answers: server() });
  assert.deepEqual(r.events, ["found Mandos fe80::5%eth0 4711 eth0/2"]);
  v6.receive({ isResponse: true, answers: [aaaa("server.local", "2001:db8::5")] });
  assert.deepEqual(r.events.slice(1), ["found Mandos 2001:db8::5 4711 eth0/2"]);
  // The IPv4 link resolves to IPv4 addresses only.
  r.link("eth0", "ipv4").receive({ isResponse: true, answers: [...server(), a("server.local", "169.254.7.7")] });
  assert.deepEqual(r.events.slice(2), ["found Mandos 169.254.7.7 4711 eth0/2"]);
  r.events.length = 0;
  v6.receive({ isResponse: true, answers: [srv("Mandos", 4711, "server.local", 0)] });
  assert.deepEqual(r.events, ["removed Mandos fe80::5%eth0 4711 eth0/2", "removed Mandos 2001:db8::5 4711 eth0/2"]);
});

test("what is not mDNS is ignored: queries, and responses from a port other than 5353", async () => {
  const r = rig();
  r.browser.start();
  await r.clock.advance(0);
  const v6 = r.link("eth0");
  v6.receive({ isResponse: true, answers: server() }, { port: 40000 });
  v6.receive({ isResponse: false, answers: server() });
  assert.deepEqual(r.events, []);
});

test("an SRV without addresses is asked about; a silent server is removed after the missed queries", async () => {
  const r = rig({ missedQueriesBeforeRemoval: 2, queryIntervalMs: 1000, protocols: ["ipv6"] });
  r.browser.start();
  await r.clock.advance(0);
  const v6 = r.link("eth0");
  v6.take();
  v6.receive({ isResponse: true, answers: [ptr("Mandos"), srv("Mandos", 4711)] });
  assert.deepEqual(v6.take().map((s) => s.message.questions), [[{ name: "server.local", type: "AAAA", class: "IN" }]]);
  v6.receive({ isResponse: true, answers: [aaaa("server.local", "fe80::5")] });
  assert.deepEqual(r.events, ["found Mandos fe80::5%eth0 4711 eth0/2"]);
  await r.clock.advance(2500);
  assert.deepEqual(r.events.slice(1), [], "one query unanswered is not enough");
  await r.clock.advance(1000);
  assert.deepEqual(r.events.slice(1), ["removed Mandos fe80::5%eth0 4711 eth0/2"]);
});

test("interfaces: a named one that is missing is looked for every second; a vanished one takes its servers along", async () => {
  const eth0 = netInterface("eth0", 2, ["fe80::1"]);
  const r = rig({ interfaces: ["eth0", "eth1"], protocols: ["ipv6"], queryIntervalMs: 10_000 }, [eth0]);
  r.browser.start();
  await r.clock.advance(0);
  assert.ok(r.log.lines.includes('test: warning: Zeroconf: no interface "eth1" (yet); will look again'));
  r.link("eth0").receive({ isResponse: true, answers: server() });
  await r.clock.advance(3000);
  assert.deepEqual(queryTimes(r.link("eth0")), [0, 1000, 2000, 3000], "no backing off while eth1 is missing");
  r.interfaces = [eth0, netInterface("eth1", 3, ["fe80::2"])];
  await r.clock.advance(1000);
  assert.deepEqual(queryTimes(r.link("eth1")), [4000, 4000], "the new link's first query, and the round's");
  await r.clock.advance(20_000);
  assert.deepEqual(queryTimes(r.link("eth1")), [14_000, 24_000], "the longest interval once all are there");
  assert.equal(r.log.lines.filter((l) => l.includes('no interface "eth1"')).length, 1, "warned once");
  r.interfaces = [netInterface("eth1", 3, ["fe80::2"])];
  await r.clock.advance(10_000);
  assert.deepEqual(r.events, ["found Mandos fe80::5%eth0 4711 eth0/2", "removed Mandos fe80::5%eth0 4711 eth0/2"]);
  assert.ok(r.link("eth0").closed);
});

test("interfaces are surveyed every second for the first minute, then with the query rounds; a caller's own choice decides", async () => {
  const eth0 = netInterface("eth0", 2, ["fe80::1"]);
  const surveys: number[] = [];
  const r = rig({ protocols: ["ipv6"], queryIntervalMs: 10_000 }, [eth0]);
  const browser = new ServiceBrowser(
    {
      log: r.log,
      onFound: () => {},
      protocols: ["ipv6"],
      queryIntervalMs: 10_000,
      // The client's follower: browses on every interface but "skip0".
      select: (all) => {
        surveys.push(r.clock.time);
        return { chosen: all.filter((i) => i.name !== "skip0"), missing: [] };
      },
    },
    r.fx,
  );
  browser.start();
  await r.clock.advance(4500);
  r.interfaces = [eth0, netInterface("eth1", 3, ["fe80::2"]), netInterface("skip0", 4, ["fe80::3"])];
  await r.clock.advance(500);
  assert.deepEqual(queryTimes(r.link("eth1")), [5000], "seen within a second, not at the round at 7 s");
  assert.throws(() => r.link("skip0"), /no link/);
  await r.clock.advance(60_000);
  assert.deepEqual(surveys.filter((t) => t > 60_000), [65_000], "after the first minute, only the rounds survey (at most every 10 s)");
  const early = [...new Set(surveys.filter((t) => t <= 60_000))];
  assert.deepEqual(early, Array.from({ length: 61 }, (_, i) => i * 1000), "every second until then");
  browser.stop();
  assert.equal(r.clock.pending, 0);
});

test("a link that cannot bind, or a query that cannot be sent, is tried again a second later", async () => {
  const r = rig({ protocols: ["ipv6"] });
  r.bind = false;
  r.browser.start();
  await r.clock.advance(0);
  assert.ok(r.link("eth0").closed);
  r.bind = true;
  await r.clock.advance(1000);
  const link = r.link("eth0");
  assert.ok(!link.closed);
  link.sendOk = false;
  await r.clock.advance(2000);
  assert.deepEqual(queryTimes(link), [1000, 1000, 3000], "then one second, not four");
  link.sendOk = true;
  await r.clock.advance(1000);
  assert.deepEqual(queryTimes(link), [4000]);
  await r.clock.advance(8000);
  assert.deepEqual(queryTimes(link), [12_000]);
});

test("a handler that throws is logged and browsing goes on; nothing is reported after stop", async () => {
  const r = rig({ protocols: ["ipv6"], onFound: () => { throw new Error("boom"); } });
  r.browser.start();
  await r.clock.advance(0);
  r.link("eth0").receive({ isResponse: true, answers: server() });
  assert.ok(r.log.lines.includes("test: error: Zeroconf: onFound handler failed: boom"));
  r.browser.stop();
  r.link("eth0").receive({ isResponse: true, answers: server("Later") });
  await r.clock.advance(60_000);
  assert.equal(r.log.lines.filter((l) => l.includes("Later")).length, 0);
});
