// Temporary routes to servers announced only with a global address: the
// pure decisions, and the effects inside namespaces this test creates —
// including a real "network unreachable" fixed by the route, error paths,
// SIGTERM, and a count of file descriptors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { readdirSync } from "node:fs";
import { connect } from "node:net";
import { spawn } from "node:child_process";
import { formatIp, isLinkLocal, isRoutableUnicast, parseIp, parsePrefix, prefixContains } from "../../src/sys/addresses.js";
import {
  TemporaryRoutes,
  addTemporaryRoute,
  listRoutes,
  needsRoute,
  parseRoutesJson,
  routeArgs,
  shouldTryDirectRoute,
  withTemporaryRoute,
  type RouteEntry,
} from "../../src/client/network/routes.js";
import { NetworkSession } from "../../src/client/network/session.js";
import { makeLogger } from "../../src/cli/log.js";
import { requires } from "../helpers/index.js";
import { Netns, childMain, isChild, runInNetns, tellParent } from "../helpers/client-network.js";

const SELF = fileURLToPath(import.meta.url);
const quiet = makeLogger("test", { level: "error", write: () => {} });

const errorOf = async (f: () => Promise<unknown>): Promise<string> => {
  try {
    await f();
    return "ok";
  } catch (err) {
    return (err as Error).message;
  }
};

/** Try a TCP connection; resolve with the first line received or the error code. */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 5000 });
    let got = "";
    s.on("data", (d) => (got += d.toString()));
    s.on("end", () => resolve(`data:${got.trim()}`));
    s.on("timeout", () => {
      s.destroy();
      resolve("timeout");
    });
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

const fdCount = () => readdirSync("/proc/self/fd").length;

// ------------------------------------------------------------ scenarios (child side)

