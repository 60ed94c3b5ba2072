// English-only ICU data for the initramfs's node (src/boot/trim-icu.ts,
// elf.ts, zero-pages.ts): finding the data in an ELF file, the self-test's
// verdict, and the real thing on this machine's node: the trimmed copy
// runs, Intl in English works, other locales fall back, the zeros left
// are not in the file, strip leaves it alone, the original is untouched.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, linkSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findFileSymbol } from "../../src/boot/elf.js";
import { buildIcuPackage, parseIcuPackage } from "../../src/boot/icu-data.js";
import { embeddedIcu, selfTestProblems, trimIcuFile, type ProbeReport } from "../../src/boot/trim-icu.js";
import { loadedBytes, programHeaders, sameLoadedImage, PT_LOAD } from "../helpers/elf.js";
import { run, tempDir } from "../helpers/index.js";

// ---- ELF ------------------------------------------------------------------

interface ElfSymbol {
  name: string;
  /** Section index: 1 is .rodata, 0 undefined. */
  shndx: number;
  value: number;
  size: number;
}

const RODATA_ADDR = 0x401000;

/** A little ELF64 file: .rodata (64 bytes of 0x11) at 0x100, .dynstr, .dynsym with `symbols`, section headers last. */
function elf(symbols: ElfSymbol[]): Buffer {
  const rodata = Buffer.alloc(64, 0x11);
  const strings = Buffer.from(`\0${symbols.map((s) => `${s.name}\0`).join("")}`, "latin1");
  const symtab = Buffer.alloc(24 * (symbols.length + 1));
  let nameAt = 1;
  symbols.forEach((s, i) => {
    const at = 24 * (i + 1);
    symtab.writeUInt32LE(nameAt, at);
    nameAt += s.name.length + 1;
    symtab[at + 4] = 0x11; // global object
    symtab.writeUInt16LE(s.shndx, at + 6);
    symtab.writeBigUInt64LE(BigInt(s.value), at + 8);
    symtab.writeBigUInt64LE(BigInt(s.size), at + 16);
  });
  const rodataAt = 0x100;
  const stringsAt = rodataAt + rodata.length;
  const symtabAt = stringsAt + strings.length;
  const headersAt = symtabAt + symtab.length;
  const section = (type: number, addr: number, offset: number, size: number, link = 0) => {
    const h = Buffer.alloc(64);
    h.writeUInt32LE(type, 4);
    h.writeBigUInt64LE(BigInt(addr), 0x10);
    h.writeBigUInt64LE(BigInt(offset), 0x18);
    h.writeBigUInt64LE(BigInt(size), 0x20);
    h.writeUInt32LE(link, 0x28);
    return h;
  };
  const header = Buffer.alloc(rodataAt);
  header.writeUInt32BE(0x7f454c46, 0);
  header[4] = 2; // 64-bit
  header[5] = 1; // little-endian
  header.writeBigUInt64LE(BigInt(headersAt), 0x28);
  header.writeUInt16LE(64, 0x3a);
  header.writeUInt16LE(4, 0x3c);
  return Buffer.concat([
    header, rodata, strings, symtab,
    section(0, 0, 0, 0),
    section(1, RODATA_ADDR, rodataAt, rodata.length),
    section(3, 0, stringsAt, strings.length),
    section(11, 0, symtabAt, symtab.length, 2),
  ]);
}

const isIcu = (name: string) => /^icudt\d+_dat$/.test(name);

test("ELF: the ICU data symbol's bytes are found through .dynsym, in the section it is defined in", () => {
  const file = elf([
    { name: "icudt78_dat", shndx: 0, value: 0, size: 0 }, // undefined here: skipped
    { name: "other_dat", shndx: 1, value: RODATA_ADDR, size: 8 },
    { name: "icudt78_dat", shndx: 1, value: RODATA_ADDR + 16, size: 32 },
  ]);
  assert.deepEqual(findFileSymbol(file, isIcu), { name: "icudt78_dat", offset: 0x100 + 16, size: 32 });
  assert.equal(findFileSymbol(elf([{ name: "other_dat", shndx: 1, value: RODATA_ADDR, size: 8 }]), isIcu), null);
});

