// The pure parts of browsing and responding: the service cache (resolution,
// goodbyes, cache-flush, silence, limits), answer selection, conflict
// detection and probe tie-break. Time is passed in; no network.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ServiceCache, diffReports, reportKey, sortResolved, type Resolved } from "../../src/zeroconf/browse-cache.js";
import { answerQuestions, buildRecords, findConflict, probeTieBreak, uniqueRecords } from "../../src/zeroconf/records.js";
import { asReceived, decodeMessage, dnsPacket, type DnsRecord } from "../../src/zeroconf/dns.js";
import { a, aaaa, ptr, srv } from "./fakes.js";

const T = "_mandos._tcp";

test("a PTR, SRV and addresses resolve to one entry per address of the link's family, link-local first", () => {
  const recs = [ptr("Mandos"), srv("Mandos", 4711), a("server.local", "169.254.1.2"), aaaa("server.local", "2001:db8::1"), aaaa("server.local", "fe80::1")];
  const c = new ServiceCache(T, "ipv6");
  c.ingest(recs, 0);
  assert.deepEqual(
    c.resolved(10).map((x) => [x.name, x.host, x.port, x.address, x.protocol]),
    [
      ["Mandos", "server.local", 4711, "fe80::1", "ipv6"],
      ["Mandos", "server.local", 4711, "2001:db8::1", "ipv6"],
    ],
  );
  const c4 = new ServiceCache(T, "ipv4");
  c4.ingest(recs, 0);
  assert.deepEqual(c4.resolved(10).map((x) => [x.address, x.protocol]), [["169.254.1.2", "ipv4"]]);
  const mixed = sortResolved([...c4.resolved(10), ...c.resolved(10)]);
  assert.deepEqual(mixed.map((x) => x.address), ["fe80::1", "2001:db8::1", "169.254.1.2"]);
});

test("records arriving in separate packets resolve; missing parts are asked for once a second", () => {
  const c = new ServiceCache(T, "ipv6");
  c.ingest([ptr("Mandos")], 0);
  assert.deepEqual(c.missing(0), [{ name: "Mandos._mandos._tcp.local", type: "SRV", class: "IN" }]);
  assert.deepEqual(c.missing(500), [], "not again within a second");
  c.ingest([srv("Mandos", 4711)], 600);
  assert.deepEqual(
    c.missing(700).map((q) => [q.name, q.type]),
    [["server.local", "AAAA"]],
  );
  assert.equal(c.resolved(700).length, 0);
  c.ingest([aaaa("SERVER.local", "fe80::2")], 800);
  assert.equal(c.resolved(900)[0]?.address, "fe80::2", "host names match case-insensitively");
});

test("names that would not encode are never asked for", () => {
  const c = new ServiceCache(T, "ipv6");
  c.ingest([ptr("Mandos"), srv("Mandos", 4711, "x".repeat(70) + ".local")], 0);
  assert.deepEqual(c.missing(0), []);
});

test("address records for hosts no SRV names are ignored", () => {
  const c = new ServiceCache(T, "ipv6");
  c.ingest([aaaa("other.local", "fe80::9"), ptr("Mandos"), srv("Mandos", 1)], 0);
  assert.equal(c.resolved(1).length, 0);
});

test("a goodbye PTR removes the service; a goodbye address removes that address", () => {
  const c = new ServiceCache(T, "ipv6");
  c.ingest([ptr("Mandos"), srv("Mandos", 4711), aaaa("server.local", "fe80::1"), aaaa("server.local", "fe80::2")], 0);
  c.ingest([aaaa("server.local", "fe80::2", 0)], 10);
  assert.deepEqual(c.resolved(20).map((x) => x.address), ["fe80::1"]);
  c.ingest([ptr("Mandos", 0)], 30);
  assert.equal(c.resolved(40).length, 0);
});

test("cache-flush replaces addresses older than one second", () => {
  const c = new ServiceCache(T, "ipv6");
  c.ingest([ptr("Mandos"), srv("Mandos", 4711), aaaa("server.local", "fe80::1")], 0);
  c.ingest([aaaa("server.local", "fe80::2")], 500); // within 1 s: both kept
  assert.equal(c.resolved(600).length, 2);
  c.ingest([aaaa("server.local", "fe80::3")], 5000);
  assert.deepEqual(c.resolved(5001).map((x) => x.address), ["fe80::3"]);
  c.ingest([aaaa("server.local", "fe80::4", 120, false)], 9000);
  assert.equal(c.resolved(9001).length, 2, "without the flush bit, records add up");
});

