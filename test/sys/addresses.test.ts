// The one link-local check (sys/addresses.ts) and the places that used to
// have their own: every first group of fe80::/10 (fe80 to febf), with and
// without a zone, counts; the client's connection, Zeroconf's preference
// and its zones follow it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ipv4InSubnet, isLinkLocal, parseIp, withZone } from "../../src/sys/addresses.js";
import { describeServer } from "../../src/client/fetch.js";
import { sortResolved } from "../../src/zeroconf/browse-cache.js";

const hex = (n: number) => n.toString(16);
/** Every first group of fe80::/10, and the groups just outside it. */
const INSIDE = Array.from({ length: 0x40 }, (_, i) => hex(0xfe80 + i));
const OUTSIDE = ["fe7f", "fec0", "feff", "fe00", "ff02", "2001", "fd00", "fe8"];

test("isLinkLocal covers all of fe80::/10 (fe80..febf), with or without a zone, in any case", () => {
  assert.equal(INSIDE[0], "fe80");
  assert.equal(INSIDE.at(-1), "febf");
  for (const g of INSIDE) {
    for (const text of [`${g}::1`, `${g.toUpperCase()}::1`, `${g}::1%eth0`, `${g}::1%2`, `${g}:0:0:0:aede:48ff:fe71:f6f2`, `${g}::`]) {
      assert.equal(isLinkLocal(text), true, text);
    }
    assert.equal(isLinkLocal(parseIp(`${g}::9`)!), true, `${g}::9 parsed`);
  }
  for (const g of OUTSIDE) for (const text of [`${g}::1`, `${g}::1%eth0`]) assert.equal(isLinkLocal(text), false, text);
  assert.equal(isLinkLocal("169.254.0.1"), true);
  assert.equal(isLinkLocal("169.254.255.254"), true);
  for (const text of ["169.255.0.1", "10.0.0.1", "::ffff:169.254.1.1", "::1", "", "fe80", "fe80::1::2", "eth0%fe80::1", "example.org"]) {
    assert.equal(isLinkLocal(text), false, text);
  }
});

test("withZone adds the interface to IPv6 link-local addresses only", () => {
  for (const g of INSIDE) assert.equal(withZone(`${g}::1`, "eth0"), `${g}::1%eth0`);
  assert.equal(withZone("fe9a::1%eth1", "eth0"), "fe9a::1%eth1", "a zone already there stays");
  for (const a of ["2001:db8::1", "fec0::1", "169.254.1.2", "192.0.2.1"]) assert.equal(withZone(a, "eth0"), a);
});

test("the client connects to any fe80::/10 server address through its interface", () => {
  for (const g of INSIDE) {
    assert.equal(describeServer({ address: `${g}::1`, port: 4711, interfaceName: "eth0" }), `[${g}::1%eth0]:4711`);
  }
  assert.equal(describeServer({ address: "fec0::1", port: 4711, interfaceName: "eth0" }), "[fec0::1]:4711");
  assert.equal(describeServer({ address: "febf::1", port: 4711 }), "[febf::1]:4711", "no interface, no zone");
  assert.equal(describeServer({ address: "169.254.1.2", port: 4711, interfaceName: "eth0" }), "169.254.1.2:4711");
});

test("Zeroconf prefers every fe80::/10 address over other IPv6 and IPv4 ones", () => {
  const r = (address: string, protocol: "ipv4" | "ipv6") => ({ name: "Mandos", host: "h.local", port: 1, address, protocol });
  const sorted = sortResolved([r("192.0.2.1", "ipv4"), r("2001:db8::1", "ipv6"), r("febf::1", "ipv6"), r("fec0::1", "ipv6"), r("fe9a::1", "ipv6")]);
  assert.deepEqual(sorted.map((x) => x.address), ["febf::1", "fe9a::1", "2001:db8::1", "fec0::1", "192.0.2.1"]);
});

test("ipv4InSubnet", () => {
  assert.equal(ipv4InSubnet("169.254.77.2", "169.254.77.1/24"), true);
  assert.equal(ipv4InSubnet("169.254.78.2", "169.254.77.1/24"), false);
  assert.equal(ipv4InSubnet("10.1.2.3", "0.0.0.0/0"), true);
  assert.equal(ipv4InSubnet("10.0.0.1", "10.0.0.1"), true, "no prefix: one host");
  assert.equal(ipv4InSubnet("fe80::1", "10.0.0.0/8"), false);
  assert.equal(ipv4InSubnet("10.0.0.1", "garbage"), false);
  assert.equal(ipv4InSubnet("10.0.0.1", "10.0.0.0/33"), false);
});