const scenarios = {
  async addRemove(arg: unknown) {
    const { address, family } = arg as { address: string; family: 4 | 6 };
    const before = needsRoute(address, await listRoutes(family));
    const route = await addTemporaryRoute(address, "va", ["va"]);
    const during = await listRoutes(family);
    const needDuring = needsRoute(address, during);
    await route.remove();
    await route.remove();
    const after = await listRoutes(family);
    return { before, during, needDuring, after, removed: route.removed, needAfter: needsRoute(address, after) };
  },
  async errorInBetween() {
    let inside: RouteEntry[] = [];
    const err = await errorOf(() =>
      withTemporaryRoute("2001:db8::5", "va", ["va"], async () => {
        inside = await listRoutes(6);
        throw new Error("boom");
      }),
    );
    return { err, inside, after: await listRoutes(6) };
  },
  async refusals() {
    const allowed = ["va"];
    return [
      await errorOf(() => addTemporaryRoute("fe80::1", "va", allowed)),
      await errorOf(() => addTemporaryRoute("169.254.1.1", "va", allowed)),
      await errorOf(() => addTemporaryRoute("ff02::fb", "va", allowed)),
      await errorOf(() => addTemporaryRoute("::", "va", allowed)),
      await errorOf(() => addTemporaryRoute("::1", "va", allowed)),
      await errorOf(() => addTemporaryRoute("2001:db8::5%va", "va", allowed)),
      await errorOf(() => addTemporaryRoute("2001:db8::/64", "va", allowed)),
      await errorOf(() => addTemporaryRoute("server.example", "va", allowed)),
      await errorOf(() => addTemporaryRoute("2001:db8::5", "vb", allowed)),
      await errorOf(() => addTemporaryRoute("2001:db8::5", "nope0", ["nope0"])),
      await errorOf(() => addTemporaryRoute("2001:db8::5", "va/x", ["va/x"])),
      // Exists already (the parent added it): refused, and left alone.
      await errorOf(() => addTemporaryRoute("2001:db8::7", "va", allowed)),
    ];
  },
  async fdLeak() {
    const cycle = async () => {
      const r = await addTemporaryRoute("2001:db8::5", "va", ["va"]);
      await errorOf(() => addTemporaryRoute("2001:db8::5", "va", ["va"])); // exists
      await r.remove();
      await errorOf(() => withTemporaryRoute("2001:db8::6", "va", ["va"], async () => Promise.reject(new Error("boom"))));
      await errorOf(() => addTemporaryRoute("fe80::1", "va", ["va"]));
      await errorOf(() => addTemporaryRoute("2001:db8::5", "nope0", ["nope0"]));
      await listRoutes(6);
    };
    await cycle(); // warm-up: Node opens some descriptors once
    const before = fdCount();
    for (let i = 0; i < 10; i++) await cycle();
    const after = fdCount();
    return { before, after, routes: await listRoutes(6) };
  },
  async unreachable(arg: unknown) {
    const { address, port } = arg as { address: string; port: number };
    const first = await tryConnect(address, port);
    const decision = shouldTryDirectRoute({ errorCode: first, address, interfaceName: "va", connectMode: false, routeAdded: false });
    const second = decision ? await withTemporaryRoute(address, "va", ["va"], () => tryConnect(address, port)) : "not tried";
    return { first, decision, second, after: await listRoutes(6) };
  },
  async tracked() {
    const routes = new TemporaryRoutes(() => ["va"], { log: quiet });
    const a = await routes.add("2001:db8::a", "va");
    await routes.add("2001:db8::b", "va");
    await a.remove();
    const activeBefore = routes.active.map((r) => r.address);
    const during = await listRoutes(6);
    await routes.removeAll();
    await routes.removeAll();
    const late = await errorOf(() => routes.add("2001:db8::c", "va"));
    return { activeBefore, during, after: await listRoutes(6), late, activeAfter: routes.active.length };
  },
  /** A session that brought va up and added a route, ended by SIGTERM. */
  async sigterm() {
    const session = new NetworkSession({
      interfaces: ["va"],
      connect: null,
      delaySeconds: 2,
      hookDir: null,
      debug: false,
      log: quiet,
      quietConsole: false,
    });
    process.on("SIGTERM", () => {
      void session.close().then(() => {
        tellParent("CLOSED");
        process.exit(0);
      });
    });
    const report = await session.start();
    await session.addTemporaryRoute("2001:db8::9", "va");
    tellParent(`READY ${JSON.stringify(report.broughtUp)}`);
    // Keep the event loop alive until SIGTERM.
    setInterval(() => {}, 60_000);
    await new Promise(() => {});
  },
  async unprivileged() {
    process.setgroups?.([]);
    process.setgid?.(65534);
    process.setuid?.(65534);
    return errorOf(() => addTemporaryRoute("2001:db8::5", "va", ["va"]));
  },
};