test("ELF: malformed files are refused with a clear error, not a crash", () => {
  const good = elf([{ name: "icudt78_dat", shndx: 1, value: RODATA_ADDR, size: 64 }]);
  const broken = (change: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    change(b);
    return b;
  };
  const headersAt = Number(good.readBigUInt64LE(0x28));
  const cases: [string, Buffer, RegExp][] = [
    ["a script", Buffer.from("#!/bin/sh\n".padEnd(100, "#")), /not an ELF file/],
    ["32-bit", broken((b) => (b[4] = 1)), /not a little-endian 64-bit ELF file/],
    ["big-endian", broken((b) => (b[5] = 2)), /not a little-endian 64-bit ELF file/],
    ["no sections", broken((b) => b.writeUInt16LE(0, 0x3c)), /ELF: no section headers/],
    ["section headers cut off", good.subarray(0, good.length - 10), /ELF: section headers \(offset \d+, 256 bytes\) lies outside the file/],
    ["a section beyond the file", broken((b) => b.writeBigUInt64LE(1n << 40n, headersAt + 3 * 64 + 0x18)), /ELF: symbol table \(offset 1099511627776, 48 bytes\) lies outside the file/],
    ["string table missing", broken((b) => b.writeUInt32LE(9, headersAt + 3 * 64 + 0x28)), /ELF: symbol table links to section 9, which does not exist/],
    ["name outside its string table", broken((b) => b.writeUInt32LE(5000, 0x100 + 64 + 13 + 24)), /ELF: symbol name offset 5000 outside its string table/],
    ["symbol larger than its section", broken((b) => b.writeBigUInt64LE(65n, 0x100 + 64 + 13 + 24 + 16)), /ELF: symbol icudt78_dat lies outside its section/],
  ];
  for (const [what, file, message] of cases) {
    assert.throws(() => findFileSymbol(file, isIcu), message, what);
  }
});

// ---- The self-test's verdict ----------------------------------------------

const REPORT: ProbeReport = {
  version: "v20.20.2",
  same: { number: { value: "1,234,567.891" }, latin1: { value: "Aé" } },
  works: { deNumber: { value: "1.234,5" }, jaDate: { error: "not in this build" } },
};

test("self-test: the trimmed node passes with the same English results and any result for other locales", () => {
  assert.deepEqual(selfTestProblems(REPORT, structuredClone(REPORT)), []);
  const fellBack = { ...REPORT, works: { deNumber: { value: "1,234.5" }, jaDate: { error: "still not" } } };
  assert.deepEqual(selfTestProblems(REPORT, fellBack), []);
});

test("self-test: another version, an English result changed or missing, or an error where the original worked fail it", () => {
  assert.deepEqual(selfTestProblems(REPORT, { ...REPORT, version: "v20.20.1" }), ['--version says "v20.20.1", not "v20.20.2"']);
  assert.deepEqual(selfTestProblems(REPORT, { ...REPORT, same: { number: { value: "1234567.891" } } }), [
    'number: "1234567.891", not "1,234,567.891"',
    'latin1: nothing, not "Aé"',
  ]);
  assert.deepEqual(selfTestProblems(REPORT, { ...REPORT, works: { deNumber: { error: "Internal error. Icu error." }, jaDate: { error: "x" } } }), [
    'deNumber: error "Internal error. Icu error."',
  ]);
});

// ---- This machine's node ----------------------------------------------------

const NODE = process.execPath;
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const noEmbeddedIcu = (() => {
  try {
    embeddedIcu(readFileSync(NODE));
    return false;
  } catch (err) {
    return `${NODE}: ${(err as Error).message}`;
  }
})();

