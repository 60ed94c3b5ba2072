// The ConfigParser dialect: rules one by one, then the same documents read
// by Python's configparser (the parser Mandos uses) and compared.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  parseIni,
  interpolate,
  parseBoolean,
  parsePythonInt,
  InterpolationError,
  type IniDocument,
} from "../../src/config/configparser.js";
import { askMandos, oracleSkip } from "../helpers/config.js";

function values(doc: IniDocument, section: string): Record<string, string> {
  const s = section === "DEFAULT" ? doc.defaults : doc.sections.find((x) => x.name === section);
  assert.ok(s, `no section ${section}`);
  return Object.fromEntries([...s.options].map(([k, o]) => [k, o.value]));
}

test("sections, [DEFAULT], '=' and ':' delimiters, first delimiter wins", () => {
  const doc = parseIni("[DEFAULT]\na = 1\n[s]\nb: 2\nurl: http://x/?q=1\nc = d: e\n");
  assert.deepEqual(doc.issues, []);
  assert.deepEqual(values(doc, "DEFAULT"), { a: "1" });
  assert.deepEqual(values(doc, "s"), { b: "2", url: "http://x/?q=1", c: "d: e" });
  assert.equal(doc.sections[0]!.line, 3);
  assert.equal(doc.sections[0]!.options.get("url")!.line, 5);
});

test("keys are case-insensitive, section names are not", () => {
  const doc = parseIni("[Foo]\nTimeOut = 1\n[foo]\nKEY_ID: x\n");
  assert.deepEqual(doc.issues, []);
  assert.deepEqual(values(doc, "Foo"), { timeout: "1" });
  assert.deepEqual(values(doc, "foo"), { key_id: "x" });
});

test("comment lines start with # or ;, even indented; no inline comments", () => {
  const doc = parseIni("# c\n; c\n[s]\n   # indented\na = 1 # kept\nb = 2 ; kept\n");
  assert.deepEqual(doc.issues, []);
  assert.deepEqual(values(doc, "s"), { a: "1 # kept", b: "2 ; kept" });
});

test("continuation lines join with newlines; blank lines inside kept, trailing ones dropped", () => {
  const doc = parseIni(
    "[s]\nsecret =\n    AAAA\n    BBBB\n\n    CCCC\n\n\nnext = 1\ncomment = x\n# not part\n  y\n",
  );
  assert.deepEqual(doc.issues, []);
  assert.deepEqual(values(doc, "s"), { secret: "\nAAAA\nBBBB\n\nCCCC", next: "1", comment: "x\ny" });
});

test("an indented line right after a header is an option, and sets the indent", () => {
  const doc = parseIni("[s]\n  a = 1\n  b = 2\n    more\nc = 3\n");
  assert.deepEqual(doc.issues, []);
  assert.deepEqual(values(doc, "s"), { a: "1", b: "2\nmore", c: "3" });
});

test("CRLF and CR line ends, Python whitespace around keys and values", () => {
  const doc = parseIni("[s]\r\na = 1\r\n  b\r\nc\u00a0=\u00a0x\u00a0\rd = 4");
  assert.deepEqual(doc.issues, []);
  assert.deepEqual(values(doc, "s"), { a: "1\nb", c: "x", d: "4" });
});

test("section headers: text after the last ']' is ignored", () => {
  const doc = parseIni("[s] trailing\na = 1\n[a]b]\nc = 2\n[ DEFAULT ]\nd = 3\n");
  assert.deepEqual(
    doc.sections.map((s) => s.name),
    ["s", "a]b", " DEFAULT "],
  );
  assert.deepEqual(values(doc, "DEFAULT"), {});
});

test("[DEFAULT] may appear twice, but not set a key twice", () => {
  const ok = parseIni("[DEFAULT]\na=1\n[s]\n[DEFAULT]\nb=2\n");
  assert.deepEqual(ok.issues, []);
  assert.deepEqual(values(ok, "DEFAULT"), { a: "1", b: "2" });
  assert.equal(ok.defaults.line, 1);
  const bad = parseIni("[DEFAULT]\na=1\n[DEFAULT]\nA=2\n");
  assert.deepEqual(bad.issues, [{ line: 4, section: "DEFAULT", key: "a", message: "set again (first at line 2)" }]);
  assert.equal(values(bad, "DEFAULT").a, "1");
});

