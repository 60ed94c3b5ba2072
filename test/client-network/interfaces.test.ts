// Interface selection (pure, Mandos's rules) and the privileged steps,
// the latter inside network namespaces this test creates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  bringDown,
  bringUp,
  interfaceNameForIndex,
  isRunning,
  waitRunning,
} from "../../src/client/network/interfaces.js";
import { selectInterfaces } from "../../src/client/network/selection.js";
import {
  IFF,
  describeFlags,
  interfaceVerdict,
  isSuitable,
  isValidInterfaceName,
  listInterfaces,
  parseInterfaceFlags,
  readInterface,
  type NetInterface,
} from "../../src/sys/interfaces.js";
import { parseConsoleLevel, quietConsole, quietLevelFor } from "../../src/client/network/console.js";
import { ipFailureReason, runIp } from "../../src/client/network/ip.js";
import { requires, tempDir } from "../helpers/index.js";
import { DEBIAN_CLIENT, debianPeer, debianPeerMissing } from "../helpers/debian-peer.js";
import { Netns, childMain, isChild, runInNetns } from "../helpers/client-network.js";
import { readFileSync, writeFileSync } from "node:fs";

const SELF = fileURLToPath(import.meta.url);

const iface = (name: string, flags: number, operstate = "down", index = 2): NetInterface => ({
  name,
  index,
  flags,
  operstate,
  carrier: null,
  ipv6: [],
  ipv4: [],
});
// Flags as seen in /sys/class/net on this kernel.
const VETH = 0x1002; // BROADCAST|MULTICAST
const LO = 0x9; // UP|LOOPBACK
const TUN = 0x1090; // POINTOPOINT|NOARP|MULTICAST
const NOARP_BCAST = 0x1082; // BROADCAST|NOARP|MULTICAST

// ------------------------------------------------------------ scenarios (child side)

const scenarios = {
  /** Bring the named interface up, wait, report states. */
  async bringUpAndWait(arg: unknown) {
    const { name, delayMs } = arg as { name: string; delayMs: number };
    const before = readInterface(name);
    const result = await bringUp(name, [name]);
    const linkLocal = execFileSync("ip", ["-6", "addr", "show", "dev", name, "scope", "link"], { encoding: "utf8" });
    const t0 = performance.now();
    const wait = await waitRunning([name], delayMs);
    const waitedMs = performance.now() - t0;
    const after = readInterface(name);
    const again = await bringUp(name, [name]);
    const dad = () => readFileSync(`/proc/sys/net/ipv6/conf/${name}/accept_dad`, "latin1").trim();
    const dadWhileUp = dad();
    const down = await bringDown(name, [name]);
    return { before, result, linkLocal, wait, waitedMs, after, again, dadWhileUp, down, dadAfterDown: dad() };
  },
  async list() {
    const all = listInterfaces();
    const byIndex = await Promise.all(all.map((i) => interfaceNameForIndex(i.index)));
    return { all, byIndex, none: await interfaceNameForIndex(99999) };
  },
  async refusals() {
    const msgs: string[] = [];
    const attempt = async (f: () => Promise<unknown>) => {
      try {
        await f();
        msgs.push("ok");
      } catch (err) {
        msgs.push((err as Error).message);
      }
    };
    await attempt(() => bringUp("va", ["vb"]));
    await attempt(() => bringUp("nope0", ["nope0"]));
    await attempt(() => bringUp("../x", ["../x"]));
    await attempt(() => bringUp("a b", ["a b"]));
    await attempt(() => bringDown("va", []));
    return msgs;
  },
  async unprivileged() {
    // Drop root inside the namespace: `ip` must fail with a clear line.
    process.setgroups?.([]);
    process.setgid?.(65534);
    process.setuid?.(65534);
    const out: string[] = [];
    for (const f of [() => bringUp("va", ["va"]), () => bringDown("vb", ["vb"])]) {
      try {
        await f();
        out.push("ok");
      } catch (err) {
        out.push(`${(err as Error).name}: ${(err as Error).message}`);
      }
    }
    return out;
  },
  async select(arg: unknown) {
    const { spec, connectMode } = arg as { spec: string[]; connectMode: boolean };
    return selectInterfaces(spec, listInterfaces(), { connectMode });
  },
};

