// Network interfaces as the Zeroconf code needs them: name, index, flags and
// addresses. Reading is an edge effect (listInterfaces); the choices are pure.
// Index and flags come from sys/interfaces.ts, addresses from Node.
import { networkInterfaces } from "node:os";
import { IFF, SYS_CLASS_NET, isSuitable, listSysInterfaces, type SysInterface } from "../sys/interfaces.js";
import { errorMessage, type Logger } from "../cli/log.js";

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
export function listInterfaces(sysNet = SYS_CLASS_NET): NetInterface[] {
  const byName = new Map<string, NetInterface>();
  const get = (name: string) => {
    let i = byName.get(name);
    if (!i) byName.set(name, (i = { name, index: 0, flags: 0, ipv6: [], ipv4: [] }));
    return i;
  };
  let fromSys: SysInterface[] = [];
  try {
    fromSys = listSysInterfaces(sysNet);
  } catch {
    // No (readable) sysfs: addresses alone must do.
  }
  for (const { name, index, flags } of fromSys) {
    const i = get(name);
    i.index = index;
    i.flags = flags;
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
      if (i.flags === 0 && a.internal) i.flags = IFF.LOOPBACK | IFF.UP;
    }
  }
  return [...byName.values()].sort((a, b) => a.index - b.index || a.name.localeCompare(b.name));
}

/** What one reconciling round sees: every interface, and those to use. */
export interface InterfaceSurvey {
  all: NetInterface[];
  chosen: NetInterface[];
  missing: string[];
}

/**
 * One reconciling round's look at the interfaces: list them and choose
 * (chooseInterfaces), warning once about each named interface that is
 * missing, until it appears; `warned` remembers which (the caller keeps it
 * from round to round). Null, after a warning, if they cannot be listed.
 */
export function surveyInterfaces(
  wanted: string[] | undefined,
  suitable: (flags: number) => boolean,
  warned: Set<string>,
  log: Logger,
  meanwhile: string,
): InterfaceSurvey | null {
  let all: NetInterface[];
  try {
    all = listInterfaces();
  } catch (err) {
    log.warning(`Zeroconf: cannot list network interfaces: ${errorMessage(err)}`);
    return null;
  }
  const { chosen, missing } = chooseInterfaces(all, wanted, suitable);
  for (const m of missing) {
    if (!warned.has(m)) log.warning(`Zeroconf: no interface "${m}" (yet); ${meanwhile}`);
    warned.add(m);
  }
  for (const iface of chosen) warned.delete(iface.name);
  return { all, chosen, missing };
}

/**
 * mandos-client's automatic choice (Mandos's rule, without --connect), and
 * not point-to-point either: browsing has always left those out, even one
 * that claims broadcast, which the rule alone would take.
 */
export function suitableForBrowsing(flags: number): boolean {
  return isSuitable({ flags }, { connectMode: false }) && (flags & IFF.POINTOPOINT) === 0;
}

/** Where a responder announces by default: up, multicast, not loopback. */
export function suitableForAnnouncing(flags: number): boolean {
  return (flags & IFF.UP) !== 0 && (flags & IFF.MULTICAST) !== 0 && (flags & IFF.LOOPBACK) === 0;
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
