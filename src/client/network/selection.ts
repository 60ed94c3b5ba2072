// Which network interfaces a client run uses and brings up: --interface as
// Mandos's plain names (with "none"), or as an ordered list of patterns
// (patterns.ts). The rules are fixed when the run starts (selectionRules);
// every later look at the interfaces (a Zeroconf survey) is judged by the
// same rules, so an interface that appears late is taken exactly as it
// would have been at the start. Every function here is pure.
import { compareNames, interfaceVerdict, type SysInterface, type Verdict } from "../../sys/interfaces.js";
import { decidingRule, isPatternList, isPatternWord, parseRules, type InterfaceRule } from "./patterns.js";

/** A run's --interface selection, fixed at its start. */
export type SelectionRules =
  | {
      kind: "names";
      /** Named before the first "none": brought up and used. */
      bringUp: readonly string[];
      /** Named only after a "none": used as they are. */
      useOnly: readonly string[];
      /** No named interface (nor "none") was there at the start: every suitable interface is taken, as Mandos does. */
      automatic: boolean;
      connectMode: boolean;
    }
  | { kind: "patterns"; rules: readonly InterfaceRule[]; connectMode: boolean };

/** What the selection does with one interface: bring it up and use it, use it as it is, or leave it. */
export type Take = "bring-up" | "use" | null;

export interface Decision {
  take: Take;
  /** One line for the debug log, followed by the quoted name: "rejecting loopback interface". */
  reason: string;
}

/**
 * The rules of `words` (--interface values, comma lists split). `present`
 * are the interfaces there at the start: a plain list none of whose names
 * (nor "none") is there falls back to every suitable interface, as in Mandos.
 */
export function selectionRules(words: readonly string[], present: Iterable<string>, opts: { connectMode: boolean }): SelectionRules {
  const { connectMode } = opts;
  const named = words.filter((w) => w !== "");
  if (isPatternList(named)) return { kind: "patterns", rules: parseRules(named), connectMode };
  const first = named.indexOf("none");
  const before = new Set(first < 0 ? named : named.slice(0, first));
  const after = new Set(first < 0 ? [] : named.slice(first + 1).filter((n) => n !== "none" && !before.has(n)));
  const there = new Set(present);
  const automatic = first < 0 && ![...before].some((n) => there.has(n));
  return { kind: "names", bringUp: [...before], useOnly: [...after], automatic, connectMode };
}

/** By Mandos's suitability rule, for interfaces taken by default rather than by name. */
function byVerdict(iface: Pick<SysInterface, "flags">, connectMode: boolean): Decision {
  const v: Verdict = interfaceVerdict(iface, { connectMode });
  return { take: v.suitable ? "bring-up" : null, reason: v.reason };
}

/** Pure: what `rules` do with `iface`. */
export function decide(rules: SelectionRules, iface: Pick<SysInterface, "name" | "flags">): Decision {
  if (rules.kind === "names") {
    if (rules.bringUp.includes(iface.name)) return { take: "bring-up", reason: "named interface" };
    if (rules.useOnly.includes(iface.name)) return { take: "use", reason: 'using as it is (named after "none") interface' };
    if (rules.automatic) return byVerdict(iface, rules.connectMode);
    return { take: null, reason: "not using unnamed interface" };
  }
  const rule = decidingRule(rules.rules, iface.name);
  if (rule === null) return { take: null, reason: "no --interface pattern matches interface" };
  const written = `${rule.include ? "" : "!"}${rule.pattern}`;
  if (!rule.include) return { take: null, reason: `rejecting (--interface ${written}) interface` };
  // Only the default "*" also asks Mandos's rule; an administrator's own inclusion does not.
  if (rule.implicit) return byVerdict(iface, rules.connectMode);
  return { take: "bring-up", reason: `accepting (--interface ${written}) interface` };
}

/** Names the rules expect by name that are not there: a plain name, or a pattern without wildcards. */
export function missingNames(rules: SelectionRules, present: ReadonlySet<string>): string[] {
  const expected =
    rules.kind === "names"
      ? [...rules.bringUp, ...rules.useOnly].filter((n) => n !== "none")
      : rules.rules.filter((r) => r.include && !r.implicit && !isPatternWord(r.pattern)).map((r) => r.pattern);
  return [...new Set(expected)].filter((n) => !present.has(n));
}

export interface InterfaceSelection {
  /** Interfaces to use (browse on, connect through), in order; never "none". */
  use: string[];
  /** The subset of `use` to bring up (if down), in order. */
  bringUp: string[];
  /** Named with --interface but not present: log "not using nonexisting interface". */
  missing: string[];
  /** Chosen by rule rather than by name (no usable name given, or a pattern list). */
  automatic: boolean;
  /** With `automatic`: every interface looked at and why it was or was not taken (debug log). */
  verdicts: { name: string; verdict: Verdict }[];
  /** Exactly one interface in use: restrict Zeroconf and --connect to it; else null. */
  only: string | null;
  /** The rules, for interfaces that appear later. */
  rules: SelectionRules;
}

/**
 * Decide which interfaces to use and which to bring up at the start.
 * A plain list, as Mandos does:
 * - names that do not exist are dropped (reported in `missing`; empty names
 *   silently), "none" is kept as a marker;
 * - if nothing is left (no --interface, or only missing names), every
 *   suitable interface is used and brought up, in name order;
 * - otherwise the names are used in the order given, but only those before
 *   the first "none" are brought up ("none" first: nothing is brought up).
 * A pattern list: every interface the first matching rule includes, in
 * name order (by the default "*" only if Mandos's rule finds it suitable).
 * Duplicates are used once.
 */
export function selectInterfaces(
  spec: readonly string[],
  available: readonly SysInterface[],
  opts: { connectMode: boolean },
): InterfaceSelection {
  const present = new Set(available.map((i) => i.name));
  const rules = selectionRules(spec, present, opts);
  const missing = missingNames(rules, present);
  const byName = rules.kind === "names" && !rules.automatic;
  const candidates = byName
    ? [...new Set(spec)].filter((n) => n !== "none" && present.has(n)).map((n) => available.find((i) => i.name === n)!)
    : [...available].sort((a, b) => compareNames(a.name, b.name));
  const decided = candidates.map((iface) => ({ name: iface.name, decision: decide(rules, iface) }));
  const use = decided.filter((d) => d.decision.take !== null).map((d) => d.name);
  const bringUp = decided.filter((d) => d.decision.take === "bring-up").map((d) => d.name);
  const verdicts = byName ? [] : decided.map((d) => ({ name: d.name, verdict: { suitable: d.decision.take !== null, reason: d.decision.reason } }));
  return { use, bringUp, missing, automatic: !byName, verdicts, only: use.length === 1 ? use[0]! : null, rules };
}

/**
 * Pure, for each later survey: the interfaces there now that the rules
 * take and the run does not use yet, in name order, each with whether to
 * bring it up. An interface is adopted once per run.
 */
export function newlyTaken(
  rules: SelectionRules,
  available: readonly Pick<SysInterface, "name" | "flags">[],
  inUse: ReadonlySet<string>,
): { name: string; take: "bring-up" | "use"; reason: string }[] {
  const out: { name: string; take: "bring-up" | "use"; reason: string }[] = [];
  for (const iface of [...available].sort((a, b) => compareNames(a.name, b.name))) {
    if (inUse.has(iface.name)) continue;
    const { take, reason } = decide(rules, iface);
    if (take !== null) out.push({ name: iface.name, take, reason });
  }
  return out;
}
