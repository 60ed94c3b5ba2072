// --interface patterns: fnmatch, the first matching rule decides, and the
// default rules appended to a list that is empty or ends with an exclusion.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decidingRule, fnmatch, isPatternList, parseRules } from "../../src/client/network/patterns.js";

test("fnmatch: *, ?, sets, ranges, negation, escapes", () => {
  const yes: Array<[string, string]> = [
    ["eth*", "eth0"], ["eth*", "eth"], ["*", "lo"], ["en?s0", "enps0"], ["enp?s0", "enp1s0"],
    ["wl[a-z]*", "wlan0"], ["eth[!0]", "eth1"], ["eth[^0]", "eth2"], ["[]]x", "]x"], ["a\\*", "a*"], ["*0", "eth0"],
    ["e*h*0", "eth0"], ["[", "["], ["x[ab", "x[ab"], ["*.*", "vlan.10"],
  ];
  for (const [p, n] of yes) assert.ok(fnmatch(p, n), `${p} ~ ${n}`);
  const no: Array<[string, string]> = [
    ["eth*", "veth0"], ["eth?", "eth"], ["eth[!0]", "eth0"], ["a\\*", "ab"], ["lo", "lo0"], ["*0", "eth1"], ["?", ""],
  ];
  for (const [p, n] of no) assert.ok(!fnmatch(p, n), `${p} !~ ${n}`);
  // No exponential blow-up on many stars.
  const t0 = performance.now();
  assert.ok(!fnmatch("*a*a*a*a*a*a*a*a*a*a*b", "a".repeat(15)));
  assert.ok(performance.now() - t0 < 1000);
});

test("plain names keep Mandos's meaning; any prefix or glob makes a pattern list", () => {
  assert.equal(isPatternList(["eth0", "none"]), false);
  assert.equal(isPatternList([]), false);
  for (const l of [["eth*"], ["!tun0"], ["+eth0"], ["eth0", "wl?n0"], ["[ew]*"]]) assert.equal(isPatternList(l), true, l.join());
});

test("the first match decides; defaults follow a list ending with an exclusion, or an empty one", () => {
  const decide = (words: string[], name: string) => {
    const r = decidingRule(parseRules(words), name);
    return r === null ? "unmatched" : `${r.include ? "take" : "skip"}${r.implicit ? " (default)" : ""}`;
  };
  assert.equal(decide(["!eth1", "eth*"], "eth1"), "skip");
  assert.equal(decide(["!eth1", "eth*"], "eth0"), "take");
  assert.equal(decide(["!eth1", "eth*"], "wlan0"), "unmatched"); // ends with an inclusion: nothing appended
  assert.equal(decide(["!eth1"], "wlan0"), "take (default)");
  assert.equal(decide(["!eth1"], "tun0"), "skip (default)");
  assert.equal(decide(["!eth1"], "lo"), "skip (default)");
  assert.equal(decide([], "enp1s0"), "take (default)");
  assert.equal(decide(["+tun0", "!*"], "tun0"), "take"); // an explicit inclusion wins over the default exclusions
  assert.equal(decide(["+tun0", "!*"], "eth0"), "skip");
  assert.equal(decide(["eth0", "!e*"], "eth0"), "take"); // a plain name in a pattern list matches exactly
  assert.throws(() => parseRules(["eth*", "none"]), /"none" cannot be mixed with patterns/);
  assert.throws(() => parseRules(["!"]), /empty pattern/);
});
