// ICU common data packages ("CmnD", the icudtNNl.dat format node embeds as
// the symbol icudtNN_dat): parse and validate one, choose the items an
// English-only runtime needs, and lay the chosen ones out as a new package.
//
// Layout (ICU's ucmndata.h, udata.h): a header of headerSize bytes (u16 at
// 0; magic 0xda 0x27 at 2..3; then UDataInfo: size, reserved, isBigEndian,
// charsetFamily, sizeofUChar, reserved, dataFormat "CmnD" at 12..15,
// formatVersion, dataVersion), then the table of contents: u32 count and
// count pairs of u32 (nameOffset, dataOffset), both relative to the start
// of the table; the NUL-terminated item names ("icudt78l/coll/root.res"),
// sorted, since ICU finds an item by binary search; then the items, each
// starting on 16 bytes from the start of the package. ICU takes an item's
// length to be the next item's offset less its own, so the items lie in
// the order of the table, and the last one runs to the end of the package.

export interface IcuItem {
  /** The name without the package's prefix: "coll/root.res". */
  name: string;
  /** Its bytes, up to the next item (trailing padding included). */
  data: Buffer;
}

export interface IcuPackage {
  /** The header, copied as is. */
  header: Buffer;
  /** "icudt78l", the prefix of every item name. */
  prefix: string;
  items: IcuItem[];
}

const ALIGN = 16;
/** What ICU's own package tool pads with. */
const PAD = 0xaa;

/**
 * Parses and checks a little-endian ASCII common data package (the whole
 * buffer is the package); every offset is checked, and the error says
 * which. `prefix` is the package name its items must start with.
 */
export function parseIcuPackage(data: Buffer, prefix: string): IcuPackage {
  const fail = (why: string): never => {
    throw new Error(`ICU data ${prefix}: ${why}`);
  };
  if (data.length < 24) fail(`${data.length} bytes, too short for a header`);
  const headerSize = data.readUInt16LE(0);
  if (data[2] !== 0xda || data[3] !== 0x27) fail("no ICU data header (magic bytes 0xda 0x27 missing)");
  if (headerSize < 24 || headerSize + 4 > data.length) fail(`header size ${headerSize} is not valid`);
  if (data[8] !== 0 || data[9] !== 0 || data[10] !== 2) fail("not little-endian ASCII data with 2-byte UChars");
  const format = data.toString("latin1", 12, 16);
  if (format !== "CmnD") fail(`data format "${format}", not a common data package ("CmnD")`);

  const toc = data.subarray(headerSize);
  const count = toc.readUInt32LE(0);
  const tableEnd = 4 + 8 * count;
  if (tableEnd > toc.length) fail(`${count} items do not fit the package`);
  const entries: { name: string; offset: number }[] = [];
  for (let i = 0; i < count; i++) {
    const nameOffset = toc.readUInt32LE(4 + 8 * i);
    const offset = toc.readUInt32LE(8 + 8 * i);
    if (nameOffset < tableEnd || nameOffset >= toc.length) fail(`item ${i}: name offset ${nameOffset} out of range`);
    const end = toc.indexOf(0, nameOffset);
    if (end < 0) fail(`item ${i}: unterminated name`);
    const name = toc.toString("latin1", nameOffset, end);
    if (!name.startsWith(`${prefix}/`)) fail(`item ${i}: name "${name}" does not start with "${prefix}/"`);
    const previous = entries[i - 1];
    if (previous && !(previous.name < name)) fail(`item ${i}: names not in ascending order ("${name}")`);
    if (offset < tableEnd || offset > toc.length) fail(`item "${name}": data offset ${offset} out of range`);
    if (previous && offset <= previous.offset) fail(`item "${name}": data offset ${offset} not after the previous item's`);
    if ((headerSize + offset) % ALIGN !== 0) fail(`item "${name}": data offset ${offset} not aligned on ${ALIGN} bytes`);
    entries.push({ name, offset });
  }
  return {
    header: Buffer.from(data.subarray(0, headerSize)),
    prefix,
    items: entries.map((e, i) => ({
      name: e.name.slice(prefix.length + 1),
      data: toc.subarray(e.offset, entries[i + 1]?.offset ?? toc.length),
    })),
  };
}

/** The locales an English-only runtime keeps (root is every locale's last fallback). */
const KEPT_LOCALES = new Set(["root", "en", "en_US", "en_US_POSIX"]);
/** A locale's bundle: "de.res", "zh_Hant_TW.res", "coll/de__PHONEBOOK.res", "unit/sr_Latn.res". */
const LOCALE_BUNDLE = /^(?:.*\/)?([a-z]{2,3}(?:_[A-Za-z0-9]*)*)\.res$/;

/**
 * Whether an English-only runtime keeps this item (its name without the
 * package prefix), in the spirit of Node's small-icu build: every bundle
 * of a locale other than root, en, en_US and en_US_POSIX goes, at the top
 * and in every subtree (coll/, curr/, lang/, region/, zone/, unit/,
 * rbnf/, brkitr/...); so do the break dictionaries (.dict, for Thai,
 * Khmer, Chinese, Japanese...) and the legacy charset converters (.cnv:
 * UTF-8, UTF-16 and Latin-1 are algorithmic, no table). Everything else
 * stays: pool.res, res_index.res (its locale lists only make ICU look a
 * missing bundle up and fall back), supplementalData, zoneinfo64,
 * metaZones, timezoneTypes, the collation root (ucadata), normalization,
 * character properties, cnvalias.icu...
 */
export function keptInEnglishOnly(name: string): boolean {
  if (name.endsWith(".dict") || name.endsWith(".cnv")) return false;
  const locale = LOCALE_BUNDLE.exec(name)?.[1];
  if (locale === undefined || locale === "res_index") return true;
  return KEPT_LOCALES.has(locale);
}

function padTo(length: number): number {
  return (ALIGN - (length % ALIGN)) % ALIGN;
}

/**
 * A package with the same header and the chosen items, in their order,
 * laid out as ICU's package tool does: the table, the names, padding to
 * 16 bytes, each item padded to 16 bytes with 0xaa.
 */
export function buildIcuPackage(pkg: IcuPackage, items: readonly IcuItem[]): Buffer {
  const tableEnd = 4 + 8 * items.length;
  const names = items.map((item) => Buffer.from(`${pkg.prefix}/${item.name}\0`, "latin1"));
  const namesEnd = tableEnd + names.reduce((sum, n) => sum + n.length, 0);
  const dataStart = namesEnd + padTo(pkg.header.length + namesEnd);
  const table = Buffer.alloc(tableEnd);
  table.writeUInt32LE(items.length, 0);
  const parts: Buffer[] = [pkg.header, table, ...names, Buffer.alloc(dataStart - namesEnd, PAD)];
  let nameOffset = tableEnd;
  let offset = dataStart;
  items.forEach((item, i) => {
    table.writeUInt32LE(nameOffset, 4 + 8 * i);
    table.writeUInt32LE(offset, 8 + 8 * i);
    nameOffset += names[i]!.length;
    const pad = padTo(item.data.length);
    parts.push(item.data, Buffer.alloc(pad, PAD));
    offset += item.data.length + pad;
  });
  return Buffer.concat(parts);
}
