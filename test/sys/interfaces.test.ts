// The one interface lister (sys/interfaces.ts), used by the client and the
// Zeroconf code: sysfs (a directory laid out like /sys/class/net) merged
// with Node's address table. In a real namespace it is also run by
// test/client-network/interfaces.test.ts and the Zeroconf netns tests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NetworkInterfaceInfo } from "node:os";
import { IFF, awaitingUdev, listInterfaces, readInterface } from "../../src/sys/interfaces.js";
import { tempDir } from "../helpers/index.js";

function fakeSysfs(t: { after(fn: () => void): void }, interfaces: Record<string, Record<string, string>>): string {
  const dir = tempDir("mandos-sysfs-");
  t.after(() => dir.cleanup());
  for (const [name, files] of Object.entries(interfaces)) {
    mkdirSync(join(dir.path, name));
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir.path, name, file), `${text}\n`);
  }
  return dir.path;
}

const v6 = (address: string, scopeid: number, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask: "ffff:ffff:ffff:ffff::",
  family: "IPv6",
  mac: "00:00:00:00:00:00",
  internal,
  cidr: `${address}/64`,
  scopeid,
});
const v4 = (address: string, cidr: string | null, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask: "255.255.0.0",
  family: "IPv4",
  mac: "00:00:00:00:00:00",
  internal,
  cidr,
});

test("listInterfaces: sysfs's interfaces in name order, with state and addresses", (t) => {
  const sysfs = fakeSysfs(t, {
    lo: { ifindex: "1", flags: "0x9", operstate: "unknown" },
    "eth-b": { ifindex: "3", flags: "0x1003", operstate: "up", carrier: "1" },
    eth0: { ifindex: "2", flags: "0x1002", operstate: "down" },
    broken: { ifindex: "x", flags: "0x1003" },
  });
  const addresses = {
    lo: [v6("::1", 0, true), v4("127.0.0.1", "127.0.0.1/8", true)],
    "eth-b": [v6("fe80::b%eth-b", 3), v6("2001:db8::b", 0), v4("169.254.3.3", "169.254.3.3/16"), v4("10.0.0.1", null)],
  };
  assert.deepEqual(listInterfaces({ sysfs, addresses }), [
    { name: "eth-b", index: 3, flags: IFF.UP | IFF.BROADCAST | IFF.MULTICAST, operstate: "up", carrier: true, ipv6: ["fe80::b", "2001:db8::b"], ipv4: ["169.254.3.3/16", "10.0.0.1/32"] },
    { name: "eth0", index: 2, flags: IFF.BROADCAST | IFF.MULTICAST, operstate: "down", carrier: null, ipv6: [], ipv4: [] },
    { name: "lo", index: 1, flags: IFF.UP | IFF.LOOPBACK, operstate: "unknown", carrier: null, ipv6: ["::1"], ipv4: ["127.0.0.1/8"] },
  ]);
  assert.deepEqual(readInterface("eth-b", { sysfs, addresses }), listInterfaces({ sysfs, addresses })[0]);
  assert.equal(readInterface("gone0", { sysfs, addresses }), null);
  assert.equal(readInterface("broken", { sysfs, addresses }), null);
});

test("listInterfaces: without a readable sysfs, addresses alone give names, indexes and loopback", () => {
  const addresses = {
    veth1: [v6("fe80::1%veth1", 7), v4("169.254.1.1", "169.254.1.1/16")],
    lo: [v4("127.0.0.1", "127.0.0.1/8", true)],
    v4only: [v4("10.1.1.1", "10.1.1.1/8")],
  };
  assert.deepEqual(listInterfaces({ sysfs: "/nonexistent/sys/class/net", addresses }), [
    { name: "lo", index: 0, flags: IFF.UP | IFF.LOOPBACK, operstate: "unknown", carrier: null, ipv6: [], ipv4: ["127.0.0.1/8"] },
    { name: "v4only", index: 0, flags: 0, operstate: "unknown", carrier: null, ipv6: [], ipv4: ["10.1.1.1/8"] },
    { name: "veth1", index: 7, flags: 0, operstate: "unknown", carrier: null, ipv6: ["fe80::1"], ipv4: ["169.254.1.1/16"] },
  ]);
});

test("listInterfaces on this machine agrees with os.networkInterfaces()", async () => {
  const { networkInterfaces } = await import("node:os");
  const listed = listInterfaces();
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const i = listed.find((x) => x.name === name);
    assert.ok(i && i.index > 0, name);
    assert.equal(i.ipv6.length + i.ipv4.length, addrs?.length ?? 0, name);
  }
  assert.ok(listed.some((i) => i.name === "lo" && (i.flags & IFF.LOOPBACK) !== 0));
});

test("an interface with the kernel's own name is not listed while a running udev has still to name it", (t) => {
  const sysfs = fakeSysfs(t, {
    eth0: { ifindex: "2", flags: "0x1002", operstate: "down", name_assign_type: "1" }, // NET_NAME_ENUM
    vethB: { ifindex: "3", flags: "0x1002", operstate: "down", name_assign_type: "3" }, // NET_NAME_USER
    ens4: { ifindex: "4", flags: "0x1002", operstate: "down", name_assign_type: "4" }, // NET_NAME_RENAMED
  });
  const udev = tempDir("mandos-udev-");
  t.after(() => udev.cleanup());
  const names = () => listInterfaces({ sysfs, addresses: {}, udevRun: udev.path }).map((i) => i.name);
  // No udevd running (no control socket): nothing is held back.
  assert.deepEqual(names(), ["ens4", "eth0", "vethB"]);
  writeFileSync(join(udev.path, "control"), "");
  // udevd runs, its queue is empty: whatever it was to do with eth0 is done.
  assert.deepEqual(names(), ["ens4", "eth0", "vethB"]);
  writeFileSync(join(udev.path, "queue"), "");
  assert.deepEqual(names(), ["ens4", "vethB"]);
  assert.equal(awaitingUdev({ name: "eth0", index: 2 }, sysfs, udev.path), true);
  // udev has processed it (and kept or changed its name): listed.
  mkdirSync(join(udev.path, "data"));
  writeFileSync(join(udev.path, "data", "n2"), "");
  assert.deepEqual(names(), ["ens4", "eth0", "vethB"]);
  assert.equal(awaitingUdev({ name: "eth0", index: 2 }, sysfs, udev.path), false);
});