test("problems are issues charged to their section, and parsing goes on", () => {
  const doc = parseIni(
    [
      "stray = 1", //  1: before any header
      "more = 2", //   2: not reported twice
      "[a]",
      "x = 1",
      "x = 2", //      5: duplicate option
      "  cont", //     6: swallowed with the duplicate
      "[b]",
      "no delimiter", // 8
      "= value", //    9: empty key
      "[a]", //       10: duplicate section
      "y = 3",
      "[c]",
      "z = 4",
    ].join("\n"),
  );
  assert.deepEqual(doc.issues, [
    { line: 1, section: null, message: "text before the first section header (the file must start with a line like [DEFAULT])" },
    { line: 5, section: "a", key: "x", message: "set again (first at line 4)" },
    { line: 8, section: "b", message: 'not a section header, comment or "key = value" line' },
    { line: 9, section: "b", message: 'line starts with "=" but has no key before it' },
    { line: 10, section: "a", message: "section [a] appears again (first at line 3)" },
  ]);
  assert.deepEqual(values(doc, "a"), { x: "1" });
  assert.deepEqual(values(doc, "c"), { z: "4" });
});

test("a line that is not an option keeps the previous value open, as in Python", () => {
  const doc = parseIni("[s]\na = 1\nbogus\n  cont\n");
  assert.equal(doc.issues.length, 1);
  assert.deepEqual(values(doc, "s"), { a: "1\ncont" });
});

const lookupIn = (map: Record<string, string>) => (name: string) => map[name];

test("interpolation: %(name)s, %%, nesting, case-insensitive names", () => {
  const map = { host: "example.org", checker: "fping -q -- %%(host)s", port: "%(num)s", num: "22", pct: "50%%" };
  assert.equal(interpolate("ssh %(HOST)s:%(port)s", lookupIn(map)), "ssh example.org:22");
  assert.equal(interpolate("%(checker)s", lookupIn(map)), "fping -q -- %(host)s");
  assert.equal(interpolate("%(pct)s done, 100%%", lookupIn(map)), "50% done, 100%");
  assert.equal(interpolate("no percent", lookupIn({})), "no percent");
  assert.equal(interpolate("", lookupIn({})), "");
});

test("interpolation errors are clear and name no value", () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ["%(missing)s", {}, /%\(missing\)s refers to no option named "missing"/],
    ["100%", {}, /"%" must be followed by "%" or "\("/],
    ["%x", {}, /"%" must be followed by "%" or "\("/],
    ["%(host", { host: "h" }, /must be followed by a name and "\)s"/],
    ["%(host)d", { host: "h" }, /must be followed by a name and "\)s"/],
    ["%()s", {}, /must be followed by a name/],
    ["%(a)s", { a: "%(a)s" }, /nest more than 10 deep/],
    ["%(a)s", { a: "x%(b)s", b: "%(a)s" }, /nest more than 10 deep/],
  ];
  for (const [text, map, message] of cases) {
    assert.throws(() => interpolate(text, lookupIn(map)), (e: unknown) => e instanceof InterpolationError && message.test(e.message), text);
  }
});

/** k0 → k1 → … → k(n-1) → "end%%": n references deep. */
function chain(n: number): Record<string, string> {
  const map: Record<string, string> = {};
  for (let i = 0; i < n; i++) map[`k${i}`] = `%(k${i + 1})s`;
  map[`k${n}`] = "end%%";
  return map;
}

test("interpolation depth limit is exactly Python's", () => {
  assert.equal(interpolate("%(k0)s", lookupIn(chain(8))), "end%");
  assert.equal(interpolate("%(k2)s", lookupIn(chain(10))), "end%"); // 10 levels, counting the text itself
  assert.throws(() => interpolate("%(k0)s", lookupIn(chain(10))), InterpolationError);
  // A value without "%" ends the chain without counting.
  assert.equal(interpolate("%(k0)s", lookupIn({ ...chain(9), k9: "plain" })), "plain");
});

test("booleans and integers as Python reads them", () => {
  for (const t of ["1", "yes", "TRUE", "On", "true"]) assert.equal(parseBoolean(t), true, t);
  for (const t of ["0", "no", "False", "OFF"]) assert.equal(parseBoolean(t), false, t);
  for (const t of ["", "y", "2", " yes", "enabled"]) assert.equal(parseBoolean(t), undefined, t);
  assert.equal(parsePythonInt("1025"), 1025);
  assert.equal(parsePythonInt(" +7 "), 7);
  assert.equal(parsePythonInt("-0"), 0);
  assert.ok(Object.is(parsePythonInt("-0"), 0));
  assert.equal(parsePythonInt("1_000"), 1000);
  assert.equal(parsePythonInt("007"), 7);
  for (const t of ["", "1.5", "0x10", "_1", "1__0", "1_", "one", "99999999999999999999"]) {
    assert.equal(parsePythonInt(t), undefined, t);
  }
});

