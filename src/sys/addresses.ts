// IP addresses as numbers: parsing (IPv4, IPv6, IPv6 with an embedded IPv4
// tail), prefix matching and the few address classes that matter here. The
// one definition of link-local, for the client's routes, its connections,
// Zeroconf and the server's listening socket. Pure.
import { isIP } from "node:net";

export interface IpAddress {
  family: 4 | 6;
  /** The address as an unsigned integer of 32 or 128 bits. */
  value: bigint;
}

export function bitsOf(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

function parseV4(text: string): bigint | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    v = (v << 8n) | BigInt(Number(p));
  }
  return v;
}

function parseV6(text: string): bigint | null {
  let s = text;
  // An IPv4 dotted tail ("::ffff:192.0.2.1") stands for the last two groups.
  const lastColon = s.lastIndexOf(":");
  const dotted = s.slice(lastColon + 1);
  if (dotted.includes(".")) {
    const v4 = parseV4(dotted);
    if (v4 === null) return null;
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  for (const g of [...head, ...rest]) if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
  const explicit = head.length + rest.length;
  if (halves.length === 2 ? explicit > 7 : explicit !== 8) return null;
  const zeros = Array<string>(8 - explicit).fill("0");
  return [...head, ...zeros, ...rest].reduce((acc, g) => (acc << 16n) | BigInt(`0x${g}`), 0n);
}

/** Parse a plain address (no zone "%eth0", no prefix "/64"); null if it is not one. */
export function parseIp(text: string): IpAddress | null {
  if (typeof text !== "string") return null;
  const family = isIP(text);
  if (family === 4) {
    const v = parseV4(text);
    return v === null ? null : { family: 4, value: v };
  }
  if (family === 6 && !text.includes("%")) {
    const v = parseV6(text);
    return v === null ? null : { family: 6, value: v };
  }
  return null;
}

export interface Prefix {
  family: 4 | 6;
  value: bigint;
  length: number;
}

/** "2001:db8::/32", "192.0.2.7" (a host), "default" (needs the family). */
export function parsePrefix(text: string, family: 4 | 6): Prefix | null {
  if (text === "default") return { family, value: 0n, length: 0 };
  const slash = text.indexOf("/");
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (addr === null || addr.family !== family) return null;
  const bits = bitsOf(family);
  let length = bits;
  if (slash >= 0) {
    const l = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l) || Number(l) > bits) return null;
    length = Number(l);
  }
  return { family, value: addr.value, length };
}

export function prefixContains(prefix: Prefix, addr: IpAddress): boolean {
  if (prefix.family !== addr.family) return false;
  const shift = BigInt(bitsOf(addr.family) - prefix.length);
  return prefix.value >> shift === addr.value >> shift;
}

// The special ranges as numbers, not parsed from text: parsing IPv6 text
// here, at load time, would make every program importing this module
// compile Node's IPv6 regular expression (5-10 ms) before it needs it.
const prefix = (family: 4 | 6, value: bigint, length: number): Prefix => ({ family, value, length });
const LINK_LOCAL = [prefix(6, 0xfe80n << 112n, 10), prefix(4, 0xa9fe0000n, 16)]; // fe80::/10, 169.254.0.0/16
const LOOPBACK = [prefix(6, 1n, 128), prefix(4, 0x7f000000n, 8)]; // ::1/128, 127.0.0.0/8
const MULTICAST = [prefix(6, 0xffn << 120n, 8), prefix(4, 0xe0000000n, 4)]; // ff00::/8, 224.0.0.0/4

/**
 * Link-local: IPv6 fe80::/10 or IPv4 169.254.0.0/16. Text may carry a zone
 * ("fe80::1%eth0"); text that is not an address is not link-local.
 */
export function isLinkLocal(address: IpAddress | string): boolean {
  const addr = typeof address === "string" ? parseIp(address.replace(/%.*$/s, "")) : address;
  return addr !== null && LINK_LOCAL.some((p) => prefixContains(p, addr));
}

/**
 * An address as a peer must use it on an interface: an IPv6 link-local
 * address gets the interface as its zone (a name: net.connect rejects an
 * index); any other address, or one with a zone already, stays as it is.
 */
export function withZone(address: string, interfaceName: string): string {
  const needsZone = !address.includes("%") && isIP(address) === 6 && isLinkLocal(address);
  return needsZone ? `${address}%${interfaceName}` : address;
}

/** Is an IPv4 address inside "a.b.c.d/len" (an interface's address with its prefix)? */
export function ipv4InSubnet(address: string, cidr: string): boolean {
  const prefix = parsePrefix(cidr, 4);
  const addr = parseIp(address);
  return prefix !== null && addr !== null && prefixContains(prefix, addr);
}

/**
 * An address a host route may sensibly be added for: not link-local (those
 * need a zone, not a route), loopback, multicast or unspecified.
 */
export function isRoutableUnicast(addr: IpAddress): boolean {
  if (addr.value === 0n) return false;
  return ![...LINK_LOCAL, ...LOOPBACK, ...MULTICAST].some((p) => prefixContains(p, addr));
}

/** Canonical text of an address as `ip` prints it (for comparing and for messages). */
export function formatIp(addr: IpAddress): string {
  if (addr.family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => ((addr.value >> s) & 0xffn).toString()).join(".");
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((addr.value >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952: compress the longest run (≥ 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}
