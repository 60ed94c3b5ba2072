// Network interfaces as the Zeroconf code needs them: name, index, flags and
// addresses. Reading is an edge effect (listInterfaces); the choices are pure.
import { networkInterfaces } from "node:os";
import { readdirSync, readFileSync } from "node:fs";
import { isIPv4 } from "node:net";

// <linux/if.h> flag bits, as /sys/class/net/*/flags shows them.
export const IFF_UP = 0x1;
export const IFF_BROADCAST = 0x2;
export const IFF_LOOPBACK = 0x8;
export const IFF_POINTOPOINT = 0x10;
export const IFF_RUNNING = 0x40;
export const IFF_NOARP = 0x80;
export const IFF_MULTICAST = 0x1000;

export interface NetInterface {
  name: string;
  /** Kernel interface index; 0 if unknown. */
  index: number;
  /** IFF_* flags; 0 if unknown. */
  flags: number;
  /** IPv6 addresses without zone. */
  ipv6: string[];
  /** IPv4 addresses with their prefix, e.g. "10.0.0.1/24". */
  ipv4: string[];
}

/**
 * Interfaces of this network namespace. /sys/class/net gives flags and
 * indexes (and interfaces without addresses); os.networkInterfaces() gives
 * addresses, and an index (IPv6 scopeid) should /sys belong to another
 * namespace.
 */
export function listInterfaces(sysNet = "/sys/class/net"): NetInterface[] {
  const byName = new Map<string, NetInterface>();
  const get = (name: string) => {
    let i = byName.get(name);
    if (!i) byName.set(name, (i = { name, index: 0, flags: 0, ipv6: [], ipv4: [] }));
    return i;
  };
  let sysNames: string[] = [];
  try {
    sysNames = readdirSync(sysNet);
  } catch {
    // No sysfs: addresses alone must do.
  }
  for (const name of sysNames) {
    const index = readNumber(`${sysNet}/${name}/ifindex`);
    const flags = readNumber(`${sysNet}/${name}/flags`);
    if (index === null) continue;
    const i = get(name);
    i.index = index;
    i.flags = flags ?? 0;
  }
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const i = get(name);
    for (const a of addrs ?? []) {
      if (a.family === "IPv6") {
        i.ipv6.push(a.address.split("%")[0]!);
        if (i.index === 0 && a.scopeid) i.index = a.scopeid;
      } else if (a.family === "IPv4") {
        i.ipv4.push(a.cidr ?? `${a.address}/32`);
      }
      if (i.flags === 0 && a.internal) i.flags = IFF_LOOPBACK | IFF_UP;
    }
  }
  return [...byName.values()].sort((a, b) => a.index - b.index || a.name.localeCompare(b.name));
}

function readNumber(path: string): number | null {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(n) ? n : null;
  } catch {
    return null;
  }
}

/**
 * mandos-client's automatic choice: not loopback, not point-to-point,
 * broadcast-capable, and ARP in use (see mandos-client(8mandos)).
 */
export function suitableForBrowsing(flags: number): boolean {
  return (
    (flags & IFF_LOOPBACK) === 0 &&
    (flags & IFF_POINTOPOINT) === 0 &&
    (flags & IFF_BROADCAST) !== 0 &&
    (flags & IFF_NOARP) === 0
  );
}

/** Where a responder announces by default: up, multicast, not loopback. */
export function suitableForAnnouncing(flags: number): boolean {
  return (flags & IFF_UP) !== 0 && (flags & IFF_MULTICAST) !== 0 && (flags & IFF_LOOPBACK) === 0;
}

/**
 * The interfaces to use: the named ones that exist (in the given order), or
 * every suitable one. Also the named ones that do not exist (yet).
 */
export function chooseInterfaces(
  all: NetInterface[],
  wanted: string[] | undefined,
  suitable: (flags: number) => boolean,
): { chosen: NetInterface[]; missing: string[] } {
  const names = (wanted ?? []).filter((n) => n !== "");
  if (names.length === 0) return { chosen: all.filter((i) => i.index > 0 && suitable(i.flags)), missing: [] };
  const chosen: NetInterface[] = [];
  const missing: string[] = [];
  for (const name of new Set(names)) {
    const i = all.find((x) => x.name === name && x.index > 0);
    if (i) chosen.push(i);
    else missing.push(name);
  }
  return { chosen, missing };
}

/** IPv6 link-local (fe80::/10)? Accepts an optional %zone. */
export function isIPv6LinkLocal(address: string): boolean {
  const first = address.split("%")[0]!.split(":")[0]!;
  if (!/^[0-9a-fA-F]{1,4}$/.test(first)) return false;
  return (parseInt(first, 16) & 0xffc0) === 0xfe80;
}

/** Is an IPv4 address inside "a.b.c.d/len"? */
export function ipv4InSubnet(address: string, cidr: string): boolean {
  const [net, lenText] = cidr.split("/");
  const len = Number(lenText ?? "32");
  if (!net || !isIPv4(net) || !isIPv4(address) || !Number.isInteger(len) || len < 0 || len > 32) return false;
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((ipv4ToNumber(address) & mask) >>> 0) === ((ipv4ToNumber(net) & mask) >>> 0);
}

function ipv4ToNumber(a: string): number {
  return a.split(".").reduce((n, part) => ((n << 8) | Number(part)) >>> 0, 0);
}

/** An address as a peer must use it on an interface: zone for IPv6 link-local. */
export function withZone(address: string, interfaceName: string): string {
  return isIPv6LinkLocal(address) && !address.includes("%") ? `${address}%${interfaceName}` : address;
}
