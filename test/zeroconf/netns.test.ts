// Zeroconf between two network namespaces joined by veth pairs: our
// built-in responder (announce) in one, our browser in the other. Real
// multicast, only inside namespaces this test creates.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT, requires } from "../helpers/index.js";
import { nodeInNs, startAnnouncer, startBrowser, testRig, type NsProcess } from "../helpers/netns.js";
import { hostLabelFrom } from "../../src/zeroconf/names.js";

const DIST = join(ROOT, "dist");
const skip = requires({ root: true, commands: ["ip", "unshare"] });
const HOST = `${hostLabelFrom(hostname())}.local`;

type Ev = Record<string, unknown>;
const isFound = (name: string, extra: (e: Ev) => boolean = () => true) => (e: Ev) => e.event === "found" && e.name === name && extra(e);
const isRemoved = (name: string) => (e: Ev) => e.event === "removed" && e.name === name;

function ifindex(ns: string, ifname: string): number {
  const out = spawnSync("ip", ["-n", ns, "-o", "link", "show", ifname], { encoding: "utf8" }).stdout;
  return Number(out.split(":")[0]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("Zeroconf across network namespaces (built-in responder)", { skip }, () => {
  test("found with fe80::…%vethB and the port; later servers found; stopped or silent ones removed", async (t) => {
    const r = testRig(t);
    const pair = await r.pair();
    const [link] = pair.links;
    const br = r.keep(startBrowser(pair.nsB, DIST, { queryIntervalMs: 2000 }));
    const a1 = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Mandos", port: 4711, backend: "builtin" }));
    const ann = await a1.waitEvent("announce", (e) => e.event === "announced" || e.event === "error", 10_000);
    assert.deepEqual(ann, { event: "announced", name: "Mandos", via: "builtin" });
    const found = await br.waitEvent("browse finds Mandos", isFound("Mandos"), 10_000);
    assert.deepEqual(found, {
      event: "found",
      name: "Mandos",
      host: HOST,
      port: 4711,
      address: `${link!.llA}%vethB`,
      interfaceName: "vethB",
      interfaceIndex: ifindex(pair.nsB, "vethB"),
      protocol: "ipv6",
    });

    // A server that appears while the browser runs.
    const a2 = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Later", port: 4712, backend: "builtin" }));
    await a2.waitEvent("announce Later", (e) => e.event === "announced", 10_000);
    await br.waitEvent("browse finds Later", isFound("Later", (e) => e.port === 4712), 10_000);

    // A stopped server says goodbye and is reported removed at once.
    a1.send("stop");
    await a1.waitUntil("announcer stops", () => !a1.running, 5000);
    const removed = await br.waitEvent("Mandos removed", isRemoved("Mandos"), 3000);
    assert.equal(removed.address, found.address);
    await sleep(500);
    assert.equal(br.events().filter(isRemoved("Later")).length, 0, "the goodbye did not take the other service (same host) along");

    // A new browser does not find it, but does find the other.
    const br2 = r.keep(startBrowser(pair.nsB, DIST, {}));
    await br2.waitEvent("new browser finds Later", isFound("Later"), 10_000);
    await sleep(1500);
    assert.equal(br2.events().filter((e) => e.event === "found" && e.name === "Mandos").length, 0);

    // A server killed without goodbye is removed after missed re-queries.
    a2.child.kill("SIGKILL");
    const t0 = Date.now();
    await br.waitEvent("silent Later removed", isRemoved("Later"), 20_000);
    assert.ok(Date.now() - t0 >= 1000, "not removed before any query went unanswered");
    r.assertHealthy();
    assert.ok(br.running && br2.running);
  });

  test("interfaces: a browse limited to vethB ignores vethB2; announce can be limited to one interface", async (t) => {
    const r = testRig(t);
    const pair = await r.pair();
    const link2 = await pair.addLink();
    const onlyB = r.keep(startBrowser(pair.nsB, DIST, { interfaces: ["vethB"] }));
    const all = r.keep(startBrowser(pair.nsB, DIST, {}));
    const a = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Both", port: 5000, backend: "builtin" }));
    await a.waitEvent("announce", (e) => e.event === "announced", 10_000);
    await all.waitEvent("found on vethB", isFound("Both", (e) => e.interfaceName === "vethB"), 10_000);
    const on2 = await all.waitEvent("found on vethB2", isFound("Both", (e) => e.interfaceName === "vethB2"), 10_000);
    assert.equal(on2.address, `${link2.llA}%vethB2`, "each interface reports the address on that link");
    assert.equal(on2.interfaceIndex, ifindex(pair.nsB, "vethB2"));
    await onlyB.waitEvent("found on vethB", isFound("Both", (e) => e.interfaceName === "vethB"), 10_000);

    const only2 = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Only2", port: 5001, backend: "builtin", interfaceName: "vethA2" }));
    await only2.waitEvent("announce Only2", (e) => e.event === "announced", 10_000);
    await all.waitEvent("Only2 on vethB2", isFound("Only2", (e) => e.interfaceName === "vethB2"), 10_000);
    await sleep(2500); // two more query rounds
    assert.deepEqual(
      onlyB.events().filter((e) => e.event === "found").map((e) => [e.name, e.interfaceName]),
      [["Both", "vethB"]],
      "the limited browser saw nothing on vethB2",
    );
    assert.equal(all.events().filter((e) => e.event === "found" && e.name === "Only2" && e.interfaceName === "vethB").length, 0);
    r.assertHealthy();
  });

  test("IPv4: an IPv4-only announcement is found by its IPv4 address; 'any' gives both, link-local IPv6 first", async (t) => {
    const r = testRig(t);
    const pair = await r.pair({ ipv4: true });
    const [link] = pair.links;
    const br = r.keep(startBrowser(pair.nsB, DIST, {}));
    const v4 = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Four", port: 4004, backend: "builtin", protocol: "ipv4" }));
    await v4.waitEvent("announce", (e) => e.event === "announced", 10_000);
    const f4 = await br.waitEvent("found Four", isFound("Four"), 10_000);
    assert.equal(f4.address, link!.v4A);
    assert.equal(f4.protocol, "ipv4");
    const any = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Any", port: 4005, backend: "builtin", protocol: "any" }));
    await any.waitEvent("announce", (e) => e.event === "announced", 10_000);
    await br.waitEvent("found Any v6", isFound("Any", (e) => e.protocol === "ipv6"), 10_000);
    await br.waitEvent("found Any v4", isFound("Any", (e) => e.protocol === "ipv4"), 10_000);
    await sleep(1500);
    assert.equal(br.events().filter((e) => e.event === "found" && e.name === "Four" && e.protocol === "ipv6").length, 0, "no IPv6 address for an IPv4-only server");
    // A browse over IPv6 only does not see the IPv4-only server.
    const v6only = r.keep(startBrowser(pair.nsB, DIST, { protocols: ["ipv6"] }));
    await v6only.waitEvent("v6 browse finds Any", isFound("Any"), 10_000);
    await sleep(1500);
    assert.equal(v6only.events().filter((e) => e.event === "found" && e.name === "Four").length, 0);
    r.assertHealthy();
  });

  test("name collision: the later announcer renames (Mandos #2, then #3); the rename limit is enforced", async (t) => {
    const r = testRig(t);
    const pair = await r.pair();
    const br = r.keep(startBrowser(pair.nsB, DIST, {}));
    const first = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Mandos", port: 4711, backend: "builtin" }));
    assert.equal((await first.waitEvent("first", (e) => e.event === "announced", 10_000)).name, "Mandos");
    // Same name from the other namespace (same host name too, other address).
    const second = r.keep(startAnnouncer(pair.nsB, DIST, { name: "Mandos", port: 4712, backend: "builtin" }));
    const ann2 = await second.waitEvent("second", (e) => e.event === "announced", 10_000);
    assert.equal(ann2.name, "Mandos #2");
    assert.deepEqual(second.events().filter((e) => e.event === "rename").map((e) => e.name), ["Mandos #2"]);
    const f2 = await br.waitEvent("browse sees Mandos #2", isFound("Mandos #2"), 10_000);
    assert.equal(f2.port, 4712);
    assert.equal(f2.host, HOST.replace(/\.local$/, "-2.local"), "host name conflict renamed the host too");
    // A third in the first namespace: both names are taken.
    const third = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Mandos", port: 4713, backend: "builtin" }));
    assert.equal((await third.waitEvent("third", (e) => e.event === "announced", 10_000)).name, "Mandos #3");
    // The first one never renamed and is still found as "Mandos".
    assert.equal(first.events().filter((e) => e.event === "rename").length, 0);
    await br.waitEvent("Mandos still there", isFound("Mandos", (e) => e.port === 4711), 5000);
    // With no renames allowed, a taken name is an error.
    const none = r.keep(startAnnouncer(pair.nsB, DIST, { name: "Mandos", port: 4714, backend: "builtin", maxRenames: 0 }));
    const err = await none.waitEvent("limit", (e) => e.event === "error" || e.event === "announced", 10_000);
    assert.equal(err.event, "error");
    // Its host name is taken too: whichever conflict is seen first ends it.
    assert.match(String(err.message), /no suitable (service|host) name found after 0 renames/);
    r.assertHealthy();
  });

  test("simultaneous announcers with the same name end with distinct names", async (t) => {
    const r = testRig(t);
    const pair = await r.pair();
    const a = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Twin", port: 4801, backend: "builtin" }));
    const b = r.keep(startAnnouncer(pair.nsB, DIST, { name: "Twin", port: 4802, backend: "builtin" }));
    const [ea, eb] = await Promise.all([
      a.waitEvent("a", (e) => e.event === "announced", 15_000),
      b.waitEvent("b", (e) => e.event === "announced", 15_000),
    ]);
    // Names may still change just after announcing; let them settle.
    await sleep(3000);
    const last = (p: NsProcess, initial: unknown) => {
      const renames = p.events().filter((e) => e.event === "rename");
      return renames.length ? renames[renames.length - 1]!.name : initial;
    };
    const names = [last(a, ea.name), last(b, eb.name)].sort();
    assert.deepEqual(names, ["Twin", "Twin #2"]);
    r.assertHealthy();
  });

  test("malformed mDNS packets crash neither the browser nor the responder", async (t) => {
    const r = testRig(t);
    const pair = await r.pair({ ipv4: true });
    const br = r.keep(startBrowser(pair.nsB, DIST, { queryIntervalMs: 1000 }));
    const ann = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Sturdy", port: 4900, backend: "builtin", protocol: "any" }));
    await ann.waitEvent("announce", (e) => e.event === "announced", 10_000);
    await br.waitEvent("found", isFound("Sturdy"), 10_000);
    // Fuzzers: one in A aims at the browser in B, one in B at the responder in A.
    const fuzzA = r.keep(nodeInNs(pair.nsA, fuzzerCode("vethA", pair.links[0]!.v4A!), { timeoutMs: 60_000 }));
    const fuzzB = r.keep(nodeInNs(pair.nsB, fuzzerCode("vethB", pair.links[0]!.v4B!), { timeoutMs: 60_000 }));
    const [ra, rb] = await Promise.all([fuzzA.exited, fuzzB.exited]);
    assert.equal(ra.code, 0, `fuzzer A failed: ${fuzzA.stderr}`);
    assert.equal(rb.code, 0, `fuzzer B failed: ${fuzzB.stderr}`);
    const sent = Number(fuzzA.lines.find((l) => l.startsWith("sent "))?.split(" ")[1]);
    assert.ok(sent > 1000, `fuzzer sent ${sent} packets`);
    await sleep(500);
    // The packets did reach the browser: the one well-formed hostile
    // response (a server "Evil" at fe80::dead) was taken in.
    await br.waitEvent("Evil seen", isFound("Evil", (e) => e.address === "fe80::dead%vethB"), 3000);
    assert.ok(br.running, `browser died: ${br.stderr.slice(-2000)}`);
    assert.ok(ann.running, `responder died: ${ann.stderr.slice(-2000)}`);
    r.assertHealthy();
    // Both still work: the browser finds a new server, and a new browser
    // finds the responder's service (under whatever name it holds now).
    const later = r.keep(startAnnouncer(pair.nsA, DIST, { name: "AfterFuzz", port: 4901, backend: "builtin" }));
    await later.waitEvent("announce", (e) => e.event === "announced", 10_000);
    await br.waitEvent("found after fuzzing", isFound("AfterFuzz"), 10_000);
    const br2 = r.keep(startBrowser(pair.nsB, DIST, {}));
    await br2.waitEvent("responder still answers", (e) => e.event === "found" && e.port === 4900, 10_000);
    r.assertHealthy();
  });
});

/**
 * A child program that sends malformed and hostile mDNS packets from port
 * 5353 on an interface (IPv6 and IPv4), plus legacy unicast-style queries
 * from another port: random bytes, truncations and bit flips of valid
 * messages, compression loops, bad counts, bad RDATA, huge record sets.
 */
function fuzzerCode(ifname: string, v4: string): string {
  return `
const dgram = await import("node:dgram");
const { dnsPacket } = await import(${JSON.stringify(join(DIST, "src/zeroconf/dns.js"))});
let seed = 12345;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
const bytes = (n) => Buffer.from(Array.from({ length: n }, () => rnd(256)));
const valid = dnsPacket.encode({ type: "response", id: 0, flags: 1 << 10, answers: [
  { name: "_mandos._tcp.local", type: "PTR", ttl: 4500, data: "Evil._mandos._tcp.local" },
  { name: "Evil._mandos._tcp.local", type: "SRV", ttl: 120, flush: true, data: { priority: 0, weight: 0, port: 4711, target: "evil.local" } },
  { name: "Evil._mandos._tcp.local", type: "TXT", ttl: 4500, data: ["a=b"] },
  { name: "evil.local", type: "AAAA", ttl: 120, data: "fe80::dead" },
  { name: "evil.local", type: "A", ttl: 120, data: "169.254.9.9" } ] });
const query = dnsPacket.encode({ type: "query", id: 7, questions: [
  { name: "_mandos._tcp.local", type: "PTR" }, { name: "Sturdy._mandos._tcp.local", type: "ANY" } ],
  answers: [{ name: "_mandos._tcp.local", type: "PTR", ttl: 4500, data: "Sturdy._mandos._tcp.local" }] });
const packets = [];
for (let i = 0; i < 300; i++) packets.push(bytes(rnd(600)));
for (let n = 0; n < valid.length; n++) packets.push(valid.subarray(0, n));
for (let n = 0; n < query.length; n++) packets.push(query.subarray(0, n));
for (let i = 0; i < 400; i++) { const b = Buffer.from(i % 2 ? valid : query); for (let k = 0; k < 1 + rnd(4); k++) b[rnd(b.length)] ^= 1 << rnd(8); packets.push(b); }
// Header claiming 65535 records of each kind, and nothing else.
packets.push(Buffer.from([0,0,0x84,0, 0xff,0xff, 0xff,0xff, 0xff,0xff, 0xff,0xff]));
// A name that is a compression pointer to itself, as question and as answer.
packets.push(Buffer.from([0,0,0,0, 0,1, 0,0, 0,0, 0,0, 0xc0,12, 0,12, 0,1]));
packets.push(Buffer.from([0,0,0x84,0, 0,0, 0,1, 0,0, 0,0, 0xc0,12, 0,12, 0,1, 0,0,0,120, 0,2, 0xc0,12]));
// Pointer forward, pointer past the end, label longer than the packet.
packets.push(Buffer.from([0,0,0x84,0, 0,0, 0,1, 0,0, 0,0, 0xc0,40, 0,1, 0,1, 0,0,0,1, 0,4, 1,2,3,4]));
packets.push(Buffer.from([0,0,0x84,0, 0,0, 0,1, 0,0, 0,0, 63, 0x41, 0x41]));
// Records with RDATA of the wrong size for their type.
const rr = (type, rdata) => Buffer.concat([
  Buffer.from([0,0,0x84,0, 0,0, 0,1, 0,0, 0,0, 4,0x65,0x76,0x69,0x6c, 5,0x6c,0x6f,0x63,0x61,0x6c, 0]),
  Buffer.from([0, type, 0, 1, 0,0,0,120, rdata.length >> 8, rdata.length & 255]), rdata]);
for (const [t, len] of [[1, 0], [1, 3], [1, 16], [28, 4], [28, 0], [28, 17], [33, 0], [33, 5], [12, 0], [16, 0], [16, 1]]) packets.push(rr(t, bytes(len)));
packets.push(rr(16, Buffer.from([200, 1, 2])));
// Valid messages with hostile content: odd names, TTLs, ports, and a flood.
const hostile = [
  [{ name: "_mandos._tcp.local", type: "PTR", ttl: 0xffffffff, data: "x".repeat(63) + "._mandos._tcp.local" }],
  [{ name: "_mandos._tcp.local", type: "PTR", ttl: 4500, data: "\\u0000nul._mandos._tcp.local" }],
  [{ name: "_mandos._tcp.local", type: "PTR", ttl: 4500, data: "._mandos._tcp.local" }],
  [{ name: "_mandos._tcp.local", type: "PTR", ttl: 4500, data: "local" }],
  [{ name: "Zero._mandos._tcp.local", type: "SRV", ttl: 120, data: { port: 0, target: "evil.local" } }],
  [{ name: "_mandos._tcp.local", type: "PTR", ttl: 0, data: "Nothing._mandos._tcp.local" }],
  [{ name: "Sturdy._mandos._tcp.local", type: "SRV", ttl: 0, data: { port: 1, target: "x.local" } }],
  Array.from({ length: 200 }, (_, i) => ({ name: "_mandos._tcp.local", type: "PTR", ttl: 4500, data: "Flood" + i + "._mandos._tcp.local" })),
  Array.from({ length: 200 }, (_, i) => ({ name: "Flood0._mandos._tcp.local", type: "SRV", ttl: 120, data: { port: 1 + i, target: "f.local" } })),
  Array.from({ length: 100 }, (_, i) => ({ name: "f.local", type: "AAAA", ttl: 120, data: "fe80::" + (i + 1).toString(16) })),
];
for (const answers of hostile) { try { packets.push(dnsPacket.encode({ type: "response", flags: 1 << 10, answers })); } catch {} }
// Queries that ask for everything, with silly known-answer lists.
packets.push(dnsPacket.encode({ type: "query", questions: Array.from({ length: 50 }, () => ({ name: "Sturdy._mandos._tcp.local", type: "ANY" })) }));
packets.push(dnsPacket.encode({ type: "query", questions: [{ name: "_services._dns-sd._udp.local", type: "PTR" }],
  answers: Array.from({ length: 100 }, (_, i) => ({ name: "q" + i + ".local", type: "A", ttl: 1, data: "1.1.1.1" })) }));
let sent = 0;
const send = async (sock, addr, list) => { for (const p of list) { await new Promise((r) => sock.send(p, 5353, addr, () => r())); sent++; } };
const v6 = dgram.createSocket({ type: "udp6", reuseAddr: true });
await new Promise((r) => v6.bind(5353, "ff02::fb%${ifname}", r));
v6.setMulticastInterface("::%${ifname}");
const v4 = dgram.createSocket({ type: "udp4", reuseAddr: true });
await new Promise((r) => v4.bind(5353, "${v4}", r));
v4.setMulticastInterface("${v4}");
const legacy = dgram.createSocket({ type: "udp6" });
await new Promise((r) => legacy.bind(0, r));
legacy.setMulticastInterface("::%${ifname}");
await send(v6, "ff02::fb", packets);
await send(v4, "224.0.0.251", packets);
await send(legacy, "ff02::fb", packets.slice(0, 200).concat([query]));
// The well-formed hostile answer, whole and after the burst (which may
// overflow the receiver's socket buffer): proof that packets get through.
for (let i = 0; i < 3; i++) { await send(v6, "ff02::fb", [valid]); await new Promise((r) => setTimeout(r, 100)); }
console.log("sent " + sent);
v6.close(); v4.close(); legacy.close();
`;
}