test("records expire with their TTL", () => {
  const c = new ServiceCache(T, "ipv6");
  c.ingest([ptr("Mandos", 10), srv("Mandos", 4711, "server.local", 5), aaaa("server.local", "fe80::1", 120)], 0);
  assert.equal(c.resolved(4999).length, 1);
  assert.equal(c.resolved(5000).length, 0, "SRV expired");
});

test("a service silent for N queries is dropped", () => {
  const c = new ServiceCache(T, "ipv6", { maxInstances: 10, maxHosts: 10, maxAddressesPerHost: 4, missedQueries: 3 });
  c.ingest([ptr("Mandos"), srv("Mandos", 4711), aaaa("server.local", "fe80::1")], 0);
  c.querySent(1000); // heard since the (implicit) last query
  c.querySent(2000); // missed 1
  c.querySent(3000); // missed 2
  assert.equal(c.resolved(3000).length, 1);
  c.ingest([ptr("Mandos")], 3100); // answers again
  c.querySent(4000);
  c.querySent(5000);
  c.querySent(6000);
  assert.equal(c.resolved(6000).length, 1);
  c.querySent(7000);
  assert.equal(c.resolved(7000).length, 0);
});

test("a flood of records is capped", () => {
  const c = new ServiceCache(T, "ipv6", { maxInstances: 5, maxHosts: 5, maxAddressesPerHost: 3, missedQueries: 3 });
  const recs: DnsRecord[] = [];
  for (let i = 0; i < 50; i++) recs.push(ptr(`S${i}`), srv(`S${i}`, 1000 + i, "h.local"));
  for (let i = 0; i < 50; i++) recs.push(aaaa("h.local", `fe80::${i + 1}`));
  c.ingest(recs, 0);
  assert.equal(c.instanceNames().length, 5);
  assert.equal(c.resolved(1).length, 5 * 3);
});

test("malformed records are ignored", () => {
  const c = new ServiceCache(T, "ipv6");
  const bad: DnsRecord[] = [
    { name: "_mandos._tcp.local", type: "PTR", ttl: 100, data: 42 },
    { name: "_mandos._tcp.local", type: "PTR", ttl: 100, data: "" },
    { name: "_mandos._tcp.local", type: "PTR", ttl: 100, data: "notours.local" },
    ptr("Mandos"),
    { name: "Mandos._mandos._tcp.local", type: "SRV", ttl: 100, data: { port: 0, target: "h.local" } },
    { name: "Mandos._mandos._tcp.local", type: "SRV", ttl: 100, data: { port: 70000, target: "h.local" } },
    { name: "Mandos._mandos._tcp.local", type: "SRV", ttl: 100, data: null },
    { name: "Mandos._mandos._tcp.local", type: "SRV", ttl: 100, data: { port: 80, target: "." } },
    srv("Mandos", 4711, "h.local"),
    { name: "h.local", type: "AAAA", ttl: 100, data: "not an address" },
    { name: "h.local", type: "AAAA", ttl: 100, data: "10.0.0.1" },
    { name: "h.local", type: "A", ttl: 100, data: "fe80::1" },
    { name: "h.local", type: "AAAA", ttl: 100, data: Buffer.from("xx") },
  ];
  c.ingest(bad, 0);
  assert.deepEqual(c.instanceNames(), ["Mandos"]);
  assert.equal(c.resolved(1).length, 0);
  assert.equal(asReceived(null), null);
  assert.equal(asReceived("x"), null);
  const r = asReceived({ type: "response", answers: [null, 1, { name: "x" }, { name: "x", type: "A", ttl: -1 }, { name: "x", type: "A", ttl: 5 }] });
  assert.equal(r?.answers.length, 1);
  assert.equal(decodeMessage(Buffer.from([1, 2, 3])), null);
});

