// Just enough of ELF64 (little-endian) to find a data symbol's bytes in an
// executable: the section headers, the symbol tables (.symtab, and
// .dynsym, which `strip` keeps) and their string tables. Used by
// trim-icu to find the ICU data node embeds; every offset read from the
// file is checked against its size.

/** A symbol's bytes in the file. */
export interface FileSymbol {
  name: string;
  /** Offset of its first byte in the file. */
  offset: number;
  size: number;
}

const SHT_PROGBITS = 1;
const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const SHN_LORESERVE = 0xff00;
const SECTION_HEADER_SIZE = 64;
const SYMBOL_SIZE = 24;

interface Section {
  type: number;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
}

/** A u64 of the file as a number, refused above what a file offset can be. */
export function u64(file: Buffer, at: number, what: string): number {
  const v = file.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`ELF: ${what} ${v} out of range`);
  return Number(v);
}

function checkRange(file: Buffer, offset: number, size: number, what: string): void {
  if (offset < 0 || size < 0 || offset + size > file.length) {
    throw new Error(`ELF: ${what} (offset ${offset}, ${size} bytes) lies outside the file (${file.length} bytes)`);
  }
}

/** Why `file` is not a little-endian ELF64 file, or null if it is one. */
export function notElf64(file: Buffer): string | null {
  if (file.length < 64 || file.readUInt32BE(0) !== 0x7f454c46) return "not an ELF file";
  if (file[4] !== 2 || file[5] !== 1) return "not a little-endian 64-bit ELF file";
  return null;
}

function sections(file: Buffer): Section[] {
  const problem = notElf64(file);
  if (problem) throw new Error(problem);
  const shoff = u64(file, 0x28, "section header offset");
  const shentsize = file.readUInt16LE(0x3a);
  const shnum = file.readUInt16LE(0x3c);
  if (shnum === 0) throw new Error("ELF: no section headers");
  if (shentsize !== SECTION_HEADER_SIZE) throw new Error(`ELF: section header size ${shentsize}, expected ${SECTION_HEADER_SIZE}`);
  checkRange(file, shoff, shnum * SECTION_HEADER_SIZE, "section headers");
  const list: Section[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * SECTION_HEADER_SIZE;
    list.push({
      type: file.readUInt32LE(at + 4),
      addr: file.readBigUInt64LE(at + 0x10),
      offset: u64(file, at + 0x18, `section ${i} offset`),
      size: u64(file, at + 0x20, `section ${i} size`),
      link: file.readUInt32LE(at + 0x28),
    });
  }
  return list;
}

/** The NUL-terminated string at `at` in a string table section. */
function tableString(file: Buffer, table: Section, at: number): string {
  if (at >= table.size) throw new Error(`ELF: symbol name offset ${at} outside its string table`);
  const start = table.offset + at;
  const end = file.indexOf(0, start);
  if (end < 0 || end >= table.offset + table.size) throw new Error("ELF: unterminated symbol name");
  return file.toString("latin1", start, end);
}

/**
 * The first symbol, in .symtab or .dynsym, whose name `matches` and that
 * has bytes in the file (defined in a PROGBITS section, inside it), or
 * null if there is none. Throws on a malformed file.
 */
export function findFileSymbol(file: Buffer, matches: (name: string) => boolean): FileSymbol | null {
  const all = sections(file);
  for (const table of all) {
    if (table.type !== SHT_SYMTAB && table.type !== SHT_DYNSYM) continue;
    checkRange(file, table.offset, table.size, "symbol table");
    const strings = all[table.link];
    if (!strings) throw new Error(`ELF: symbol table links to section ${table.link}, which does not exist`);
    checkRange(file, strings.offset, strings.size, "string table");
    for (let at = table.offset; at + SYMBOL_SIZE <= table.offset + table.size; at += SYMBOL_SIZE) {
      const name = tableString(file, strings, file.readUInt32LE(at));
      if (!matches(name)) continue;
      const shndx = file.readUInt16LE(at + 6);
      const section = shndx < SHN_LORESERVE ? all[shndx] : undefined;
      if (!section || section.type !== SHT_PROGBITS) continue;
      const value = file.readBigUInt64LE(at + 8);
      const size = u64(file, at + 16, `size of ${name}`);
      const inSection = value - section.addr;
      if (inSection < 0n || inSection + BigInt(size) > BigInt(section.size)) {
        throw new Error(`ELF: symbol ${name} lies outside its section`);
      }
      const offset = section.offset + Number(inSection);
      checkRange(file, offset, size, `symbol ${name}`);
      return { name, offset, size };
    }
  }
  return null;
}
