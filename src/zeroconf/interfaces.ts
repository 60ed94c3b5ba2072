// Which network interfaces the Zeroconf code uses: the choice is pure; the
// list comes from sys/interfaces.ts, through the caller.
import { IFF, isSuitable, type NetInterface } from "../sys/interfaces.js";
import { errorMessage, type Logger } from "../cli/log.js";

/** What one reconciling round sees: every interface, and those to use. */
export interface InterfaceSurvey {
  all: NetInterface[];
  chosen: NetInterface[];
  missing: string[];
}

/** The interfaces one survey takes, and those it expects by name that are not there (yet). */
export type InterfaceChoice = (all: NetInterface[]) => { chosen: NetInterface[]; missing: string[] };

/**
 * One reconciling round's look at the interfaces: list them and choose,
 * warning once about each named interface that is missing, until it
 * appears; `warned` remembers which (the caller keeps it from round to
 * round). Null, after a warning, if they cannot be listed.
 */
export function surveyInterfaces(
  list: () => NetInterface[],
  choose: InterfaceChoice,
  warned: Set<string>,
  log: Logger,
  meanwhile: string,
): InterfaceSurvey | null {
  let all: NetInterface[];
  try {
    all = list();
  } catch (err) {
    log.warning(`Zeroconf: cannot list network interfaces: ${errorMessage(err)}`);
    return null;
  }
  const { chosen, missing } = choose(all);
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
export function chooseInterfaces<I extends { name: string; index: number; flags: number }>(
  all: I[],
  wanted: string[] | undefined,
  suitable: (flags: number) => boolean,
): { chosen: I[]; missing: string[] } {
  const names = (wanted ?? []).filter((n) => n !== "");
  if (names.length === 0) return { chosen: all.filter((i) => i.index > 0 && suitable(i.flags)), missing: [] };
  const chosen: I[] = [];
  const missing: string[] = [];
  for (const name of new Set(names)) {
    const i = all.find((x) => x.name === name && x.index > 0);
    if (i) chosen.push(i);
    else missing.push(name);
  }
  return { chosen, missing };
}
