// Zeroconf with real avahi-daemons: one per namespace, each on its own
// private D-Bus (never the machine's system bus). Checks the avahi path of
// announce(), avahi-browse seeing our announcements, our rename rule
// against avahi's, and collisions between avahi and the built-in responder.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, requires, tempDir } from "../helpers/index.js";
import {
  createNsPair,
  startAnnouncer,
  startAvahiInNs,
  startBrowser,
  startPrivateBus,
  spawnInNs,
  type AvahiInNs,
  type NsPair,
  type NsProcess,
  type PrivateBus,
} from "../helpers/netns.js";
import { alternativeHostName, alternativeServiceName } from "../../src/zeroconf/names.js";
import { avahiAlternativeHostName, avahiAlternativeServiceName, connectAvahi } from "../../src/zeroconf/avahi.js";

const DIST = join(ROOT, "dist");
const skip = requires({ root: true, commands: ["ip", "unshare", "avahi-daemon", "dbus-daemon", "avahi-browse"] });

type Ev = Record<string, unknown>;
const isFound = (name: string, extra: (e: Ev) => boolean = () => true) => (e: Ev) => e.event === "found" && e.name === name && extra(e);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rig(t: { after(fn: () => unknown): void }) {
  const procs: NsProcess[] = [];
  const daemons: Array<{ stop(): Promise<void> }> = [];
  const pairs: NsPair[] = [];
  const dir = tempDir("mandos-zc-avahi-");
  t.after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await Promise.all(daemons.map((d) => d.stop()));
    for (const p of pairs) p.destroy();
    dir.cleanup();
  });
  let n = 0;
  return {
    keep<T extends NsProcess>(p: T): T {
      procs.push(p);
      return p;
    },
    async pair() {
      const p = await createNsPair();
      pairs.push(p);
      return p;
    },
    async avahi(ns: string, hostName: string, iface: string): Promise<AvahiInNs> {
      const a = await startAvahiInNs(ns, { dir: join(dir.path, `avahi${++n}`), hostName, interfaces: [iface] });
      daemons.push(a);
      return a;
    },
    async bus(): Promise<PrivateBus> {
      const b = await startPrivateBus(join(dir.path, `bus${++n}`));
      daemons.push(b);
      return b;
    },
    assertHealthy() {
      for (const p of procs) assert.deepEqual(p.events().filter((e) => e.event === "uncaught"), []);
    },
  };
}

const busEnv = (a: { busAddress: string } | { address: string }) => ({
  DBUS_SYSTEM_BUS_ADDRESS: "busAddress" in a ? a.busAddress : a.address,
});

/** avahi-browse -p escapes bytes as \DDD (decimal). */
function unescapeAvahi(s: string): string {
  return s.replace(/\\(\d{3})/g, (_, d: string) => String.fromCharCode(Number(d)));
}

interface Browsed {
  iface: string;
  proto: string;
  name: string;
  host: string;
  address: string;
  port: number;
}

/** Run `avahi-browse -r -p -t _mandos._tcp` until `want` matches a resolved line. */
async function avahiBrowseUntil(ns: string, avahi: AvahiInNs, want: (b: Browsed) => boolean, timeoutMs: number): Promise<Browsed[]> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const p = spawnInNs(ns, "avahi-browse", ["-r", "-p", "-t", "_mandos._tcp"], { env: busEnv(avahi), timeoutMs: 15_000 });
    await p.exited;
    const resolved = p.lines
      .filter((l) => l.startsWith("="))
      .map((l) => l.split(";"))
      .map((f) => ({ iface: f[1]!, proto: f[2]!, name: unescapeAvahi(f[3]!), host: f[6]!, address: f[7]!, port: Number(f[8]) }));
    if (resolved.some(want)) return resolved;
    last = p.lines.join(" | ") + " " + p.stderr;
    if (Date.now() > deadline) throw new Error(`avahi-browse never showed the service; last output: ${last}`);
    await sleep(500);
  }
}

