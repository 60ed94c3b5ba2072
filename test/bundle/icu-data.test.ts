// ICU common data packages (src/boot/icu-data.ts): which items an
// English-only node keeps, and parsing and laying out packages, malformed
// ones included. The real package in node is in trim-icu.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildIcuPackage, keptInEnglishOnly, parseIcuPackage, type IcuPackage } from "../../src/boot/icu-data.js";

test("English only: root, en, en_US and en_US_POSIX bundles, at the top and in every subtree, and no other locale's", () => {
  for (const name of [
    "root.res", "en.res", "en_US.res", "en_US_POSIX.res",
    "coll/root.res", "coll/en.res", "curr/en.res", "lang/en_US.res", "region/en.res", "zone/en.res",
    "unit/en.res", "rbnf/en.res", "brkitr/en_US_POSIX.res", "translit/root.res",
  ]) {
    assert.equal(keptInEnglishOnly(name), true, name);
  }
  for (const name of [
    "de.res", "en_GB.res", "en_001.res", "en_US_X.res", "zh_Hant_TW.res", "sr_Latn.res", "haw.res", "es_419.res",
    "coll/de.res", "coll/de__PHONEBOOK.res", "coll/es__TRADITIONAL.res", "curr/de_CH.res", "lang/fr.res",
    "region/ja.res", "zone/pt_BR.res", "unit/ar.res", "rbnf/fil.res", "brkitr/ja.res", "translit/el.res",
  ]) {
    assert.equal(keptInEnglishOnly(name), false, name);
  }
});

test("English only: break dictionaries and legacy converters go, everything that is not a locale stays", () => {
  for (const name of ["brkitr/thaidict.dict", "brkitr/cjdict.dict", "ibm-1047_P100-1995.cnv", "windows-936-2000.cnv", "gb18030-2022.cnv"]) {
    assert.equal(keptInEnglishOnly(name), false, name);
  }
  for (const name of [
    "pool.res", "res_index.res", "coll/res_index.res", "zone/res_index.res", "curr/pool.res", "supplementalData.res",
    "curr/supplementalData.res", "zoneinfo64.res", "metaZones.res", "timezoneTypes.res", "windowsZones.res",
    "zone/tzdbNames.res", "icuver.res", "icustd.res", "numberingSystems.res", "plurals.res", "coll/ucadata.icu",
    "nfkc.nrm", "uts46.nrm", "uprops.icu", "unames.icu", "cnvalias.icu", "confusables.cfu", "rfc3491.spp",
    "brkitr/word.brk", "brkitr/sent_el.brk", "brkitr/root.res",
  ]) {
    assert.equal(keptInEnglishOnly(name), true, name);
  }
});

/** A package as ICU's tool makes it: 32-byte header (magic, UDataInfo "CmnD"), items of the given sizes. */
function samplePackage(items: Record<string, number>): { bytes: Buffer; pkg: IcuPackage } {
  const header = Buffer.alloc(32);
  header.writeUInt16LE(32, 0);
  header[2] = 0xda;
  header[3] = 0x27;
  header.writeUInt16LE(20, 4);
  header[10] = 2; // sizeof(UChar)
  header.write("CmnD", 12, "latin1");
  header[16] = 1;
  const pkg: IcuPackage = {
    header,
    prefix: "icudt78l",
    items: Object.entries(items).map(([name, size], i) => ({ name, data: Buffer.alloc(size, i + 1) })),
  };
  return { bytes: buildIcuPackage(pkg, pkg.items), pkg };
}

const SAMPLE = { "coll/root.res": 40, "de.res": 7, "en.res": 16, "root.res": 33 };

