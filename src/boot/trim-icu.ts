// English-only ICU data for the initramfs's node (see trim-icu-main.ts and
// docs/design.md, "A lean runtime at boot"). Node's official builds embed
// ICU's full data (33 MB, every locale) as the symbol icudtNN_dat; the
// programs that run at boot need none of the other locales. The trimmed
// package is written over the symbol's start, and the whole pages of zeros
// left after it are dropped from the file (zero-pages.ts): the loader maps
// zero pages there. The file compresses about 8 MB smaller and is 27 MB
// shorter.
import { execFile } from "node:child_process";
import { chmodSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { errorMessage } from "../cli/log.js";
import { findFileSymbol } from "./elf.js";
import { buildIcuPackage, keptInEnglishOnly, parseIcuPackage } from "./icu-data.js";
import { dropZeroPages } from "./zero-pages.js";

export interface Trimmed {
  /** The whole executable, with the trimmed package and, unless `whyNotDropped` says why not, without its zero pages. */
  node: Buffer;
  symbol: string;
  /** Bytes of the package before and after. */
  before: number;
  after: number;
  kept: number;
  removed: number;
  /** Bytes of zero pages left out of the file, or why none were. */
  dropped: number;
  whyNotDropped?: string;
}

const ICU_SYMBOL = /^icudt\d+_dat$/;

/** The ICU package embedded in a node executable: its symbol, package name and bytes (a view of `file`). */
export function embeddedIcu(file: Buffer): { symbol: string; prefix: string; offset: number; data: Buffer } {
  const symbol = findFileSymbol(file, (name) => ICU_SYMBOL.test(name));
  if (!symbol) throw new Error("no embedded ICU data (no icudt*_dat symbol): this node uses a shared libicu or has no ICU");
  // "icudt78_dat" holds the package "icudt78l" (l: little-endian, ASCII).
  const prefix = `${symbol.name.slice(0, -"_dat".length)}l`;
  return { symbol: symbol.name, prefix, offset: symbol.offset, data: file.subarray(symbol.offset, symbol.offset + symbol.size) };
}

/** `file` (a node executable) with only the ICU items `keep` keeps (by default, what English needs); `file` is not changed. */
export function trimNodeIcu(file: Buffer, keep: (item: string) => boolean = keptInEnglishOnly): Trimmed {
  const icu = embeddedIcu(file);
  const pkg = parseIcuPackage(icu.data, icu.prefix);
  const kept = pkg.items.filter((item) => keep(item.name));
  const data = buildIcuPackage(pkg, kept);
  if (data.length > icu.data.length) throw new Error(`ICU data ${icu.prefix}: the trimmed package would not fit (${data.length} bytes)`);
  parseIcuPackage(data, icu.prefix);
  const node = Buffer.from(file);
  node.fill(0, icu.offset, icu.offset + icu.data.length);
  data.copy(node, icu.offset);
  const zeros = dropZeroPages(node, icu.offset + data.length, icu.offset + icu.data.length);
  return {
    node: zeros.file,
    symbol: icu.symbol,
    before: icu.data.length,
    after: data.length,
    kept: kept.length,
    removed: pkg.items.length - kept.length,
    dropped: zeros.dropped,
    ...(zeros.why === undefined ? {} : { whyNotDropped: zeros.why }),
  };
}

// ---- The self-test ------------------------------------------------------

/**
 * What the trimmed node must do as the original does: Intl in English,
 * time zones, collation and segmentation from the root data,
 * normalization, case mapping, Unicode property escapes, TextDecoder.
 */
const SAME: Record<string, string> = {
  number: `new Intl.NumberFormat("en-US").format(1234567.891)`,
  currency: `new Intl.NumberFormat("en-US", { style: "currency", currency: "EUR" }).format(-1234.5)`,
  unit: `new Intl.NumberFormat("en", { style: "unit", unit: "kilobyte", unitDisplay: "long" }).format(12)`,
  date: `new Intl.DateTimeFormat("en-US", { dateStyle: "full", timeStyle: "full", timeZone: "America/New_York" }).format(15e11)`,
  localZone: `new Date(15e11).toLocaleString("en-US", { timeZoneName: "long" })`,
  plural: `new Intl.PluralRules("en", { type: "ordinal" }).select(2)`,
  relative: `new Intl.RelativeTimeFormat("en").format(-3, "day")`,
  list: `new Intl.ListFormat("en").format(["a", "b", "c"])`,
  region: `new Intl.DisplayNames("en", { type: "region" }).of("DE")`,
  collate: `["b", "a", "ä", "Z", "ß"].sort(new Intl.Collator("en").compare).join(" ")`,
  words: `[...new Intl.Segmenter("en", { granularity: "word" }).segment("Hello, wide world.")].length`,
  normalize: `"\\u1e9b\\u0323".normalize("NFKC") + "\\u00c5".normalize("NFD")`,
  upper: `"straße ǆ".toUpperCase() + "İ".toLocaleLowerCase("tr")`,
  properties: `[/\\p{C}/u.test("\\u200b"), /\\p{P}/u.test("«"), /\\p{Z}/u.test("\\u3000")].join()`,
  utf8: `new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0x4d, 0xe2, 0x82, 0xac]))`,
  latin1: `new TextDecoder("latin1").decode(new Uint8Array([0x41, 0xe9]))`,
  utf16: `new TextDecoder("utf-16le").decode(new Uint8Array([0x41, 0, 0xac, 0x20]))`,
  zone: `Intl.DateTimeFormat().resolvedOptions().timeZone`,
};
/** What must still give a result (English, or root's) where the original gives one: other locales. */
const WORKS: Record<string, string> = {
  deNumber: `new Intl.NumberFormat("de-DE").format(1234.5)`,
  deDate: `new Date(15e11).toLocaleString("de-DE", { timeZone: "Europe/Berlin" })`,
  jaDate: `new Intl.DateTimeFormat("ja-JP", { dateStyle: "full" }).format(15e11)`,
  defaultLocale: `(1234.5).toLocaleString() + " " + new Date(15e11).toLocaleString() + " " + String(new Date(15e11))`,
  svCollate: `new Intl.Collator("sv").compare("ä", "z")`,
  deLanguage: `new Intl.DisplayNames("de", { type: "language" }).of("fr")`,
};

/** The probe program: prints each probe's value or error as JSON. */
export function probeScript(): string {
  const probe = (group: Record<string, string>) =>
    `{${Object.entries(group).map(([k, e]) => `${JSON.stringify(k)}: () => ${e}`).join(", ")}}`;
  return `const run = (group) => Object.fromEntries(Object.entries(group).map(([k, f]) => {
  try { return [k, { value: String(f()) }]; } catch (e) { return [k, { error: String(e && e.message) }]; }
}));
console.log(JSON.stringify({ same: run(${probe(SAME)}), works: run(${probe(WORKS)}) }));`;
}

type Outcome = { value: string } | { error: string };
export interface ProbeReport {
  version: string;
  same: Record<string, Outcome>;
  works: Record<string, Outcome>;
}

const show = (o: Outcome | undefined) => (o === undefined ? "nothing" : "value" in o ? JSON.stringify(o.value) : `error "${o.error}"`);

/** Where the trimmed node's report falls short of the original's; empty if it passes. */
export function selfTestProblems(original: ProbeReport, trimmed: ProbeReport): string[] {
  const problems: string[] = [];
  if (trimmed.version !== original.version) problems.push(`--version says ${JSON.stringify(trimmed.version)}, not ${JSON.stringify(original.version)}`);
  for (const [name, want] of Object.entries(original.same)) {
    const got = trimmed.same[name];
    if (show(got) !== show(want)) problems.push(`${name}: ${show(got)}, not ${show(want)}`);
  }
  for (const [name, want] of Object.entries(original.works)) {
    const got = trimmed.works[name];
    if ("value" in want && !(got && "value" in got)) problems.push(`${name}: ${show(got)}`);
  }
  return problems;
}

// ---- Effects ------------------------------------------------------------

/**
 * Runs the probes under a node executable; throws with a one-line reason
 * if it does not run, crashes or prints something else. A German default
 * locale and a time zone with summer time, as an image built on such a
 * host has.
 */
export async function probe(node: string): Promise<ProbeReport> {
  const opts = { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "de_DE.UTF-8", TZ: "Europe/Berlin" }, timeout: 60_000 };
  const run = (args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile(node, args, opts, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const why = err.killed ? "timed out" : err.signal ? `killed by ${err.signal}` : `exit status ${err.code}`;
        // Its error line (a crash ends with a native stack trace), else its last.
        const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
        const said = lines.find((l) => /error/i.test(l)) ?? lines.at(-1);
        reject(new Error(`${node} ${args[0]} failed (${why})${said ? `: ${said}` : ""}`));
      }),
    );
  const version = (await run(["--version"])).trim();
  const out = await run(["-e", probeScript()]);
  try {
    return { version, ...(JSON.parse(out) as Omit<ProbeReport, "version">) };
  } catch {
    throw new Error(`${node}: the self-test printed no report`);
  }
}

/**
 * Writes `input` with the ICU items `keep` keeps (by default, English
 * only) to `output` (which may be
 * `input`): into a new file beside `output`, renamed over it only once it
 * passed the self-test, so a hard link to `output` never sees a change and
 * a failure leaves `output` as it was. Returns the figures.
 */
export async function trimIcuFile(input: string, output: string, keep?: (item: string) => boolean): Promise<Trimmed> {
  const trimmed = trimNodeIcu(readFileSync(input), keep);
  const temporary = `${output}.trim-icu.${process.pid}`;
  try {
    writeFileSync(temporary, trimmed.node, { flag: "wx", mode: 0o700 });
    chmodSync(temporary, statSync(input).mode & 0o7777);
    const expected = await probe(input);
    const problems = await probe(temporary).then(
      (got) => selfTestProblems(expected, got),
      (err: unknown) => [errorMessage(err)],
    );
    if (problems.length > 0) throw new Error(`the trimmed node fails its self-test: ${problems.join("; ")}`);
    renameSync(temporary, output);
  } finally {
    rmSync(temporary, { force: true });
  }
  return trimmed;
}