if (isChild()) {
  await childMain(scenarios);
} else {
  // ------------------------------------------------------------ pure

  test("parseInterfaceFlags reads sysfs hex and rejects anything else", () => {
    assert.equal(parseInterfaceFlags("0x1003\n"), 0x1003);
    assert.equal(parseInterfaceFlags("0x9"), 9);
    assert.equal(parseInterfaceFlags(" 0xABCDEF "), 0xabcdef);
    for (const bad of ["", "1003", "0x", "0xg", "0x1 0x2", "-0x1", "0x123456789"]) {
      assert.throws(() => parseInterfaceFlags(bad), /bad interface flags/, bad);
    }
    assert.deepEqual(describeFlags(0x1003), ["UP", "BROADCAST", "MULTICAST"]);
    assert.deepEqual(describeFlags(TUN), ["POINTOPOINT", "NOARP", "MULTICAST"]);
  });

  test("Mandos's suitability rule, without and with --connect", () => {
    const cases: [string, number, boolean, boolean, RegExp][] = [
      // name, flags, suitable, suitable with --connect, reason without --connect
      ["veth", VETH, true, true, /good/],
      ["veth-up", VETH | IFF.UP, true, true, /good/],
      ["lo", LO, false, false, /loopback/],
      ["lo-p2p", IFF.LOOPBACK | IFF.POINTOPOINT, false, false, /loopback/],
      ["tun", TUN, false, true, /non-broadcast/],
      ["p2p-bcast", IFF.POINTOPOINT | IFF.BROADCAST, true, true, /good/],
      ["noarp", NOARP_BCAST, false, false, /non-ARP/],
      ["nobcast", IFF.MULTICAST, false, false, /non-broadcast/],
      ["nothing", 0, false, false, /non-broadcast/],
    ];
    for (const [name, flags, plain, connect, reason] of cases) {
      assert.equal(isSuitable(iface(name, flags), { connectMode: false }), plain, name);
      assert.equal(isSuitable(iface(name, flags), { connectMode: true }), connect, `${name} --connect`);
      assert.match(interfaceVerdict(iface(name, flags), { connectMode: false }).reason, reason, name);
    }
    assert.match(interfaceVerdict(iface("tun", TUN), { connectMode: true }).reason, /point-to-point/);
  });

  test("isRunning: up and operationally up or unknown (sysfs omits IFF_RUNNING)", () => {
    assert.equal(isRunning(iface("a", VETH | IFF.UP, "up")), true);
    assert.equal(isRunning(iface("lo", LO, "unknown")), true);
    assert.equal(isRunning(iface("a", VETH | IFF.UP, "lowerlayerdown")), false);
    assert.equal(isRunning(iface("a", VETH | IFF.UP, "dormant")), false);
    assert.equal(isRunning(iface("a", VETH, "up")), false);
    assert.equal(isRunning(iface("a", VETH, "down")), false);
  });

  test("isValidInterfaceName follows the kernel's rule", () => {
    for (const ok of ["eth0", "enp0s31f6", "br-lan", "a", "x".repeat(15), "wg.0", "-x"]) assert.ok(isValidInterfaceName(ok), ok);
    for (const bad of ["", ".", "..", "x".repeat(16), "a/b", "a:1", "a b", "a\tb", "a\nb", "ééééééééé"]) {
      assert.ok(!isValidInterfaceName(bad), JSON.stringify(bad));
    }
  });

  const avail = [iface("vb", VETH), iface("lo", LO), iface("va", VETH), iface("tn0", TUN), iface("Eth", VETH)];

  test("selectInterfaces: automatic choice in byte order when nothing is named", () => {
    for (const spec of [[], [""], ["gone"], ["gone", ""]]) {
      const s = selectInterfaces(spec, avail, { connectMode: false });
      assert.deepEqual(s.use, ["Eth", "va", "vb"], JSON.stringify(spec));
      assert.deepEqual(s.bringUp, ["Eth", "va", "vb"]);
      assert.equal(s.automatic, true);
      assert.equal(s.only, null);
      assert.deepEqual(s.missing, spec.filter((n) => n !== ""));
      assert.deepEqual(
        s.verdicts.map((v) => [v.name, v.verdict.suitable]),
        [["Eth", true], ["lo", false], ["tn0", false], ["va", true], ["vb", true]],
      );
    }
    const c = selectInterfaces([], avail, { connectMode: true });
    assert.deepEqual(c.use, ["Eth", "tn0", "va", "vb"]);
    assert.deepEqual(selectInterfaces([], [iface("lo", LO)], { connectMode: false }).use, []);
  });

  test('selectInterfaces: named interfaces and "none"', () => {
    const sel = (spec: string[]) => {
      const s = selectInterfaces(spec, avail, { connectMode: false });
      return { use: s.use, bringUp: s.bringUp, missing: s.missing, automatic: s.automatic, only: s.only };
    };
    assert.deepEqual(sel(["vb", "va"]), { use: ["vb", "va"], bringUp: ["vb", "va"], missing: [], automatic: false, only: null });
    assert.deepEqual(sel(["va"]), { use: ["va"], bringUp: ["va"], missing: [], automatic: false, only: "va" });
    // Named interfaces are used whatever their flags (lo, a tunnel).
    assert.deepEqual(sel(["lo", "tn0"]).bringUp, ["lo", "tn0"]);
    // "none" first: nothing brought up, nothing used, no automatic choice.
    assert.deepEqual(sel(["none"]), { use: [], bringUp: [], missing: [], automatic: false, only: null });
    // Only interfaces before "none" are brought up; later ones are still used.
    assert.deepEqual(sel(["va", "none", "vb"]), { use: ["va", "vb"], bringUp: ["va"], missing: [], automatic: false, only: null });
    assert.deepEqual(sel(["none", "va"]), { use: ["va"], bringUp: [], missing: [], automatic: false, only: "va" });
    assert.deepEqual(sel(["va", "none"]), { use: ["va"], bringUp: ["va"], missing: [], automatic: false, only: "va" });
    assert.deepEqual(sel(["va", "none", "vb", "none", "Eth"]).bringUp, ["va"]);
    // Missing names are dropped and reported; "none" still counts as a name.
    assert.deepEqual(sel(["gone", "va"]), { use: ["va"], bringUp: ["va"], missing: ["gone"], automatic: false, only: "va" });
    assert.deepEqual(sel(["gone", "none"]), { use: [], bringUp: [], missing: ["gone"], automatic: false, only: null });
    // Duplicates are used once.
    assert.deepEqual(sel(["va", "va", "none", "va"]).use, ["va"]);
    assert.deepEqual(sel(["va", "none", "va"]).bringUp, ["va"]);
  });

  test("ipFailureReason: ip's complaint as one short line", async () => {
    assert.equal(ipFailureReason("RTNETLINK answers: Operation not permitted\n", 2, null), "Operation not permitted");
    assert.equal(ipFailureReason("Error: Nexthop device is not up.\n", 2, null), "Nexthop device is not up");
    assert.equal(ipFailureReason('Cannot find device "x"\n\n', 1, null), 'Cannot find device "x"');
    assert.equal(ipFailureReason("", 1, null), "ip exited with status 1");
    assert.equal(ipFailureReason("", null, "SIGSEGV"), "ip killed by SIGSEGV");
    assert.equal(ipFailureReason("partial", null, "SIGKILL", true), "timed out");
    await assert.rejects(runIp(["link"], "cannot list", { program: "/nonexistent/ip" }), {
      name: "NetworkError",
      message: "cannot list: cannot run /nonexistent/ip: ENOENT",
    });
    await assert.rejects(runIp(["-c", "sleep 5"], "cannot wait", { program: "/bin/sh", timeoutMs: 200 }), {
      message: "cannot wait: timed out",
    });
    await assert.rejects(runIp(["-c", "echo 'RTNETLINK answers: File exists' >&2; exit 2"], "cannot add", { program: "/bin/sh" }), {
      message: "cannot add: File exists",
    });
  });

  test("waitRunning polls until running or the delay is over (clock injected)", async () => {
    let t = 0;
    const sleeps: number[] = [];
    const states = new Map<string, string[]>([
      ["a", ["lowerlayerdown", "lowerlayerdown", "up"]],
      ["b", ["down"]],
    ]);
    const read = async (name: string) => {
      const seq = states.get(name);
      if (!seq) return null;
      const state = seq.length > 1 ? seq.shift()! : seq[0];
      return iface(name, VETH | IFF.UP, state);
    };
    const r = await waitRunning(["a", "b", "gone"], 1000, {
      now: () => t,
      sleep: async (ms) => {
        sleeps.push(ms);
        t += ms;
      },
      read,
    });
    assert.deepEqual(r, { running: ["a"], notRunning: ["b", "gone"] });
    assert.deepEqual(sleeps, [250, 250, 250, 250]);
    // All running at once: no sleep at all; zero delay: one look only.
    t = 0;
    sleeps.length = 0;
    const up = async (n: string) => iface(n, VETH | IFF.UP, "up");
    assert.deepEqual(await waitRunning(["x", "y"], 2500, { now: () => t, sleep: async (ms) => void sleeps.push(ms), read: up }), {
      running: ["x", "y"],
      notRunning: [],
    });
    const down = async (n: string) => iface(n, VETH, "down");
    assert.deepEqual(await waitRunning(["x"], 0, { now: () => t, sleep: async (ms) => void sleeps.push(ms), read: down }), {
      running: [],
      notRunning: ["x"],
    });
    assert.equal(sleeps.length, 0);
    // The last sleep is cut to the deadline; an abort stops the wait.
    t = 0;
    await waitRunning(["x"], 600, { now: () => t, sleep: async (ms) => void (sleeps.push(ms), (t += ms)), read: down });
    assert.deepEqual(sleeps, [250, 250, 100]);
    const ac = new AbortController();
    sleeps.length = 0;
    t = 0;
    await waitRunning(["x"], 10_000, {
      now: () => t,
      sleep: async (ms) => {
        sleeps.push(ms);
        t += ms;
        if (sleeps.length === 2) ac.abort();
      },
      read: down,
      signal: ac.signal,
    });
    assert.equal(sleeps.length, 2);
  });

  test("console log level: only ever lowered to KERN_NOTICE, restored after", async () => {
    assert.equal(parseConsoleLevel("7\t4\t1\t7\n"), 7);
    assert.equal(parseConsoleLevel("junk"), null);
    assert.equal(quietLevelFor(7), 5);
    assert.equal(quietLevelFor(6), 5);
    assert.equal(quietLevelFor(5), null);
    assert.equal(quietLevelFor(4), null);
    assert.equal(quietLevelFor(null), null);
    // The effect, on a stand-in file (the real one is global to the machine).
    using dir = tempDir();
    const file = `${dir.path}/printk`;
    writeFileSync(file, "7\t4\t1\t7\n");
    const restore = await quietConsole(file);
    assert.equal(readFileSync(file, "utf8"), "5\n");
    await restore();
    await restore();
    assert.equal(readFileSync(file, "utf8"), "7\n");
    writeFileSync(file, "4\t4\t1\t7\n");
    await (await quietConsole(file))();
    assert.equal(readFileSync(file, "utf8"), "4\t4\t1\t7\n", "a quiet console is left alone");
    const errors: string[] = [];
    await (await quietConsole(`${dir.path}/missing`, (m) => errors.push(m)))();
    assert.match(errors[0], /cannot read .*missing: ENOENT/);
  });

  // ------------------------------------------------------------ effects, in namespaces

  const needsNetns = requires({ root: true, commands: ["ip"] });

  test("listInterfaces and interfaceNameForIndex see the namespace's interfaces", { skip: needsNetns }, async () => {
    const ns = Netns.create();
    try {
      ns.veth("va", "vb");
      const out = await runInNetns<{ all: NetInterface[]; byIndex: string[]; none: string | null }>(ns, SELF, "list");
      assert.equal(out.error, null);
      const names = out.result!.all.map((i) => i.name);
      assert.deepEqual(names, ["lo", "va", "vb"]);
      const va = out.result!.all.find((i) => i.name === "va")!;
      assert.equal(va.flags, VETH);
      assert.equal(va.operstate, "down");
      assert.deepEqual(out.result!.byIndex, names);
      assert.equal(out.result!.none, null);
    } finally {
      ns.delete();
    }
  });

  test("bringUp + waitRunning: a veth end that was down is up and running, without DAD until bringDown", { skip: needsNetns }, async () => {
    const ns = Netns.create();
    try {
      ns.veth("va", "vb");
      ns.ip("link", "set", "vb", "up");
      ns.exec("sysctl", ["-qw", "net.ipv6.conf.va.accept_dad=1"]); // the kernel's default, said outright
      const out = await runInNetns<{
        before: NetInterface;
        result: string;
        linkLocal: string;
        wait: { running: string[]; notRunning: string[] };
        after: NetInterface;
        again: string;
        dadWhileUp: string;
        down: string;
        dadAfterDown: string;
      }>(ns, SELF, "bringUpAndWait", { name: "va", delayMs: 3000 });
      assert.equal(out.error, null);
      const r = out.result!;
      assert.equal(r.before.flags & IFF.UP, 0);
      assert.equal(r.result, "brought-up");
      // Its link-local address is usable as soon as it is up: not tentative, not optimistic.
      assert.match(r.linkLocal, /inet6 fe80:/);
      assert.doesNotMatch(r.linkLocal, /tentative|optimistic/);
      assert.deepEqual(r.wait, { running: ["va"], notRunning: [] });
      assert.ok(isRunning(r.after));
      assert.equal(r.again, "already-up");
      // No DAD while this run has it up; the kernel's default back once it is taken down.
      assert.equal(r.dadWhileUp, "0");
      assert.equal(r.down, "taken-down");
      assert.equal(r.dadAfterDown, "1");
      assert.ok(!ns.flags("va").includes("UP"));
    } finally {
      ns.delete();
    }
  });

  test("waitRunning gives up after --delay when the link never comes up", { skip: needsNetns }, async () => {
    const ns = Netns.create();
    try {
      ns.veth("va", "vb"); // peer stays down: va is up but lowerlayerdown
      const out = await runInNetns<{ wait: { running: string[]; notRunning: string[] }; waitedMs: number; after: NetInterface }>(
        ns,
        SELF,
        "bringUpAndWait",
        { name: "va", delayMs: 400 },
      );
      assert.equal(out.error, null);
      assert.deepEqual(out.result!.wait, { running: [], notRunning: ["va"] });
      assert.ok(out.result!.waitedMs >= 390 && out.result!.waitedMs < 2000, String(out.result!.waitedMs));
      assert.equal(out.result!.after.operstate, "lowerlayerdown");
    } finally {
      ns.delete();
    }
  });

  test("refuses interfaces that are not selected, missing or badly named", { skip: needsNetns }, async () => {
    const ns = Netns.create();
    try {
      ns.veth("va", "vb");
      const out = await runInNetns<string[]>(ns, SELF, "refusals");
      assert.equal(out.error, null);
      assert.deepEqual(out.result, [
        "cannot bring up va: not one of the interfaces in use",
        "cannot bring up nope0: no such interface",
        'cannot bring up "../x": not a valid interface name',
        'cannot bring up "a b": not a valid interface name',
        "cannot take down va: not one of the interfaces in use",
      ]);
      assert.ok(!ns.flags("va").includes("UP"));
    } finally {
      ns.delete();
    }
  });

  test("without privileges: a one-line error, no stack trace", { skip: needsNetns }, async () => {
    const ns = Netns.create();
    try {
      ns.veth("va", "vb");
      ns.ip("link", "set", "vb", "up");
      const out = await runInNetns<string[]>(ns, SELF, "unprivileged");
      assert.equal(out.error, null);
      assert.deepEqual(out.result, [
        "NetworkError: cannot bring up va: Operation not permitted",
        "NetworkError: cannot take down vb: Operation not permitted",
      ]);
      assert.ok(!ns.flags("va").includes("UP"));
      assert.ok(ns.flags("vb").includes("UP"));
    } finally {
      ns.delete();
    }
  });

  // Debian's client and ours choose the same interfaces and bring up the same ones.
  test("selection matches Debian's mandos-client", { skip: needsNetns || debianPeerMissing(DEBIAN_CLIENT) }, async () => {
    const ns = Netns.create();
    try {
      ns.veth("va", "vb");
      ns.veth("vc", "vd");
      ns.ip("link", "set", "vd", "up");
      ns.ip("tuntap", "add", "dev", "tn0", "mode", "tun");
      const cases: { spec: string; connect: boolean }[] = [
        { spec: "", connect: false },
        { spec: "", connect: true },
        { spec: "vb,va", connect: false },
        { spec: "va,none,vb", connect: false },
        { spec: "none,vc", connect: false },
        { spec: "gone,vc", connect: false },
        { spec: "gone", connect: false },
        { spec: "none", connect: false },
      ];
      for (const c of cases) {
        const args = [
          "--debug",
          "--network-hook-dir=/nonexistent",
          "--delay=0",
          `--interface=${c.spec}`,
          "--pubkey=/nonexistent/p",
          "--seckey=/nonexistent/s",
          "--tls-pubkey=/nonexistent/t",
          "--tls-privkey=/nonexistent/k",
          ...(c.connect ? ["--connect=[fe80::1]:1"] : []),
        ];
        const deb = ns.exec(debianPeer(DEBIAN_CLIENT), args);
        const lines = deb.stderr.split("\n");
        const pick = (re: RegExp) => lines.map((l) => re.exec(l)?.[1]).filter((x): x is string => x !== undefined);
        const debianBroughtUp = pick(/Bringing up interface "([^"]+)"/);
        const debianTakenDown = pick(/Taking down interface "([^"]+)"/);
        const debianMissing = pick(/Not using nonexisting interface "([^"]+)"/);
        const debianAuto = pick(/Will use interface "([^"]+)"/);
        const debianOnly = pick(/Using only interface "([^"]+)"/);
        const spec = c.spec === "" ? [] : c.spec.split(",");
        const ours = await runInNetns<{ use: string[]; bringUp: string[]; missing: string[]; automatic: boolean; only: string | null }>(
          ns,
          SELF,
          "select",
          { spec, connectMode: c.connect },
        );
        assert.equal(ours.error, null);
        const s = ours.result!;
        const label = JSON.stringify(c);
        // Debian logs "Bringing up" only for interfaces that were down (vd is up).
        assert.deepEqual(s.bringUp.filter((n) => n !== "vd"), debianBroughtUp, label);
        assert.deepEqual(debianTakenDown, debianBroughtUp, label);
        assert.deepEqual(s.missing, debianMissing, label);
        if (s.automatic) assert.deepEqual(s.use, debianAuto, label);
        else assert.deepEqual(debianAuto, [], label);
        assert.deepEqual(s.only === null ? [] : [s.only], debianOnly, label);
        // Debian took down what it brought up: everything but vd is down again.
        for (const dev of ["va", "vb", "vc", "tn0"]) assert.ok(!ns.flags(dev).includes("UP"), `${label} ${dev}`);
      }
    } finally {
      ns.delete();
    }
  });

  test("the namespace helper refuses to run a scenario in our own namespace", { skip: needsNetns }, async () => {
    // A child started without the namespace: childMain must refuse.
    const { spawnSync } = await import("node:child_process");
    const { readlinkSync } = await import("node:fs");
    const r = spawnSync(process.execPath, [SELF], {
      env: { ...process.env, MANDOS_CN_SCENARIO: "bringUpAndWait", MANDOS_CN_ARG: '{"name":"lo","delayMs":0}', MANDOS_CN_PARENT_NETNS: readlinkSync("/proc/self/ns/net") },
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stdout, /refusing to run outside a test network namespace/);
    assert.ok(existsSync("/sys/class/net/lo"));
  });
}