// Documents read both ways. Lone CR line ends are left out: Python's
// read_string() (used by the oracle) does not split on them, its file
// reading (used by Mandos) does, and so do we.
const CORPUS = [
  "[DEFAULT]\na = 1\n[s]\nb = %(a)s2\n",
  "[s]\nKey: Value : more\nx=y=z\n",
  "[s]\nsecret =\n    AAAA\n    BBBB\n\n    CCCC\n\n\nnext = 1\n",
  "[s]\na = x\n# comment\n  ; indented comment\n  y\n",
  "[s]\n  a = 1\n  b = 2\n    cont\nc = 3\n",
  "[s]\na = 50%%\nb = %(a)s done\n",
  "[s]\na = %(b)s\nb = %(a)s\n",
  "[s]\na = %(missing)s\nok = 1\n",
  "[s]\na = 100%\n",
  "[s]\na = %(b\n",
  "[s]\na = %(b)d\nb = 1\n",
  "[DEFAULT]\nhost = h\n[s]\nchecker = fping -q -- %%(host)s\nx = %(checker)s\n",
  "[s]\nA = 1\nb = %(A)s\n",
  "[Foo]\na=1\n[foo]\na=2\n",
  "[s] trailing\na = 1\n[a]b]\nc = 2\n",
  "\r\n[s]\r\na = 1\r\n  b\r\n",
  "[s]\na = 1 ; not a comment\n",
  "[s]\n\ta\t=\tv v\t\n",
  "[s]\na\u00a0=\u00a0b\u00a0\n",
  "[ DEFAULT ]\na = 1\n",
  "[DEFAULT]\nx = %(y)s\n[s]\ny = 1\n[t]\n",
  "[DEFAULT]\na=1\n[DEFAULT]\nb=2\n[s]\n",
  "[s]\na =\n\n  \n  b\n",
  `[DEFAULT]\n${Object.entries(chain(9)).map(([k, v]) => `${k} = ${v}`).join("\n")}\n[s]\n`,
  `[DEFAULT]\n${Object.entries(chain(10)).map(([k, v]) => `${k} = ${v}`).join("\n")}\n[s]\n`,
  // Each of these makes Python refuse the whole file.
  "a = 1\n[s]\n",
  "[s]\nnot an option\n",
  "[s]\na = 1\na = 2\n",
  "[s]\n[s]\n",
  "[s]\n= x\n",
  "[DEFAULT]\na = 1\nA = 2\n",
  "",
  "# only a comment\n",
];

/** What a section's options come to, as Python's ConfigParser.get() gives them. */
function resolved(doc: IniDocument, defaults: Record<string, string>): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const section of [doc.defaults, ...doc.sections]) {
    const raw = new Map(Object.entries(defaults));
    for (const [k, o] of doc.defaults.options) raw.set(k, o.value);
    if (section !== doc.defaults) for (const [k, o] of section.options) raw.set(k, o.value);
    const vals: Record<string, string> = {};
    for (const [k, v] of raw) {
      try {
        vals[k] = interpolate(v, (n) => raw.get(n));
      } catch (e) {
        assert.ok(e instanceof InterpolationError);
        vals[k] = "ERROR";
      }
    }
    out[section.name] = vals;
  }
  return out;
}

test("the same documents read by Python's configparser give the same values", { skip: oracleSkip }, async () => {
  const defaults = { checker: "fping -q -- %%(host)s", host: "" };
  const answers = await askMandos(CORPUS.map((text) => ({ op: "parse" as const, text, defaults })));
  for (const [i, text] of CORPUS.entries()) {
    const answer = answers[i]!;
    const doc = parseIni(text);
    if ("error" in answer) {
      assert.ok(doc.issues.length > 0, `Python refuses ${JSON.stringify(text)} (${answer.error}); we found no issue`);
      continue;
    }
    assert.ok("sections" in answer);
    assert.deepEqual(doc.issues, [], `issues in ${JSON.stringify(text)}`);
    const python = Object.fromEntries(
      Object.entries(answer.sections).map(([name, vals]) => [
        name,
        Object.fromEntries(Object.entries(vals).map(([k, v]) => [k, typeof v === "string" ? v : "ERROR"])),
      ]),
    );
    assert.deepEqual(resolved(doc, defaults), python, JSON.stringify(text));
  }
});