describe("Zeroconf with avahi-daemon in the namespaces", { skip }, () => {
  test("announce() goes through avahi-daemon when it is on the system D-Bus; found by our browser; stop withdraws", async (t) => {
    const r = rig(t);
    const pair = await r.pair();
    const avahiA = await r.avahi(pair.nsA, "avahi-a", "vethA");
    const br = r.keep(startBrowser(pair.nsB, DIST, {}));
    const a = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Mandos", port: 4711 }, busEnv(avahiA)));
    assert.deepEqual(await a.waitEvent("announce", (e) => e.event === "announced" || e.event === "error", 10_000), {
      event: "announced",
      name: "Mandos",
      via: "avahi",
    });
    const f = await br.waitEvent("browse finds it", isFound("Mandos"), 10_000);
    assert.equal(f.host, "avahi-a.local");
    assert.equal(f.address, `${pair.links[0]!.llA}%vethB`);
    assert.equal(f.port, 4711);
    assert.match(a.stderr, /announcing service "Mandos" \(_mandos._tcp\) on port 4711 through avahi-daemon/);
    a.send("stop");
    await a.waitEvent("stopped", (e) => e.event === "stopped", 5000);
    await br.waitEvent("removed after stop", (e) => e.event === "removed" && e.name === "Mandos", 5000);
    // avahi-daemon gone from the bus: "auto" falls back to the built-in responder.
    const bus = await r.bus();
    const fb = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Fallback", port: 4712 }, busEnv(bus)));
    assert.equal((await fb.waitEvent("fallback", (e) => e.event === "announced", 10_000)).via, "builtin");
    assert.match(fb.stderr, /avahi-daemon is not on the system D-Bus; using the built-in mDNS responder/);
    const nobus = r.keep(startAnnouncer(pair.nsA, DIST, { name: "NoBus", port: 4713 }, { DBUS_SYSTEM_BUS_ADDRESS: "unix:path=/nonexistent/bus" }));
    assert.equal((await nobus.waitEvent("no bus", (e) => e.event === "announced", 10_000)).via, "builtin");
    // backend "avahi" insists.
    const must = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Must", port: 4714, backend: "avahi" }, busEnv(bus)));
    const err = await must.waitEvent("avahi required", (e) => e.event === "error" || e.event === "announced", 10_000);
    assert.equal(err.event, "error");
    await br.waitEvent("fallback found", isFound("Fallback"), 10_000);
    r.assertHealthy();
  });

  test("avahi-browse sees our built-in announcement and our avahi one", async (t) => {
    const r = rig(t);
    const pair = await r.pair();
    const avahiA = await r.avahi(pair.nsA, "avahi-a", "vethA");
    const avahiB = await r.avahi(pair.nsB, "avahi-b", "vethB");
    const builtin = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Built in", port: 4801, backend: "builtin" }));
    const viaAvahi = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Via avahi", port: 4802 }, busEnv(avahiA)));
    await builtin.waitEvent("builtin", (e) => e.event === "announced", 10_000);
    assert.equal((await viaAvahi.waitEvent("avahi", (e) => e.event === "announced", 10_000)).via, "avahi");
    const llA = pair.links[0]!.llA;
    const seen = await avahiBrowseUntil(pair.nsB, avahiB, (b) => b.name === "Built in", 15_000);
    const b1 = seen.find((b) => b.name === "Built in")!;
    assert.deepEqual({ ...b1, host: b1.host.replace(/^[^.]*/, "H") }, { iface: "vethB", proto: "IPv6", name: "Built in", host: "H.local", address: llA, port: 4801 });
    const seen2 = await avahiBrowseUntil(pair.nsB, avahiB, (b) => b.name === "Via avahi", 15_000);
    const b2 = seen2.find((b) => b.name === "Via avahi")!;
    assert.deepEqual(b2, { iface: "vethB", proto: "IPv6", name: "Via avahi", host: "avahi-a.local", address: llA, port: 4802 });
    r.assertHealthy();
  });

  test("our rename rules give the same names as avahi-daemon's", async (t) => {
    const r = rig(t);
    const pair = await r.pair();
    const avahiA = await r.avahi(pair.nsA, "avahi-a", "vethA");
    const saved = process.env.DBUS_SYSTEM_BUS_ADDRESS;
    process.env.DBUS_SYSTEM_BUS_ADDRESS = avahiA.busAddress;
    const found = await connectAvahi();
    if (saved === undefined) delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
    else process.env.DBUS_SYSTEM_BUS_ADDRESS = saved;
    assert.ok("conn" in found, "reason" in found ? found.reason : "");
    const conn = found.conn;
    t.after(() => conn.close());
    const services = [
      "Mandos", "Mandos #2", "Mandos #9", "Mandos #0", "Mandos #02", "Mandos #", "Mandos #2x", "a #1 #5", "Mandos#3",
      "x".repeat(63), "x".repeat(59) + " #99", "å".repeat(31), "Mandos #2147483646",
    ];
    for (const s of services) assert.equal(alternativeServiceName(s), await avahiAlternativeServiceName(conn, s), `service name ${JSON.stringify(s)}`);
    const hosts = ["server", "server-2", "server-09", "my-server", "h".repeat(63), "a-", "a-0"];
    for (const h of hosts) assert.equal(alternativeHostName(h), await avahiAlternativeHostName(conn, h), `host name ${JSON.stringify(h)}`);
  });

  test("collisions between avahi-daemon and the built-in responder rename the later one", async (t) => {
    const r = rig(t);
    const pair = await r.pair();
    const avahiA = await r.avahi(pair.nsA, "avahi-a", "vethA");
    const avahiB = await r.avahi(pair.nsB, "avahi-b", "vethB");
    const br = r.keep(startBrowser(pair.nsB, DIST, {}));

    // Built-in first, then through avahi on the other side: avahi's probe
    // meets our answer, avahi reports a collision, we ask it for a new name.
    const b1 = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Clash", port: 4901, backend: "builtin" }));
    assert.equal((await b1.waitEvent("b1", (e) => e.event === "announced", 10_000)).name, "Clash");
    const a1 = r.keep(startAnnouncer(pair.nsB, DIST, { name: "Clash", port: 4902 }, busEnv(avahiB)));
    const ea1 = await a1.waitEvent("a1", (e) => e.event === "announced", 15_000);
    assert.equal(ea1.via, "avahi");
    assert.equal(ea1.name, "Clash #2");
    assert.deepEqual(a1.events().filter((e) => e.event === "rename").map((e) => e.name), ["Clash #2"]);

    // Through avahi first, then built-in on the other side.
    const a2 = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Dup", port: 4903 }, busEnv(avahiA)));
    assert.equal((await a2.waitEvent("a2", (e) => e.event === "announced", 10_000)).name, "Dup");
    const b2 = r.keep(startAnnouncer(pair.nsB, DIST, { name: "Dup", port: 4904, backend: "builtin" }));
    assert.equal((await b2.waitEvent("b2", (e) => e.event === "announced", 10_000)).name, "Dup #2");

    // Two through the same avahi-daemon: a local collision (AddService
    // fails at once), and "Dup #2" is taken by the built-in one in B, so
    // avahi's probe renames once more.
    const a3 = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Dup", port: 4905 }, busEnv(avahiA)));
    assert.equal((await a3.waitEvent("a3", (e) => e.event === "announced", 10_000)).name, "Dup #3");
    assert.match(a3.stderr, /local service name collision for "Dup"/);
    assert.deepEqual(a3.events().filter((e) => e.event === "rename").map((e) => e.name), ["Dup #2", "Dup #3"]);
    await sleep(2000);
    // The earlier ones keep their names.
    assert.deepEqual(a2.events().filter((e) => e.event === "rename"), []);
    assert.deepEqual(b2.events().filter((e) => e.event === "rename").map((e) => e.name), ["Dup #2"]);

    for (const [n, port] of [["Clash", 4901], ["Clash #2", 4902], ["Dup", 4903], ["Dup #2", 4904], ["Dup #3", 4905]] as const) {
      await br.waitEvent(`browse finds ${n}`, isFound(n, (e) => e.port === port), 10_000);
    }
    r.assertHealthy();
  });
});
