// Leaving zero pages out of an executable's file (src/boot/zero-pages.ts),
// on small hand-made ELF files: the loader's view is unchanged, the file
// shrinks by the whole pages of zeros, and every case it cannot handle
// safely leaves the file as it is and says why. The real thing (node, run
// and self-tested after trimming its ICU data) is in trim-icu.test.ts, and
// under dracut's strip and in a booted guest in the integration and boot
// tests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dropZeroPages } from "../../src/boot/zero-pages.js";
import { loadedBytes, programHeaders, sameLoadedImage, PT_LOAD, PT_NOTE, type Segment } from "../helpers/elf.js";

const PT_PHDR = 6;
const PT_TLS = 7;

/** A program header to write (alignment 0x1000 unless given). */
type Header = Omit<Segment, "align"> & { align?: number };

/**
 * An executable: the ELF header, `headers` at `at`, its segments' bytes
 * patterned (never zero) except where `zeros` says, and 0x80 bytes of
 * "section headers" after the last segment.
 */
function executable(headers: Header[], zeros: [number, number], size: number, at = 0x40): Buffer {
  const file = Buffer.alloc(size + 0x80);
  for (let i = 0x40; i < size; i++) file[i] = (i % 251) + 1;
  file.fill(0, zeros[0], zeros[1]);
  file.fill(0xee, size);
  file.writeUInt32BE(0x7f454c46, 0);
  file[4] = 2;
  file[5] = 1;
  file.writeUInt16LE(2, 0x10); // ET_EXEC
  file.writeBigUInt64LE(BigInt(at), 0x20);
  file.writeBigUInt64LE(BigInt(size), 0x28);
  file.writeUInt16LE(56, 0x36);
  file.writeUInt16LE(headers.length, 0x38);
  file.writeUInt16LE(64, 0x3a);
  file.writeUInt16LE(2, 0x3c);
  file.writeUInt16LE(1, 0x3e);
  headers.forEach((h, i) => {
    const o = at + i * 56;
    file.writeUInt32LE(h.type, o);
    file.writeUInt32LE(h.flags, o + 4);
    [h.offset, h.vaddr, h.vaddr, h.filesz, h.memsz, h.align ?? 0x1000].forEach((v, j) => file.writeBigUInt64LE(BigInt(v), o + 8 + 8 * j));
  });
  return file;
}

const R = 4;
const RW = 6;
const RX = 5;
/** As node's layout: headers, code, read-only data holding the zeros, then data and .bss (with TLS in it). */
const LAYOUT: Header[] = [
  { type: PT_PHDR, flags: R, offset: 0x40, vaddr: 0x400040, filesz: 6 * 56, memsz: 6 * 56, align: 8 },
  { type: PT_LOAD, flags: RX, offset: 0, vaddr: 0x400000, filesz: 0x1000, memsz: 0x1000 },
  { type: PT_LOAD, flags: R, offset: 0x1000, vaddr: 0x401000, filesz: 0x5000, memsz: 0x5000 },
  { type: PT_LOAD, flags: RW, offset: 0x6010, vaddr: 0x408010, filesz: 0x100, memsz: 0x300 },
  { type: PT_NOTE, flags: R, offset: 0x300, vaddr: 0x400300, filesz: 0x20, memsz: 0x20, align: 4 },
  { type: PT_TLS, flags: R, offset: 0x6010, vaddr: 0x408010, filesz: 0x8, memsz: 0x10, align: 8 },
];
const ZEROS: [number, number] = [0x1800, 0x4900];
const SIZE = 0x6110;

test("the whole pages of zeros leave the file; the loader sees the same bytes at every address", () => {
  const file = executable(LAYOUT, ZEROS, SIZE);
  const before = Buffer.from(file);
  const r = dropZeroPages(file, ...ZEROS);
  assert.equal(r.why, undefined);
  assert.ok(file.equals(before), "the input is not changed");
  // Pages 0x402000-0x404000 (file 0x2000-0x4000) go, and the 0x80 bytes of section headers.
  assert.equal(r.dropped, 0x2000);
  assert.equal(r.file.length, SIZE - 0x2000);
  assert.ok(sameLoadedImage(file, r.file));
  assert.ok(loadedBytes(r.file, 0x401800, 0x3100).every((b) => b === 0));
  const altered = Buffer.from(r.file);
  altered[0x2000] ^= 1; // the first byte after the zero pages
  assert.ok(!sameLoadedImage(file, altered), "the comparison sees a changed byte");

  const got = programHeaders(r.file).map(({ type, flags, offset, vaddr, filesz, memsz }) => ({ type, flags, offset, vaddr, filesz, memsz }));
  assert.deepEqual(got, [
    { type: PT_PHDR, flags: R, offset: 0x40, vaddr: 0x400040, filesz: 6 * 56, memsz: 6 * 56 },
    { type: PT_LOAD, flags: RX, offset: 0, vaddr: 0x400000, filesz: 0x1000, memsz: 0x1000 },
    // Split: the first half's memory runs over the zero pages, the second's bytes follow in the file.
    { type: PT_LOAD, flags: R, offset: 0x1000, vaddr: 0x401000, filesz: 0x1000, memsz: 0x3000 },
    { type: PT_LOAD, flags: R, offset: 0x2000, vaddr: 0x404000, filesz: 0x2000, memsz: 0x2000 },
    { type: PT_LOAD, flags: RW, offset: 0x4010, vaddr: 0x408010, filesz: 0x100, memsz: 0x300 },
    { type: PT_TLS, flags: R, offset: 0x4010, vaddr: 0x408010, filesz: 0x8, memsz: 0x10 },
  ]);
  // Every load's offset still matches its address modulo the page; no section headers remain.
  for (const p of programHeaders(r.file).filter((h) => h.type === PT_LOAD)) assert.equal(p.offset % 0x1000, p.vaddr % 0x1000);
  assert.deepEqual([r.file.readBigUInt64LE(0x28), r.file.readUInt16LE(0x3c), r.file.readUInt16LE(0x3e)], [0n, 0, 0]);
  // Before the cut, only the program headers and the section header fields differ; after it, the same bytes.
  assert.ok(r.file.subarray(0x40 + 6 * 56, 0x2000).equals(file.subarray(0x40 + 6 * 56, 0x2000)));
  assert.ok(r.file.subarray(0x2000).equals(file.subarray(0x4000, SIZE)));
});

