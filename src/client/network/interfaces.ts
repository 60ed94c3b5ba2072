// Network interfaces for the client: whether they run, and the privileged
// steps of bringing them up and down again (which ones: selection.ts).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NetworkError, runIp, type IpOptions } from "./ip.js";
import {
  IFF,
  SYS_CLASS_NET,
  isValidInterfaceName,
  listSysInterfaces,
  readInterface,
  type NetInterface,
} from "../../sys/interfaces.js";

export function isUp(iface: { flags: number }): boolean {
  return (iface.flags & IFF.UP) !== 0;
}

/**
 * What the kernel reports as IFF_RUNNING (up and operationally up or
 * unknown). sysfs's flags leave that bit out, so derive it from operstate.
 */
export function isRunning(iface: Pick<NetInterface, "flags" | "operstate">): boolean {
  return isUp(iface) && (iface.operstate === "up" || iface.operstate === "unknown");
}

// ---------------------------------------------------------------- effects

/**
 * The name of the interface with this index (Zeroconf reports indexes, but
 * `net.connect` needs "fe80::…%NAME"); null if there is none.
 */
export async function interfaceNameForIndex(index: number, sysfs: string = SYS_CLASS_NET): Promise<string | null> {
  if (!Number.isInteger(index) || index <= 0) return null;
  for (const iface of listSysInterfaces(sysfs)) {
    if (iface.index === index) return iface.name;
  }
  return null;
}

export interface EffectOptions extends IpOptions {
  /** Where interfaces are looked up; default /sys/class/net. */
  sysfs?: string;
  /** Per-interface IPv6 settings; default /proc/sys/net/ipv6/conf. */
  ipv6Conf?: string;
}

const IPV6_CONF = "/proc/sys/net/ipv6/conf";

/**
 * No duplicate address detection on an interface about to be brought up, so
 * that its new link-local address is usable at once. Optimistic DAD (RFC
 * 4429), tried first, is not enough: Linux sends no neighbour solicitation
 * from an optimistic address, so the first TCP connection to a server waits
 * for DAD to end (measured in network namespaces: 1.0 s against 25 ms), and
 * in the boot VM the server's answer to the first mDNS query went unseen in
 * both boots with it and was used in the boot without it (found 1.1 s after
 * browsing began, against 1.7-1.9 s). What is given up: noticing a duplicate
 * of any address added while the client holds the interface up: its
 * link-local one (for the kernel's EUI-64 addresses that takes a duplicate
 * MAC address), and any a router advertisement or a network hook adds. An
 * administrator's conf/all/accept_dad of 1 or more still wins (the kernel
 * skips DAD only when both are 0). The old value is kept, to be put back
 * when the interface is taken down again; a refusal just leaves DAD as it
 * was.
 */
function skipDad(name: string, dir: string): void {
  const path = join(dir, name, "accept_dad");
  try {
    const value = readFileSync(path, "latin1").trim();
    if (value !== "0") {
      writeFileSync(path, "0");
      dadBefore.set(name, { path, value });
    }
  } catch {
    // no IPv6 on it, or not ours to change: DAD as usual then
  }
}

/** accept_dad as it was before bringUp turned DAD off, by interface, until bringDown restores it. */
const dadBefore = new Map<string, { path: string; value: string }>();

function restoreDad(name: string): void {
  const saved = dadBefore.get(name);
  if (!saved) return;
  dadBefore.delete(name);
  try {
    writeFileSync(saved.path, saved.value);
  } catch {
    // the interface is gone, and its settings with it
  }
}

/**
 * Refuse anything but an existing interface from the selected set: these
 * functions may run in a privileged supervisor on an unprivileged worker's
 * request. Returns the interface's current state.
 */
export async function checkInterface(
  name: string,
  allowed: Iterable<string>,
  what: string,
  sysfs: string = SYS_CLASS_NET,
): Promise<NetInterface> {
  if (typeof name !== "string" || !isValidInterfaceName(name)) {
    throw new NetworkError(`${what} ${JSON.stringify(String(name))}: not a valid interface name`);
  }
  if (!new Set(allowed).has(name)) throw new NetworkError(`${what} ${name}: not one of the interfaces in use`);
  const iface = readInterface(name, { sysfs });
  if (iface === null) throw new NetworkError(`${what} ${name}: no such interface`);
  return iface;
}

/** Set IFF_UP unless already set. "already-up" means the caller must not take it down later. */
export async function bringUp(
  name: string,
  allowed: Iterable<string>,
  opts: EffectOptions = {},
): Promise<"brought-up" | "already-up"> {
  const iface = await checkInterface(name, allowed, "cannot bring up", opts.sysfs);
  if (isUp(iface)) return "already-up";
  skipDad(name, opts.ipv6Conf ?? IPV6_CONF);
  try {
    await runIp(["link", "set", "dev", name, "up"], `cannot bring up ${name}`, opts);
  } catch (err) {
    restoreDad(name);
    throw err;
  }
  return "brought-up";
}

/** Clear IFF_UP unless already clear. */
export async function bringDown(
  name: string,
  allowed: Iterable<string>,
  opts: EffectOptions = {},
): Promise<"taken-down" | "already-down"> {
  const iface = await checkInterface(name, allowed, "cannot take down", opts.sysfs);
  if (!isUp(iface)) {
    restoreDad(name);
    return "already-down";
  }
  try {
    await runIp(["link", "set", "dev", name, "down"], `cannot take down ${name}`, opts);
  } finally {
    restoreDad(name);
  }
  return "taken-down";
}

export interface WaitDeps {
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  read?: (name: string) => Promise<NetInterface | null>;
  /** Poll interval; Mandos checks every 250 ms. */
  intervalMs?: number;
  /** Stop waiting early (e.g. on SIGTERM). */
  signal?: AbortSignal;
}

export interface WaitResult {
  running: string[];
  notRunning: string[];
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Poll until every named interface is running or `delayMs` has passed
 * (--delay). Unlike Mandos, which waits up to --delay for each interface in
 * turn, all are waited for together, so the worst case is one delay.
 */
export async function waitRunning(names: readonly string[], delayMs: number, deps: WaitDeps = {}): Promise<WaitResult> {
  const now = deps.now ?? (() => performance.now());
  const sleep = deps.sleep ?? realSleep;
  const read = deps.read ?? (async (n: string) => readInterface(n));
  const interval = deps.intervalMs ?? 250;
  const deadline = now() + Math.max(0, delayMs);
  const pending = new Set(names);
  const running: string[] = [];
  for (;;) {
    for (const name of [...pending]) {
      const iface = await read(name);
      if (iface !== null && isRunning(iface)) {
        pending.delete(name);
        running.push(name);
      }
    }
    const left = deadline - now();
    if (pending.size === 0 || left <= 0 || deps.signal?.aborted) break;
    await sleep(Math.min(interval, left));
    if (deps.signal?.aborted) break;
  }
  const order = (list: Iterable<string>) => names.filter((n) => [...list].includes(n));
  return { running: order(running), notRunning: order(pending) };
}
