// Pure naming and interface rules of the Zeroconf module. The rename rule
// is also checked against avahi-daemon itself in avahi.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  alternativeHostName,
  alternativeServiceName,
  hostLabelFrom,
  instanceNameOf,
  truncateUtf8,
} from "../../src/zeroconf/names.js";
import { chooseInterfaces, suitableForAnnouncing, suitableForBrowsing } from "../../src/zeroconf/interfaces.js";
import { IFF } from "../../src/sys/interfaces.js";

test("alternative service names follow avahi's rule", () => {
  assert.equal(alternativeServiceName("Mandos"), "Mandos #2");
  assert.equal(alternativeServiceName("Mandos #2"), "Mandos #3");
  assert.equal(alternativeServiceName("Mandos #9"), "Mandos #10");
  assert.equal(alternativeServiceName("Mandos #0"), "Mandos #0 #2");
  assert.equal(alternativeServiceName("Mandos #02"), "Mandos #02 #2");
  assert.equal(alternativeServiceName("Mandos #"), "Mandos # #2");
  assert.equal(alternativeServiceName("Mandos #2x"), "Mandos #2x #2");
  assert.equal(alternativeServiceName("a #1 #5"), "a #1 #6");
  // Fits one DNS label (63 bytes), cutting the base, never a character.
  const long = "x".repeat(63);
  assert.equal(alternativeServiceName(long), "x".repeat(60) + " #2");
  assert.equal(alternativeServiceName("x".repeat(59) + " #99"), "x".repeat(58) + " #100");
  const utf = "å".repeat(31); // 62 bytes
  const alt = alternativeServiceName(utf);
  assert.ok(Buffer.byteLength(alt) <= 63);
  assert.equal(alt, "å".repeat(30) + " #2");
});

test("alternative host names follow avahi's rule", () => {
  assert.equal(alternativeHostName("server"), "server-2");
  assert.equal(alternativeHostName("server-2"), "server-3");
  assert.equal(alternativeHostName("server-09"), "server-09-2");
  assert.equal(alternativeHostName("my-server"), "my-server-2");
  assert.equal(alternativeHostName("h".repeat(63)), "h".repeat(61) + "-2");
});

test("instance names are taken from service FQDNs by suffix", () => {
  assert.equal(instanceNameOf("Mandos._mandos._tcp.local", "_mandos._tcp"), "Mandos");
  assert.equal(instanceNameOf("Mandos #2._MANDOS._tcp.local.", "_mandos._tcp"), "Mandos #2");
  assert.equal(instanceNameOf("a.b._mandos._tcp.local", "_mandos._tcp"), "a.b");
  assert.equal(instanceNameOf("._mandos._tcp.local", "_mandos._tcp"), null);
  assert.equal(instanceNameOf("_mandos._tcp.local", "_mandos._tcp"), null);
  assert.equal(instanceNameOf("x._http._tcp.local", "_mandos._tcp"), null);
  assert.equal(instanceNameOf("y".repeat(64) + "._mandos._tcp.local", "_mandos._tcp"), null);
});

test("UTF-8 truncation and host labels", () => {
  assert.equal(truncateUtf8("abcé", 4), "abc");
  assert.equal(truncateUtf8("abcé", 5), "abcé");
  assert.equal(hostLabelFrom("server.example.org"), "server");
  assert.equal(hostLabelFrom("localhost"), "mandos");
  assert.equal(hostLabelFrom(""), "mandos");
});

test("interface choice follows mandos-client's rules", () => {
  const ether = IFF.UP | IFF.BROADCAST | IFF.MULTICAST;
  assert.equal(suitableForBrowsing(ether), true);
  assert.equal(suitableForBrowsing(ether & ~IFF.UP), true, "down interfaces are still candidates");
  assert.equal(suitableForBrowsing(IFF.UP | IFF.LOOPBACK), false);
  assert.equal(suitableForBrowsing(IFF.UP | IFF.POINTOPOINT | IFF.MULTICAST), false);
  assert.equal(suitableForBrowsing(ether | IFF.NOARP), false);
  assert.equal(suitableForBrowsing(IFF.UP | IFF.MULTICAST), false, "needs broadcast");
  assert.equal(suitableForAnnouncing(ether), true);
  assert.equal(suitableForAnnouncing(IFF.UP | IFF.LOOPBACK | IFF.MULTICAST), false);
  const mk = (name: string, index: number, flags: number) => ({ name, index, flags });
  const all = [mk("lo", 1, IFF.UP | IFF.LOOPBACK), mk("eth0", 2, ether), mk("tun0", 3, IFF.UP | IFF.POINTOPOINT), mk("eth1", 4, ether)];
  assert.deepEqual(chooseInterfaces(all, undefined, suitableForBrowsing).chosen.map((i) => i.name), ["eth0", "eth1"]);
  assert.deepEqual(chooseInterfaces(all, [], suitableForBrowsing).chosen.map((i) => i.name), ["eth0", "eth1"]);
  const named = chooseInterfaces(all, ["tun0", "eth9", "eth1"], suitableForBrowsing);
  assert.deepEqual(named.chosen.map((i) => i.name), ["tun0", "eth1"], "named interfaces are used whatever their flags");
  assert.deepEqual(named.missing, ["eth9"]);
});
