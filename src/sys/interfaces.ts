// Network interfaces as the kernel shows them in /sys/class/net (name,
// index, IFF_* flags, operational state) with their addresses, and Mandos's
// rule for which ones suit it. The one place that reads those files and the
// one interface lister, for the client and the Zeroconf code alike.
// Decisions are pure; reading is synchronous, as sysfs answers from memory
// and the Zeroconf code chooses interfaces inside synchronous steps.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { networkInterfaces, type NetworkInterfaceInfo } from "node:os";

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

/** An interface with its state and addresses: what the interface lister gives. */
export interface NetInterface {
  name: string;
  /** Kernel interface index; 0 if unknown (not in sysfs, no IPv6 address to tell). */
  index: number;
  /** IFF_* bits; 0 if unknown. */
  flags: number;
  /** RFC 2863 state from sysfs: "up", "down", "unknown", "lowerlayerdown", "dormant", … */
  operstate: string;
  /** Carrier present; null when the kernel cannot tell (interface down). */
  carrier: boolean | null;
  /** IPv6 addresses, without zone. */
  ipv6: string[];
  /** IPv4 addresses with their prefix, e.g. "10.0.0.1/24". */
  ipv4: string[];
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

/** Where the lister looks; tests give a directory of their own and a fixed address table. */
export interface InterfaceSources {
  /** Default /sys/class/net. */
  sysfs?: string;
  /** Addresses by interface name, as os.networkInterfaces() gives them (the default). */
  addresses?: NodeJS.Dict<NetworkInterfaceInfo[]>;
  /** udev's run-time directory; default /run/udev. */
  udevRun?: string;
}

/** name_assign_type NET_NAME_ENUM: the kernel's own name (eth0), which udev may still change. */
const NET_NAME_ENUM = "1";

/**
 * Is udev still to name this interface? While udevd runs (its control
 * socket exists), an interface with the kernel's own name is left alone
 * until udev has processed it (its /run/udev/data/n<ifindex> exists, or
 * udev's event queue, /run/udev/queue, has run empty): a
 * client started early at boot must not bring eth0 up just before udev
 * renames it to ens3, since Linux before 6.2 cannot rename an interface
 * that is up. Interfaces named by someone (veths, renamed ones) and hosts
 * without a running udevd are never held back.
 */
export function awaitingUdev(iface: { name: string; index: number }, sysfs = SYS_CLASS_NET, udevRun = "/run/udev"): boolean {
  if (iface.index <= 0 || !existsSync(`${udevRun}/control`)) return false;
  if (readInterfaceFile(iface.name, "name_assign_type", sysfs)?.trim() !== NET_NAME_ENUM) return false;
  // Processed (udev's database has it), or udev's event queue is empty
  // (rules that store nothing leave no database entry): not waited for.
  return !existsSync(`${udevRun}/data/n${iface.index}`) && existsSync(`${udevRun}/queue`);
}

/** Adds what sysfs tells beyond index and flags, and room for addresses. */
function withState(iface: SysInterface, sysfs: string): NetInterface {
  const operstate = readInterfaceFile(iface.name, "operstate", sysfs);
  const carrier = readInterfaceFile(iface.name, "carrier", sysfs);
  return {
    ...iface,
    operstate: (operstate ?? "unknown").trim(),
    carrier: carrier === null ? null : carrier.trim() === "1",
    ipv6: [],
    ipv4: [],
  };
}

function addAddresses(iface: NetInterface, addrs: readonly NetworkInterfaceInfo[]): void {
  for (const a of addrs) {
    if (a.family === "IPv6") {
      iface.ipv6.push(a.address.split("%")[0]!);
      if (iface.index === 0 && a.scopeid) iface.index = a.scopeid;
    } else if (a.family === "IPv4") {
      iface.ipv4.push(a.cidr ?? `${a.address}/32`);
    }
    if (iface.flags === 0 && a.internal) iface.flags = IFF.LOOPBACK | IFF.UP;
  }
}

/**
 * Every interface of this network namespace, in name order. sysfs gives
 * index, flags and state (and interfaces without addresses); Node's
 * os.networkInterfaces() gives addresses, and an index (the IPv6 scope id)
 * and loopback flags should sysfs be unreadable or another namespace's.
 * An interface udev has still to name is not listed yet (awaitingUdev).
 */
export function listInterfaces(from: InterfaceSources = {}): NetInterface[] {
  const sysfs = from.sysfs ?? SYS_CLASS_NET;
  const byName = new Map<string, NetInterface>();
  let fromSys: SysInterface[] = [];
  try {
    fromSys = listSysInterfaces(sysfs);
  } catch {
    // No (readable) sysfs: addresses alone must do.
  }
  const heldBack = new Set<string>();
  for (const i of fromSys) {
    if (awaitingUdev(i, sysfs, from.udevRun)) heldBack.add(i.name);
    else byName.set(i.name, withState(i, sysfs));
  }
  for (const [name, addrs] of Object.entries(from.addresses ?? networkInterfaces())) {
    if (heldBack.has(name)) continue;
    let iface = byName.get(name);
    if (!iface) {
      iface = { name, index: 0, flags: 0, operstate: "unknown", carrier: null, ipv6: [], ipv4: [] };
      byName.set(name, iface);
    }
    addAddresses(iface, addrs ?? []);
  }
  return [...byName.values()].sort((a, b) => compareNames(a.name, b.name));
}

/** One interface as listInterfaces gives it, or null if sysfs does not show it (any more). */
export function readInterface(name: string, from: InterfaceSources = {}): NetInterface | null {
  const sysfs = from.sysfs ?? SYS_CLASS_NET;
  const sys = readSysInterface(name, sysfs);
  if (sys === null) return null;
  const iface = withState(sys, sysfs);
  addAddresses(iface, (from.addresses ?? networkInterfaces())[name] ?? []);
  return iface;
}