if (isChild()) {
  await childMain(scenarios);
} else {
  // ------------------------------------------------------------ pure

  test("parseIp: IPv4, IPv6, embedded IPv4; no zones, prefixes or names", () => {
    const v6 = (s: string) => parseIp(s)?.value.toString(16);
    assert.equal(v6("::"), "0");
    assert.equal(v6("::1"), "1");
    assert.equal(v6("2001:db8::5"), "20010db8000000000000000000000005");
    assert.equal(v6("2001:DB8:0:0:0:0:0:5"), "20010db8000000000000000000000005");
    assert.equal(v6("fe80::aede:48ff:fe71:f6f2"), "fe80000000000000aede48fffe71f6f2");
    assert.equal(v6("::ffff:192.0.2.1"), "ffffc0000201");
    assert.equal(v6("1::"), "1" + "0".repeat(28));
    assert.deepEqual(parseIp("192.0.2.7"), { family: 4, value: 0xc0000207n });
    for (const bad of ["", "1.2.3", "1.2.3.256", "01.2.3.4x", "2001:db8::5%eth0", "2001:db8::/64", "1:2:3:4:5:6:7:8:9", "1::2::3", "example.org", "::g"]) {
      assert.equal(parseIp(bad), null, bad);
    }
    for (const s of ["2001:db8::5", "fe80::1", "2001:db8:0:1:0:0:0:1", "1:0:0:2:0:0:0:3", "::", "::1", "192.0.2.7", "1:2:3:4:5:6:7:8"]) {
      assert.equal(formatIp(parseIp(s)!), s.replace("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1").replace("1:0:0:2:0:0:0:3", "1:0:0:2::3"), s);
    }
    assert.equal(formatIp(parseIp("2001:DB8:0:0:0:0:0:5")!), "2001:db8::5");
    assert.equal(formatIp(parseIp("1:0:0:2:0:0:3:4")!), "1::2:0:0:3:4", "a tie: the first run");
  });

  test("address classes and prefixes", () => {
    const a = (s: string) => parseIp(s)!;
    assert.ok(isLinkLocal(a("fe80::1")) && isLinkLocal(a("febf::1")) && !isLinkLocal(a("fec0::1")));
    assert.ok(isLinkLocal(a("169.254.3.4")) && !isLinkLocal(a("169.255.0.1")));
    for (const s of ["2001:db8::5", "192.0.2.7", "fd00::1", "10.0.0.1"]) assert.ok(isRoutableUnicast(a(s)), s);
    for (const s of ["fe80::1", "::", "::1", "ff02::fb", "127.0.0.1", "0.0.0.0", "224.0.0.251", "169.254.1.1"]) assert.ok(!isRoutableUnicast(a(s)), s);
    assert.deepEqual(parsePrefix("default", 6), { family: 6, value: 0n, length: 0 });
    assert.equal(parsePrefix("2001:db8::5", 6)!.length, 128);
    assert.equal(parsePrefix("192.0.2.7", 4)!.length, 32);
    assert.equal(parsePrefix("192.0.2.0/24", 6), null);
    assert.equal(parsePrefix("2001:db8::/129", 6), null);
    assert.ok(prefixContains(parsePrefix("2001:db8::/32", 6)!, a("2001:db8:ffff::1")));
    assert.ok(!prefixContains(parsePrefix("2001:db8::/32", 6)!, a("2001:db9::1")));
    assert.ok(prefixContains(parsePrefix("default", 6)!, a("2001:db9::1")));
  });

  test("parseRoutesJson reads `ip -j route show`", () => {
    const text =
      '[{"type":"unreachable","dst":"2001:db8:1::/48","dev":"lo","metric":1024,"flags":[],"pref":"medium"},' +
      '{"dst":"fe80::/64","dev":"va","protocol":"kernel","metric":256,"flags":[],"pref":"medium"},' +
      '{"dst":"default","gateway":"fe80::1","dev":"va","metric":1024,"flags":[],"pref":"medium"},{"nodst":1},7]';
    assert.deepEqual(parseRoutesJson(text), [
      { type: "unreachable", dst: "2001:db8:1::/48", dev: "lo" },
      { dst: "fe80::/64", dev: "va", protocol: "kernel" },
      { dst: "default", gateway: "fe80::1", dev: "va" },
    ]);
    assert.deepEqual(parseRoutesJson(""), []);
    assert.deepEqual(parseRoutesJson("[]\n"), []);
    assert.throws(() => parseRoutesJson("RTNETLINK answers"), /not JSON/);
    assert.throws(() => parseRoutesJson('{"dst":"x"}'), /not a list/);
  });

  test("needsRoute: only when no unicast route covers a routable address", () => {
    const linkOnly: RouteEntry[] = [{ dst: "fe80::/64", dev: "va" }];
    assert.equal(needsRoute("2001:db8::5", []), true);
    assert.equal(needsRoute("2001:db8::5", linkOnly), true);
    assert.equal(needsRoute("2001:db8::5", [...linkOnly, { dst: "2001:db8::/64", dev: "va" }]), false);
    assert.equal(needsRoute("2001:db8::5", [...linkOnly, { dst: "2001:db8::5", dev: "va" }]), false);
    assert.equal(needsRoute("2001:db8::5", [...linkOnly, { dst: "default", gateway: "fe80::1", dev: "va" }]), false);
    // The most specific route decides: unreachable beats a default route.
    assert.equal(needsRoute("2001:db8::5", [{ dst: "default", dev: "va" }, { dst: "2001:db8::/48", type: "unreachable" }]), true);
    assert.equal(needsRoute("2001:db8::5", [{ dst: "2001:db8::/48", type: "blackhole" }, { dst: "2001:db8::/64", dev: "va" }]), false);
    assert.equal(needsRoute("2001:db8::5", [{ dst: "2001:db9::/32", dev: "va" }]), true);
    // Link-local, multicast and loopback never need one.
    for (const s of ["fe80::1", "ff02::fb", "::1", "169.254.1.1"]) assert.equal(needsRoute(s, []), false, s);
    // IPv4 works the same way (Mandos handles both).
    assert.equal(needsRoute("192.0.2.7", [{ dst: "192.0.2.0/24", dev: "va" }]), false);
    assert.equal(needsRoute("192.0.2.7", [{ dst: "198.51.100.0/24", dev: "va" }]), true);
    // Routes of the other family are ignored.
    assert.equal(needsRoute("192.0.2.7", [{ dst: "2001:db8::/32", dev: "va" }]), true);
    assert.throws(() => needsRoute("server", []), /not an IP address/);
  });

  test("shouldTryDirectRoute: Mandos's rule after a failed connect", () => {
    const base = { errorCode: "ENETUNREACH", address: "2001:db8::5", interfaceName: "eth0", connectMode: false, routeAdded: false };
    assert.equal(shouldTryDirectRoute(base), true);
    assert.equal(shouldTryDirectRoute({ ...base, errorCode: "EHOSTUNREACH" }), true);
    assert.equal(shouldTryDirectRoute({ ...base, address: "192.0.2.7" }), true);
    assert.equal(shouldTryDirectRoute({ ...base, errorCode: "ECONNREFUSED" }), false);
    assert.equal(shouldTryDirectRoute({ ...base, errorCode: "ETIMEDOUT" }), false);
    assert.equal(shouldTryDirectRoute({ ...base, errorCode: undefined }), false);
    assert.equal(shouldTryDirectRoute({ ...base, interfaceName: null }), false);
    assert.equal(shouldTryDirectRoute({ ...base, connectMode: true }), false);
    assert.equal(shouldTryDirectRoute({ ...base, routeAdded: true }), false);
    assert.equal(shouldTryDirectRoute({ ...base, address: "fe80::1" }), false);
    assert.equal(shouldTryDirectRoute({ ...base, address: "169.254.0.9" }), false);
    assert.equal(shouldTryDirectRoute({ ...base, address: "nonsense" }), false);
  });

  test("routeArgs: a host route on the interface, like Mandos's helper", () => {
    assert.deepEqual(routeArgs("add", parseIp("2001:DB8::5")!, "eth0"), [
      "-6", "route", "add", "2001:db8::5/128", "dev", "eth0", "proto", "boot", "scope", "link", "table", "main",
    ]);
    assert.deepEqual(routeArgs("del", parseIp("192.0.2.7")!, "eth0").slice(0, 4), ["-4", "route", "del", "192.0.2.7/32"]);
  });

  // ------------------------------------------------------------ effects, in namespaces

  const needsNetns = requires({ root: true, commands: ["ip"] });

  /** A namespace with va (up) and its peer vb (up). */
  function linkedNetns(): Netns {
    const ns = Netns.create();
    ns.veth("va", "vb");
    ns.ip("link", "set", "va", "up");
    ns.ip("link", "set", "vb", "up");
    return ns;
  }

  const dsts = (routes: RouteEntry[]) => routes.map((r) => `${r.dst}@${r.dev ?? ""}`).sort();

  test("a temporary route is added on the interface and removed again", { skip: needsNetns }, async () => {
    const ns = linkedNetns();
    try {
      const v6 = await runInNetns<{ before: boolean; during: RouteEntry[]; needDuring: boolean; after: RouteEntry[]; removed: boolean; needAfter: boolean }>(
        ns,
        SELF,
        "addRemove",
        { address: "2001:DB8::5", family: 6 },
      );
      assert.equal(v6.error, null);
      const r = v6.result!;
      assert.equal(r.before, true);
      assert.ok(dsts(r.during).includes("2001:db8::5@va"), JSON.stringify(r.during));
      assert.equal(r.needDuring, false);
      assert.deepEqual(dsts(r.after), ["fe80::/64@va", "fe80::/64@vb"]);
      assert.equal(r.removed, true);
      assert.equal(r.needAfter, true);
      const v4 = await runInNetns<{ during: RouteEntry[]; after: RouteEntry[] }>(ns, SELF, "addRemove", { address: "192.0.2.7", family: 4 });
      assert.equal(v4.error, null);
      assert.deepEqual(dsts(v4.result!.during), ["192.0.2.7@va"]);
      assert.deepEqual(v4.result!.after, []);
    } finally {
      ns.delete();
    }
  });

  test("the route is removed when an error is thrown in between", { skip: needsNetns }, async () => {
    const ns = linkedNetns();
    try {
      const out = await runInNetns<{ err: string; inside: RouteEntry[]; after: RouteEntry[] }>(ns, SELF, "errorInBetween");
      assert.equal(out.error, null);
      assert.equal(out.result!.err, "boom");
      assert.ok(dsts(out.result!.inside).includes("2001:db8::5@va"));
      assert.ok(!dsts(out.result!.after).some((d) => d.startsWith("2001:db8::5")));
    } finally {
      ns.delete();
    }
  });

  test("bad requests are refused with one line; an existing route is left alone", { skip: needsNetns }, async () => {
    const ns = linkedNetns();
    try {
      ns.ip("-6", "route", "add", "2001:db8::7/128", "dev", "va");
      const out = await runInNetns<string[]>(ns, SELF, "refusals");
      assert.equal(out.error, null);
      assert.deepEqual(out.result, [
        "cannot add a route to fe80::1: a link-local address needs no route",
        "cannot add a route to 169.254.1.1: a link-local address needs no route",
        "cannot add a route to ff02::fb: not a unicast address",
        "cannot add a route to ::: not a unicast address",
        "cannot add a route to ::1: not a unicast address",
        'cannot add a route to "2001:db8::5%va": not an IP address',
        'cannot add a route to "2001:db8::/64": not an IP address',
        'cannot add a route to "server.example": not an IP address',
        "cannot add a route to 2001:db8::5 on vb: not one of the interfaces in use",
        "cannot add a route to 2001:db8::5 on nope0: no such interface",
        'cannot add a route to 2001:db8::5 on "va/x": not a valid interface name',
        "cannot add a route to 2001:db8::7 on va: File exists",
      ]);
      assert.ok(dsts(ns.routes6()).includes("2001:db8::7@va"), "the route we did not make is still there");
    } finally {
      ns.delete();
    }
  });

  test("no file descriptor or route is left behind after many adds, removes and errors", { skip: needsNetns }, async () => {
    const ns = linkedNetns();
    try {
      const out = await runInNetns<{ before: number; after: number; routes: RouteEntry[] }>(ns, SELF, "fdLeak", null, { timeoutMs: 60_000 });
      assert.equal(out.error, null);
      assert.equal(out.result!.after, out.result!.before);
      assert.deepEqual(dsts(out.result!.routes), ["fe80::/64@va", "fe80::/64@vb"]);
    } finally {
      ns.delete();
    }
  });

  test("TemporaryRoutes.removeAll removes what is still in place and refuses new routes", { skip: needsNetns }, async () => {
    const ns = linkedNetns();
    try {
      const out = await runInNetns<{ activeBefore: string[]; during: RouteEntry[]; after: RouteEntry[]; late: string; activeAfter: number }>(ns, SELF, "tracked");
      assert.equal(out.error, null);
      const r = out.result!;
      assert.deepEqual(r.activeBefore, ["2001:db8::b"]);
      assert.ok(dsts(r.during).includes("2001:db8::b@va") && !dsts(r.during).includes("2001:db8::a@va"));
      assert.deepEqual(dsts(r.after), ["fe80::/64@va", "fe80::/64@vb"]);
      assert.equal(r.late, "cannot add a route to 2001:db8::c: shutting down");
      assert.equal(r.activeAfter, 0);
    } finally {
      ns.delete();
    }
  });

  // The situation the route exists for: the server has only a global address
  // on our link and nobody advertises a route to it.
  test("a server reachable only through the temporary route is reached", { skip: needsNetns }, async () => {
    const ns = Netns.create();
    const peer = Netns.create();
    let server: ReturnType<typeof spawn> | null = null;
    try {
      for (const n of [ns, peer]) n.exec("sysctl", ["-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"]);
      ns.veth("va", "vb");
      ns.ip("link", "set", "vb", "netns", peer.name);
      ns.ip("link", "set", "va", "up");
      peer.ip("link", "set", "vb", "up");
      peer.ip("addr", "add", "2001:db8::5/128", "dev", "vb", "nodad");
      // The server side has a route back to the client's link.
      const code =
        "const s=require('net').createServer(c=>c.end('hello\\n'));s.listen(4711,'2001:db8::5',()=>console.log('listening'))";
      server = spawn("ip", ["netns", "exec", peer.name, process.execPath, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("server did not start")), 10_000);
        server!.stdout!.once("data", () => {
          clearTimeout(t);
          resolve();
        });
      });
      // Wait for va's link-local address to be usable as a source.
      for (let i = 0; i < 50 && !ns.ip("-6", "addr", "show", "dev", "va").includes("fe80::"); i++) await new Promise((r) => setTimeout(r, 50));
      const out = await runInNetns<{ first: string; decision: boolean; second: string; after: RouteEntry[] }>(ns, SELF, "unreachable", {
        address: "2001:db8::5",
        port: 4711,
      });
      assert.equal(out.error, null);
      assert.equal(out.result!.first, "ENETUNREACH");
      assert.equal(out.result!.decision, true);
      assert.equal(out.result!.second, "data:hello");
      assert.ok(!dsts(out.result!.after).some((d) => d.startsWith("2001:db8::5")));
    } finally {
      server?.kill("SIGKILL");
      ns.delete();
      peer.delete();
    }
  });

  test("SIGTERM: the session removes its route and takes down what it brought up", { skip: needsNetns }, async () => {
    const ns = Netns.create();
    try {
      ns.veth("va", "vb");
      ns.ip("link", "set", "vb", "up");
      let seen: { up: boolean; routes: string[]; broughtUp: string } | null = null;
      const out = await runInNetns(ns, SELF, "sigterm", null, {
        onLine: (line, pid) => {
          if (!line.startsWith("READY ")) return;
          seen = { up: ns.flags("va").includes("UP"), routes: dsts(ns.routes6()), broughtUp: line.slice(6) };
          process.kill(pid, "SIGTERM");
        },
      });
      assert.equal(out.code, 0, out.stderr);
      assert.ok(seen, "the child got ready");
      const s = seen as { up: boolean; routes: string[]; broughtUp: string };
      assert.equal(s.broughtUp, '["va"]');
      assert.equal(s.up, true);
      assert.ok(s.routes.includes("2001:db8::9@va"));
      assert.ok(!ns.flags("va").includes("UP"), "va is down again");
      assert.ok(ns.flags("vb").includes("UP"), "vb, which it did not bring up, is still up");
      assert.ok(!dsts(ns.routes6()).some((d) => d.startsWith("2001:db8::9")));
    } finally {
      ns.delete();
    }
  });

  test("without privileges: a one-line error", { skip: needsNetns }, async () => {
    const ns = linkedNetns();
    try {
      const out = await runInNetns<string>(ns, SELF, "unprivileged");
      assert.equal(out.error, null);
      assert.equal(out.result, "cannot add a route to 2001:db8::5 on va: Operation not permitted");
    } finally {
      ns.delete();
    }
  });
}