test("this machine's node: the trimmed copy runs, Intl in English works, other locales fall back, the original is unchanged", { skip: noEmbeddedIcu, timeout: 120_000 }, async () => {
  const work = tempDir("mandos-trim-icu-");
  try {
    const before = sha256(NODE);
    const out = join(work.path, "node");
    const t = await trimIcuFile(NODE, out);
    assert.equal(sha256(NODE), before);
    assert.equal(statSync(out).mode & 0o777, statSync(NODE).mode & 0o777);
    // Over 25 MB of zero pages (and the section headers) are left out of the file.
    assert.equal(t.whyNotDropped, undefined);
    assert.ok(t.dropped > 25e6, `${t.dropped} bytes`);
    assert.ok(statSync(out).size <= statSync(NODE).size - t.dropped);

    // As the program sees it: the package ends before 6.5 MB, the rest of the symbol is zeros.
    const file = readFileSync(out);
    const original = readFileSync(NODE);
    const icu = embeddedIcu(original);
    const segment = programHeaders(original).find((p) => p.type === PT_LOAD && p.offset <= icu.offset && icu.offset < p.offset + p.filesz)!;
    const data = loadedBytes(file, segment.vaddr + icu.offset - segment.offset, icu.data.length);
    assert.ok(t.after < 6.5e6, `${t.after} bytes`);
    assert.ok(t.before > 30e6, `${t.before} bytes`);
    assert.ok(data.subarray(t.after).every((b) => b === 0));
    const items = parseIcuPackage(data.subarray(0, t.after), icu.prefix).items.map((i) => i.name);
    assert.ok(items.includes("en.res") && items.includes("zoneinfo64.res") && items.includes("coll/ucadata.icu"));
    assert.ok(!items.includes("de.res") && !items.some((n) => n.endsWith(".cnv")));
    // Outside the symbol, the program sees the original's bytes.
    const expected = Buffer.from(original);
    data.copy(expected, icu.offset);
    assert.ok(sameLoadedImage(expected, file));

    // Neither strip (binutils) nor eu-strip (elfutils, which dracut prefers) rewrites it.
    for (const strip of ["strip", "eu-strip"]) {
      const copy = join(work.path, strip);
      copyFileSync(out, copy);
      await run(strip, ["-g", "-p", copy]);
      assert.ok(readFileSync(copy).equals(file), `${strip} changed it`);
    }

    const script = `console.log([new Intl.NumberFormat("en-US").format(1234.5), new Intl.NumberFormat("de-DE").format(1234.5),
      new Intl.DateTimeFormat("en-US", { dateStyle: "long", timeZone: "UTC" }).format(0),
      new TextDecoder("utf-8").decode(Buffer.from("€"))].join("|"))`;
    const r = await run(out, ["-e", script], { env: { LANG: "de_DE.UTF-8" }, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), "1,234.5|1,234.5|January 1, 1970|€\n");
  } finally {
    work.cleanup();
  }
});

test("this machine's node: rebuilding its ICU package with every item gives the same bytes", { skip: noEmbeddedIcu }, () => {
  const icu = embeddedIcu(readFileSync(NODE));
  const pkg = parseIcuPackage(icu.data, icu.prefix);
  assert.ok(buildIcuPackage(pkg, pkg.items).equals(icu.data));
});

test("trimming replaces the output by a rename: another hard link to it keeps the old bytes", { skip: noEmbeddedIcu, timeout: 120_000 }, async () => {
  const work = tempDir("mandos-trim-icu-");
  try {
    const copy = join(work.path, "node");
    const link = join(work.path, "node-link");
    copyFileSync(NODE, copy);
    linkSync(copy, link);
    const before = sha256(link);
    await trimIcuFile(copy, copy);
    assert.equal(sha256(link), before);
    assert.notEqual(sha256(copy), before);
    assert.equal(statSync(link).nlink, 1);
  } finally {
    work.cleanup();
  }
});

test("an executable without embedded ICU data is refused, the output is left as it was", async () => {
  const work = tempDir("mandos-trim-icu-");
  try {
    const out = join(work.path, "out");
    writeFileSync(out, "as it was");
    const other = ["/usr/bin/true", "/bin/true"].find((p) => existsSync(p))!;
    await assert.rejects(trimIcuFile(other, out), /no embedded ICU data \(no icudt\*_dat symbol\): this node uses a shared libicu or has no ICU/);
    assert.equal(readFileSync(out, "utf8"), "as it was");
    assert.deepEqual(readdirSync(work.path), ["out"]);
  } finally {
    work.cleanup();
  }
});

test("a trimmed node that fails its self-test is not used: the output is left as it was", { skip: noEmbeddedIcu, timeout: 120_000 }, async () => {
  const work = tempDir("mandos-trim-icu-");
  try {
    const out = join(work.path, "out");
    writeFileSync(out, "as it was");
    // No item at all: node starts, but its first use of Intl is fatal.
    await assert.rejects(trimIcuFile(NODE, out, () => false), /^Error: the trimmed node fails its self-test: .*out\.trim-icu\.\d+ -e failed \(killed by SIG[A-Z]+\): .*error/i);
    assert.equal(readFileSync(out, "utf8"), "as it was");
    assert.deepEqual(readdirSync(work.path), ["out"]);
  } finally {
    work.cleanup();
  }
});