test("another segment's larger alignment: offsets move by whole units of it, and stay congruent", () => {
  const aligned = LAYOUT.map((h) => (h.type === PT_LOAD && h.flags === RW ? { ...h, align: 0x2000 } : h));
  // Zeros over 0x401800-0x405900: three pages, but one whole 0x2000 unit.
  const zeros: [number, number] = [0x1800, 0x5900];
  const file = executable(aligned, zeros, SIZE);
  const r = dropZeroPages(file, ...zeros);
  assert.equal(r.dropped, 0x2000);
  assert.equal(r.file.length, SIZE - 0x2000);
  assert.ok(sameLoadedImage(file, r.file));
  for (const p of programHeaders(r.file).filter((h) => h.type === PT_LOAD)) {
    assert.equal(p.offset % p.align, p.vaddr % p.align, `load at 0x${p.vaddr.toString(16)}`);
  }
  const small = dropZeroPages(executable(aligned, [0x1800, 0x3900], SIZE), 0x1800, 0x3900);
  assert.deepEqual([small.dropped, small.why], [0, "the zeros fill no whole page"]);
});

test("what cannot be done safely leaves the file as it is, with the reason", () => {
  const file = executable(LAYOUT, ZEROS, SIZE);
  const changed = (edit: (b: Buffer) => void) => {
    const b = Buffer.from(file);
    edit(b);
    return b;
  };
  const header = (i: number, field: number) => 0x40 + i * 56 + field;
  const cases: [string, Buffer, number, number, string][] = [
    ["a script", Buffer.from("#!/bin/sh\n".padEnd(200, "#")), 10, 100, "not an ELF file"],
    ["32-bit", changed((b) => (b[4] = 1)), ...ZEROS, "not a little-endian 64-bit ELF file"],
    ["a relocatable object", changed((b) => b.writeUInt16LE(1, 0x10)), ...ZEROS, "ELF type 1 is not an executable"],
    ["program headers cut off", file.subarray(0, 0x100), 0x80, 0x90, "no usable program headers"],
    ["not zeros", changed((b) => (b[0x3000] = 1)), ...ZEROS, "byte 12288 is not zero"],
    ["across two segments", executable(LAYOUT, [0x800, 0x4900], SIZE), 0x800, 0x4900, "the zeros are not in one loaded segment"],
    ["a segment with .bss", changed((b) => b.writeBigUInt64LE(0x6000n, header(2, 40))), ...ZEROS, "the segment holding the zeros already has zero-filled memory"],
    ["code", changed((b) => b.writeUInt32LE(RX, header(2, 4))), ...ZEROS, "the segment holding the zeros is not read-only data"],
    ["writable data", changed((b) => b.writeUInt32LE(RW, header(2, 4))), ...ZEROS, "the segment holding the zeros is not read-only data"],
    ["program headers after the zeros", executable(LAYOUT, ZEROS, SIZE, 0x5800), ...ZEROS, "the program headers lie after the zeros"],
    ["under a page", file, 0x1800, 0x2800, "the zeros fill no whole page"],
    ["up to the segment's end", executable(LAYOUT, [0x1800, 0x6000], SIZE), 0x1800, 0x6000, "the zeros end their segment"],
    ["no note", changed((b) => b.writeUInt32LE(0x6474e551, header(4, 0))), ...ZEROS, "no PT_NOTE program header to give its slot"],
    ["another header over the zeros", changed((b) => b.writeBigUInt64LE(0x2100n, header(5, 8))), ...ZEROS, "another program header covers the zeros"],
    ["nothing given", file, 0x3000, 0x3000, "no zero bytes given"],
    ["an address out of range", changed((b) => b.writeBigUInt64LE(1n << 60n, header(2, 16))), ...ZEROS, "ELF: program header 2 address 1152921504606846976 out of range"],
  ];
  for (const [what, input, start, end, why] of cases) {
    const r = dropZeroPages(input, start, end);
    assert.deepEqual([r.dropped, r.why], [0, why], what);
    assert.equal(r.file, input, what);
  }
});
