// Network interfaces as the kernel shows them in /sys/class/net: name,
// index and IFF_* flags, and Mandos's rule for which ones suit it. The one
// place that reads those files; the Zeroconf code and the client add what
// only they need (addresses; operstate, carrier, bringing up and down).
// Decisions are pure; reading is synchronous, as sysfs answers from memory
// and the Zeroconf code chooses interfaces inside synchronous steps.
import { readFileSync, readdirSync } from "node:fs";

export const SYS_CLASS_NET = "/sys/class/net";

/** Interface flag bits (netdevice(7), <linux/if.h>), as in /sys/class/net/X/flags. */
export const IFF = {
  UP: 0x1,
  BROADCAST: 0x2,
  DEBUG: 0x4,
  LOOPBACK: 0x8,
  POINTOPOINT: 0x10,
  NOTRAILERS: 0x20,
  RUNNING: 0x40,
  NOARP: 0x80,
  PROMISC: 0x100,
  ALLMULTI: 0x200,
  MASTER: 0x400,
  SLAVE: 0x800,
  MULTICAST: 0x1000,
  PORTSEL: 0x2000,
  AUTOMEDIA: 0x4000,
  DYNAMIC: 0x8000,
} as const;

/** What sysfs tells about every interface. */
export interface SysInterface {
  name: string;
  /** Kernel interface index (what Zeroconf reports); always > 0. */
  index: number;
  /** IFF_* bits; note sysfs never shows IFF_RUNNING. */
  flags: number;
}

/** Parse a sysfs flags file ("0x1003\n"). Throws on anything else. */
export function parseInterfaceFlags(text: string): number {
  const t = text.trim();
  if (!/^0x[0-9a-fA-F]{1,8}$/.test(t)) throw new Error(`bad interface flags ${JSON.stringify(t)}`);
  return Number.parseInt(t.slice(2), 16);
}

/** Names of the set IFF_* bits, for debug output. */
export function describeFlags(flags: number): string[] {
  return Object.entries(IFF)
    .filter(([, bit]) => (flags & bit) !== 0)
    .map(([name]) => name);
}

/**
 * The kernel's rule for interface names (dev_valid_name): 1–15 bytes, not
 * "." or "..", no "/", ":" or white space. Checked before a name is used in
 * a path or handed to `ip`.
 */
export function isValidInterfaceName(name: string): boolean {
  if (name === "" || name === "." || name === "..") return false;
  if (Buffer.byteLength(name) > 15) return false;
  return !/[/:\s]/.test(name);
}

/** Byte order, as Mandos's scandir(…, alphasort) in the C locale. */
export function compareNames(a: string, b: string): number {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return Buffer.compare(x, y);
}

export interface Verdict {
  suitable: boolean;
  /** One line for the debug log, e.g. "rejecting loopback interface". */
  reason: string;
}

/**
 * Mandos's automatic choice: not loopback; with --connect a point-to-point
 * interface is accepted as it is; otherwise it must be able to broadcast and
 * must use ARP (which rules out dummy and tunnel devices). Checked in this
 * order, as Mandos does (so with --connect a point-to-point NOARP tunnel is fine).
 */
export function interfaceVerdict(iface: { flags: number }, opts: { connectMode: boolean }): Verdict {
  const f = iface.flags;
  if (f & IFF.LOOPBACK) return { suitable: false, reason: "rejecting loopback interface" };
  if (opts.connectMode && f & IFF.POINTOPOINT) return { suitable: true, reason: "accepting point-to-point interface" };
  if (!(f & IFF.BROADCAST)) return { suitable: false, reason: "rejecting non-broadcast interface" };
  if (f & IFF.NOARP) return { suitable: false, reason: "rejecting non-ARP interface" };
  return { suitable: true, reason: "interface is good" };
}

export function isSuitable(iface: { flags: number }, opts: { connectMode: boolean }): boolean {
  return interfaceVerdict(iface, opts).suitable;
}

// ---------------------------------------------------------------- reading

/**
 * One file of an interface's sysfs directory, or null where the interface
 * (or the value) is not there; other errors are thrown.
 */
export function readInterfaceFile(name: string, file: string, sysfs: string = SYS_CLASS_NET): string | null {
  try {
    return readFileSync(`${sysfs}/${name}/${file}`, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EINVAL: e.g. "carrier" of an interface that is down.
    if (code === "ENOENT" || code === "ENODEV" || code === "EINVAL" || code === "ENOTDIR") return null;
    throw err;
  }
}

/** One interface's index and flags, or null if it does not exist (any more) or makes no sense. */
export function readSysInterface(name: string, sysfs: string = SYS_CLASS_NET): SysInterface | null {
  if (!isValidInterfaceName(name)) return null;
  const index = readInterfaceFile(name, "ifindex", sysfs);
  const flags = readInterfaceFile(name, "flags", sysfs);
  if (index === null || flags === null) return null;
  const idx = Number(index.trim());
  if (!Number.isInteger(idx) || idx <= 0) return null;
  let bits: number;
  try {
    bits = parseInterfaceFlags(flags);
  } catch {
    // A kernel printing something else: skip the interface rather than fail.
    return null;
  }
  return { name, index: idx, flags: bits };
}

/** Every interface in /sys/class/net (of this process's network namespace), in name order. */
export function listSysInterfaces(sysfs: string = SYS_CLASS_NET): SysInterface[] {
  const names = readdirSync(sysfs)
    .filter((n) => !n.startsWith("."))
    .sort(compareNames);
  return names.map((n) => readSysInterface(n, sysfs)).filter((i): i is SysInterface => i !== null);
}
