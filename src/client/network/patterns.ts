// --interface as an ordered list of patterns (beyond Mandos): "eth*",
// "!tun*", "+enp?s0". Each rule is matched with fnmatch(3) rules against an
// interface name; the first rule that matches decides. A list with no
// pattern at all (plain names, "none") keeps Mandos's meaning and is not
// handled here. Pure functions: which names a list takes is decided again
// on every survey, so interfaces that appear late are judged the same way.

export interface InterfaceRule {
  include: boolean;
  pattern: string;
  /** Appended by default, not written by the administrator. */
  implicit: boolean;
}

/** Appended to a list that is empty or ends with an exclusion: everything but tunnels, taps, SLIP and loopback. */
export const DEFAULT_RULES: readonly string[] = ["!tun*", "!tap*", "!sl*", "!lo", "*"];

const GLOB = /[*?[]/;

/** Is this --interface word a pattern rule rather than a plain interface name? */
export function isPatternWord(word: string): boolean {
  return word.startsWith("!") || word.startsWith("+") || GLOB.test(word);
}

/** Does the list use patterns (any word a rule)? Plain lists keep Mandos's meaning. */
export function isPatternList(words: readonly string[]): boolean {
  return words.some(isPatternWord);
}

function rule(word: string, implicit: boolean): InterfaceRule {
  const include = !word.startsWith("!");
  const pattern = word.startsWith("!") || word.startsWith("+") ? word.slice(1) : word;
  return { include, pattern, implicit };
}

/** The rules of a pattern list, with the default rules appended where they apply. */
export function parseRules(words: readonly string[]): InterfaceRule[] {
  const rules = words.map((w) => rule(w, false));
  for (const r of rules) {
    if (r.pattern === "") throw new Error(`--interface: empty pattern`);
    if (r.pattern === "none") throw new Error(`--interface: "none" cannot be mixed with patterns`);
  }
  if (rules.length === 0 || !rules[rules.length - 1]!.include) rules.push(...DEFAULT_RULES.map((w) => rule(w, true)));
  return rules;
}

/** The first rule matching `name`, or null if none does (then it is not used). */
export function decidingRule(rules: readonly InterfaceRule[], name: string): InterfaceRule | null {
  for (const r of rules) if (fnmatch(r.pattern, name)) return r;
  return null;
}

/**
 * fnmatch(3) without flags: "*" any run, "?" any one character, "[...]" a
 * set with ranges and "!" or "^" negation, "\" quotes the next character.
 */
export function fnmatch(pattern: string, name: string): boolean {
  // Iterative matching with one backtrack point for the last "*": linear
  // in practice, never exponential.
  let p = 0;
  let n = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    if (pattern[p] === "*") {
      starP = p++;
      starN = n;
      continue;
    }
    const step = p < pattern.length ? matchOne(pattern, p, name[n]!) : null;
    if (step?.matched) {
      p = step.next;
      n++;
    } else if (starP >= 0) {
      p = starP + 1;
      n = ++starN;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/** Match one pattern element at `p` against `c`: whether it matched and where the next element starts. */
function matchOne(pattern: string, p: number, c: string): { matched: boolean; next: number } {
  const ch = pattern[p]!;
  if (ch === "?") return { matched: true, next: p + 1 };
  if (ch === "\\" && p + 1 < pattern.length) return { matched: pattern[p + 1] === c, next: p + 2 };
  if (ch === "[") {
    const set = bracket(pattern, p, c);
    if (set !== null) return set;
  }
  return { matched: ch === c, next: p + 1 };
}

/** A "[...]" set at `p`; null if it is not closed (then "[" is literal, as in fnmatch). */
function bracket(pattern: string, p: number, c: string): { matched: boolean; next: number } | null {
  let i = p + 1;
  const negate = pattern[i] === "!" || pattern[i] === "^";
  if (negate) i++;
  let matched = false;
  let first = true;
  while (i < pattern.length && (first || pattern[i] !== "]")) {
    first = false;
    let lo = pattern[i]!;
    if (lo === "\\" && i + 1 < pattern.length) lo = pattern[++i]!;
    let hi = lo;
    if (pattern[i + 1] === "-" && i + 2 < pattern.length && pattern[i + 2] !== "]") {
      hi = pattern[i + 2]!;
      if (hi === "\\" && i + 3 < pattern.length) hi = pattern[++i + 2]!;
      i += 2;
    }
    if (lo <= c && c <= hi) matched = true;
    i++;
  }
  if (i >= pattern.length) return null;
  return { matched: matched !== negate, next: i + 1 };
}
