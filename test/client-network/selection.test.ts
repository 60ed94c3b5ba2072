// Which interfaces a run takes, at the start and at each later survey:
// pattern lists wired into the selection, Mandos's plain names unchanged,
// and the pure decision of which interfaces that appear late to adopt.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decide, missingNames, newlyTaken, selectInterfaces, selectionRules } from "../../src/client/network/selection.js";
import { InterfaceFollower } from "../../src/client/follow.js";
import { clientSelection, parseClientOptions } from "../../src/client/options.js";
import { makeLogger } from "../../src/cli/log.js";
import { IFF, type NetInterface } from "../../src/sys/interfaces.js";

const VETH = IFF.BROADCAST | IFF.MULTICAST;
const LO = IFF.UP | IFF.LOOPBACK;
const TUN = IFF.POINTOPOINT | IFF.NOARP | IFF.MULTICAST;
const NOARP = IFF.BROADCAST | IFF.NOARP | IFF.MULTICAST;
let nextIndex = 2;
const iface = (name: string, flags = VETH): NetInterface => ({ name, index: nextIndex++, flags, operstate: "down", carrier: null, ipv6: [], ipv4: [] });
const avail = [iface("eth0"), iface("eth1"), iface("lo", LO), iface("tun0", TUN), iface("tap0"), iface("wlan0"), iface("dummy0", NOARP)];
const pick = (spec: string[], connectMode = false) => {
  const s = selectInterfaces(spec, avail, { connectMode });
  return { use: s.use, bringUp: s.bringUp, missing: s.missing, automatic: s.automatic };
};

test("pattern lists: the first matching rule decides; the default * also needs Mandos's suitability, explicit rules do not", () => {
  // Empty after the exclusion: the defaults apply (no tun*, tap*, lo; dummy0 cannot ARP).
  assert.deepEqual(pick(["!wlan*"]), { use: ["eth0", "eth1"], bringUp: ["eth0", "eth1"], missing: [], automatic: true });
  // An explicit inclusion takes what the default rules or Mandos's rule would not.
  assert.deepEqual(pick(["+tap0", "+dummy0", "!*"]).use, ["dummy0", "tap0"]);
  assert.deepEqual(pick(["eth*"]).use, ["eth0", "eth1"], "ends with an inclusion: nothing appended");
  assert.deepEqual(pick(["!eth1", "e*", "wl?n0"]).use, ["eth0", "wlan0"]);
  // A name without wildcards in a pattern list is expected: missing until it appears.
  assert.deepEqual(pick(["+usb0", "eth0"]), { use: ["eth0"], bringUp: ["eth0"], missing: ["usb0"], automatic: true });
  const verdicts = selectInterfaces(["!wlan*"], avail, { connectMode: false }).verdicts.map((v) => `${v.verdict.reason} "${v.name}"`);
  assert.deepEqual(verdicts, [
    'rejecting non-ARP interface "dummy0"',
    'interface is good "eth0"',
    'interface is good "eth1"',
    'rejecting (--interface !lo) interface "lo"',
    'rejecting (--interface !tap*) interface "tap0"',
    'rejecting (--interface !tun*) interface "tun0"',
    'rejecting (--interface !wlan*) interface "wlan0"',
  ]);
});

test("plain names keep Mandos's meaning, with the same results as before patterns", () => {
  assert.deepEqual(pick([]), { use: ["eth0", "eth1", "tap0", "wlan0"], bringUp: ["eth0", "eth1", "tap0", "wlan0"], missing: [], automatic: true });
  assert.deepEqual(pick(["wlan0", "tun0", "none", "eth1"]), { use: ["wlan0", "tun0", "eth1"], bringUp: ["wlan0", "tun0"], missing: [], automatic: false });
  assert.deepEqual(pick(["usb0"]).automatic, true, "only missing names: every suitable one");
  assert.deepEqual(pick(["usb0", "none"]), { use: [], bringUp: [], missing: ["usb0"], automatic: false });
  // With --connect a point-to-point interface is suitable.
  assert.ok(pick([], true).use.includes("tun0"));
});

test("selectionRules: fixed at the start; a plain list falls back to every suitable interface only if none of its names is there", () => {
  assert.deepEqual(selectionRules(["eth0", "none", "eth1", "eth0"], ["eth0"], { connectMode: false }), {
    kind: "names",
    bringUp: ["eth0"],
    useOnly: ["eth1"],
    automatic: false,
    connectMode: false,
  });
  assert.equal((selectionRules(["usb0"], ["eth0"], { connectMode: false }) as { automatic: boolean }).automatic, true);
  assert.equal((selectionRules(["none"], [], { connectMode: false }) as { automatic: boolean }).automatic, false);
  assert.equal(selectionRules(["eth*"], [], { connectMode: false }).kind, "patterns");
  const named = selectionRules(["eth0", "none", "eth1"], ["eth0"], { connectMode: false });
  assert.deepEqual(["eth0", "eth1", "wlan0"].map((n) => decide(named, iface(n)).take), ["bring-up", "use", null]);
});