test("report diffs: new, gone, and changed port count as remove + add", () => {
  const r = (port: number, address = "fe80::1"): Resolved => ({ name: "Mandos", host: "h.local", port, address, protocol: "ipv6" });
  const prev = new Map([[reportKey(r(1)), r(1)]]);
  assert.deepEqual(diffReports(prev, [r(1)]), { added: [], removed: [] });
  assert.deepEqual(diffReports(prev, [r(2)]), { added: [r(2)], removed: [r(1)] });
  assert.deepEqual(diffReports(prev, []), { added: [], removed: [r(1)] });
  assert.deepEqual(diffReports(new Map(), [r(1), r(1, "fe80::2")]).added.length, 2);
});

const set = buildRecords({ name: "Mandos", serviceType: T, hostLabel: "server", port: 4711, txt: [] }, ["fe80::1"]);

test("answers: PTR query gets the PTR plus SRV, TXT and address as additionals", () => {
  const { answers, additionals } = answerQuestions([{ name: "_mandos._tcp.local", type: "PTR" }], [], set);
  assert.deepEqual(answers.map((r) => r.type), ["PTR"]);
  assert.deepEqual(additionals.map((r) => r.type).sort(), ["AAAA", "SRV", "TXT"]);
  const any = answerQuestions([{ name: "mandos._MANDOS._tcp.local", type: "ANY" }], [], set);
  assert.deepEqual(any.answers.map((r) => r.type).sort(), ["SRV", "TXT"]);
  assert.equal(answerQuestions([{ name: "server.local", type: "A" }], [], set).answers.length, 0);
  assert.equal(answerQuestions([{ name: "_services._dns-sd._udp.local", type: "PTR" }], [], set).answers[0]?.data, "_mandos._tcp.local");
});

test("answers: known answers with enough TTL are suppressed", () => {
  const q = [{ name: "_mandos._tcp.local", type: "PTR" }];
  assert.equal(answerQuestions(q, [ptr("Mandos", 4000)], set).answers.length, 0);
  assert.equal(answerQuestions(q, [ptr("Mandos", 100)], set).answers.length, 1, "TTL below half: answer again");
  assert.equal(answerQuestions(q, [ptr("Other", 4000)], set).answers.length, 1);
});

test("conflicts: other data for our names, not identical data", () => {
  const own = new Set(["fe80::1"]);
  assert.equal(findConflict(uniqueRecords(set), set, own), null, "our own echo");
  assert.equal(findConflict([srv("Mandos", 9999, "server.local")], set, own), "service");
  assert.equal(findConflict([srv("MANDOS", 4711, "SERVER.local")], set, own), null, "case differs only");
  assert.equal(findConflict([srv("Mandos", 9999, "server.local", 0)], set, own), null, "goodbyes do not count");
  assert.equal(findConflict([aaaa("server.local", "fe80::99")], set, own), "host");
  assert.equal(findConflict([aaaa("server.local", "fe80::1")], set, own), null);
  assert.equal(findConflict([a("server.local", "10.0.0.1")], set, new Set(["fe80::1", "10.0.0.1"])), null, "another address of ours");
  assert.equal(findConflict([srv("Other", 1)], set, own), null);
});

test("probe tie-break: the lexicographically later record set wins", () => {
  const ours = uniqueRecords(set).filter((r) => r.type === "SRV");
  const higher = [srv("Mandos", 4712, "server.local")];
  const lower = [srv("Mandos", 4710, "server.local")];
  assert.equal(probeTieBreak(ours, higher), "lose");
  assert.equal(probeTieBreak(ours, lower), "win");
  assert.equal(probeTieBreak(ours, [srv("Mandos", 4711, "server.local")]), "equal");
  // Type codes order records: AAAA (28) < SRV (33).
  assert.equal(probeTieBreak([aaaa("x", "fe80::1")], [srv("x", 1)]), "lose");
});

test("our records round-trip through the DNS codec", () => {
  const wire = dnsPacket.encode({ type: "response", id: 0, flags: 1 << 10, answers: [set.ptr, set.srv, set.txt, ...set.addresses] });
  const back = decodeMessage(wire);
  assert.ok(back?.isResponse);
  const c = new ServiceCache(T, "ipv6");
  c.ingest(back!.answers, 0);
  assert.deepEqual(c.resolved(1).map((x) => [x.name, x.host, x.port, x.address]), [["Mandos", "server.local", 4711, "fe80::1"]]);
  assert.equal(back!.answers.find((r) => r.type === "SRV")?.flush, true, "unique records carry the cache-flush bit");
  assert.equal(back!.answers.find((r) => r.type === "PTR")?.flush, false);
});