test("a laid-out package parses back to the same items, aligned on 16 bytes, padded with 0xaa", () => {
  const { bytes } = samplePackage(SAMPLE);
  const parsed = parseIcuPackage(bytes, "icudt78l");
  assert.deepEqual(parsed.items.map((i) => i.name), Object.keys(SAMPLE));
  for (const [i, item] of parsed.items.entries()) {
    const size = Object.values(SAMPLE)[i]!;
    const offset = item.data.byteOffset - bytes.byteOffset;
    assert.equal(offset % 16, 0, item.name);
    assert.ok(item.data.subarray(0, size).every((b) => b === i + 1), item.name);
    // Up to the next item: the item's bytes, then 0xaa padding.
    assert.equal(item.data.length, size + ((16 - (size % 16)) % 16), item.name);
    assert.ok(item.data.subarray(size).every((b) => b === 0xaa), item.name);
  }
  // A canonical layout is its own fixed point.
  assert.deepEqual(buildIcuPackage(parsed, parsed.items), bytes);
  // Fewer items: the table, names and data move, the header stays.
  const english = buildIcuPackage(parsed, parsed.items.filter((i) => keptInEnglishOnly(i.name)));
  const again = parseIcuPackage(english, "icudt78l");
  assert.deepEqual(again.items.map((i) => i.name), ["coll/root.res", "en.res", "root.res"]);
  assert.deepEqual(again.items[1]!.data, parsed.items[2]!.data);
  assert.deepEqual(english.subarray(0, 32), bytes.subarray(0, 32));
  assert.ok(english.length < bytes.length);
});

test("malformed packages are refused with a clear error, not a crash", () => {
  const { bytes } = samplePackage(SAMPLE);
  const tocAt = 32;
  const broken = (change: (b: Buffer) => void) => {
    const b = Buffer.from(bytes);
    change(b);
    return b;
  };
  const cases: [string, Buffer, RegExp][] = [
    ["too short", bytes.subarray(0, 10), /ICU data icudt78l: 10 bytes, too short for a header$/],
    ["bad magic", broken((b) => (b[2] = 0xdb)), /no ICU data header \(magic bytes 0xda 0x27 missing\)/],
    ["header size beyond the data", broken((b) => b.writeUInt16LE(0xfff0, 0)), /header size 65520 is not valid/],
    ["big-endian", broken((b) => (b[8] = 1)), /not little-endian ASCII data/],
    ["another format", broken((b) => b.write("ResB", 12, "latin1")), /data format "ResB", not a common data package \("CmnD"\)/],
    ["count too large", broken((b) => b.writeUInt32LE(0x10000000, tocAt)), /268435456 items do not fit the package/],
    ["name offset out of range", broken((b) => b.writeUInt32LE(0xffffff, tocAt + 4 + 8)), /item 1: name offset 16777215 out of range/],
    ["name offset inside the table", broken((b) => b.writeUInt32LE(8, tocAt + 4)), /item 0: name offset 8 out of range/],
    ["data offset out of range", broken((b) => b.writeUInt32LE(0x7fffff00, tocAt + 8 + 16)), /item "icudt78l\/en.res": data offset 2147483392 out of range/],
    ["data offsets out of order", broken((b) => b.writeUInt32LE(b.readUInt32LE(tocAt + 8), tocAt + 8 + 8)), /item "icudt78l\/de.res": data offset \d+ not after the previous item's/],
    ["misaligned item", broken((b) => b.writeUInt32LE(b.readUInt32LE(tocAt + 8 + 8) + 4, tocAt + 8 + 8)), /item "icudt78l\/de.res": data offset \d+ not aligned on 16 bytes/],
    ["names not sorted", broken((b) => b.write("a", tocAt + b.readUInt32LE(tocAt + 4 + 8) + "icudt78l/".length, "latin1")), /item 1: names not in ascending order/],
    ["another package's items", broken((b) => b.write("icudt77l", tocAt + b.readUInt32LE(tocAt + 4), "latin1")), /item 0: name "icudt77l\/coll\/root.res" does not start with "icudt78l\/"/],
    ["unterminated name", Buffer.concat([bytes.subarray(0, 32), (() => {
      // One item whose name runs to the end of the data.
      const toc = Buffer.alloc(16);
      toc.writeUInt32LE(1, 0);
      toc.writeUInt32LE(12, 4);
      toc.writeUInt32LE(16, 8);
      toc.write("icud", 12, "latin1");
      return toc;
    })()]), /item 0: unterminated name/],
  ];
  for (const [what, data, message] of cases) {
    assert.throws(() => parseIcuPackage(data, "icudt78l"), message, what);
  }
});