test("newlyTaken: per survey, the interfaces that appeared and that the rules take, once each", () => {
  const late = [iface("eth0"), iface("eth2"), iface("tun1", TUN), iface("usb0"), iface("lo", LO)];
  // Automatic (no names): every suitable newcomer, in name order.
  const automatic = selectionRules([], ["eth0"], { connectMode: false });
  assert.deepEqual(newlyTaken(automatic, late, new Set(["eth0"])).map((n) => `${n.name}:${n.take}`), ["eth2:bring-up", "usb0:bring-up"]);
  // Named: only the named ones, whether before or after "none".
  const named = selectionRules(["eth0", "usb0", "none", "eth2"], ["eth0"], { connectMode: false });
  assert.deepEqual(newlyTaken(named, late, new Set(["eth0"])).map((n) => `${n.name}:${n.take}`), ["eth2:use", "usb0:bring-up"]);
  // A named interface missing at the start, with nothing else named: Mandos's fallback, and the name when it comes.
  const fallback = selectionRules(["usb0"], ["eth0"], { connectMode: false });
  assert.deepEqual(newlyTaken(fallback, late, new Set(["eth0"])).map((n) => n.name), ["eth2", "usb0"]);
  // Patterns: the first match decides, explicit inclusions need no suitability.
  const patterns = selectionRules(["+tun1", "!usb*"], [], { connectMode: false });
  assert.deepEqual(newlyTaken(patterns, late, new Set(["eth0"])).map((n) => `${n.name}:${n.take}`), ["eth2:bring-up", "tun1:bring-up"]);
  // Once in use, never again.
  assert.deepEqual(newlyTaken(patterns, late, new Set(["eth0", "eth2", "tun1"])), []);
  assert.deepEqual(missingNames(named, new Set(["eth0"])), ["usb0", "eth2"]);
  assert.deepEqual(missingNames(patterns, new Set(["eth0"])), ["tun1"]);
});

test("InterfaceFollower: adopts each newcomer once, asks to bring up only what the rules bring up, browses on what is in use", async () => {
  const lines: string[] = [];
  const log = makeLogger("mandos-client", { level: "info", write: (l) => lines.push(l) });
  const asked: string[] = [];
  const rules = selectionRules(["eth0", "usb0", "none", "eth2"], ["eth0"], { connectMode: false });
  const follower = new InterfaceFollower(rules, ["eth0"], async (n) => {
    asked.push(n);
    if (n === "usb0") throw new Error("cannot bring up usb0: refused");
  }, log);
  const eth0 = iface("eth0");
  const first = follower.select([eth0, iface("wlan0")]);
  assert.deepEqual(first.chosen.map((i) => i.name), ["eth0"]);
  assert.deepEqual(first.missing, ["usb0", "eth2"]);
  const later = [eth0, iface("usb0"), iface("eth2"), iface("wlan0")];
  assert.deepEqual(follower.select(later).chosen.map((i) => i.name), ["eth0", "usb0", "eth2"]);
  assert.deepEqual(follower.select(later).missing, []);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(asked, ["usb0"], "eth2 is named after none: used as it is");
  assert.deepEqual(lines, [
    'mandos-client: using interface "eth2", which appeared after the start\n',
    'mandos-client: using interface "usb0", which appeared after the start\n',
    "mandos-client: warning: cannot bring up usb0: refused\n",
  ]);
});

test("--interface patterns on the command line: checked when parsed, read the same by the password agent", () => {
  assert.deepEqual(parseClientOptions(["-i", "!wlan*,+tun0", "--interface", "eth?"]).interfaces, ["!wlan*", "+tun0", "eth?"]);
  assert.throws(() => parseClientOptions(["-i", "eth*,none"]), { name: "Error", message: '--interface: "none" cannot be mixed with patterns' });
  assert.throws(() => parseClientOptions(["-i", "eth0,!"]), { message: "--interface: empty pattern" });
  assert.deepEqual(clientSelection(["--pubkey=/k", "-i", "eth0,none", "--interface=eth1", "--debug"]), {
    interfaces: ["eth0", "none", "eth1"],
    connect: null,
  });
  assert.deepEqual(clientSelection(["--connect", "[fe80::1]:2", "--help"]), { interfaces: [], connect: "[fe80::1]:2" }, "never exits");
  assert.throws(() => clientSelection(["--no-such-option"]), { message: /Unknown option '--no-such-option'/ });
});

test("--connect may be repeated (a split password); hooks and the agent see the first", () => {
  const o = parseClientOptions(["-c", "[fe80::1]:2", "--connect=10.0.0.1:3"]);
  assert.deepEqual(o.connect, [{ address: "fe80::1", port: 2 }, { address: "10.0.0.1", port: 3 }]);
  assert.equal(o.connectText, "[fe80::1]:2");
  assert.deepEqual(parseClientOptions([]).connect, []);
  assert.equal(clientSelection(["-c", "[fe80::1]:2", "-c", "[fe80::2]:2"]).connect, "[fe80::1]:2");
  assert.throws(() => parseClientOptions(["-c", "::1:1", "-c", "nope"]), { message: /--connect: expected ADDRESS:PORT/ });
});
