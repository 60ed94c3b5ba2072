// Leaving a run of zero bytes out of an executable's file (ELF64,
// little-endian): the segment holding them is split in two around their
// whole pages, and the first half's memory size covers them, so the loader
// maps zero pages there, as it does for .bss, instead of reading zeros from
// the file. trim-icu uses it for the 27 MB that English-only ICU data
// leaves zeroed in node: the initramfs then unpacks 27 MB less at every
// boot, before /init can start (docs/design.md, "A lean runtime at boot").
//
// The split needs one more program header: the first PT_NOTE's slot is
// taken (build id and ABI tag notes: the kernel does not read them, and
// only `ld.so PROGRAM` checks the ABI tag; the build id is lost to core
// dump and debuginfo tools). The section headers go: they would describe
// file bytes that no longer exist, and without them `strip` (binutils)
// refuses the file and `eu-strip` leaves it as it is, so dracut's strip
// step cannot rewrite it. Nothing at run time reads section headers.
//
// The kernel maps the zero pages of a PT_LOAD's memory size as anonymous
// memory, writable as .bss is (ld.so, running a program itself, maps them
// with the segment's own protection), and with the segment's execute
// permission: so only a read-only segment is split, never one with code.

import { notElf64, u64 } from "./elf.js";

const PT_LOAD = 1;
const PT_NOTE = 4;
const PF_R = 4;
const ET_EXEC = 2;
const ET_DYN = 3;
const PROGRAM_HEADER_SIZE = 56;
const PAGE = 4096;

interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  paddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface ZeroPages {
  /** The new file, or `file` itself when nothing was dropped. */
  file: Buffer;
  /** Bytes of zero pages left out of the file (0: none, and `why` says why); the section headers and unloaded sections after the last segment go too. */
  dropped: number;
  why?: string;
}

function readProgramHeaders(file: Buffer): { at: number; headers: ProgramHeader[] } | string {
  const problem = notElf64(file);
  if (problem) return problem;
  const type = file.readUInt16LE(0x10);
  if (type !== ET_EXEC && type !== ET_DYN) return `ELF type ${type} is not an executable`;
  const at = u64(file, 0x20, "program header offset");
  const count = file.readUInt16LE(0x38);
  if (file.readUInt16LE(0x36) !== PROGRAM_HEADER_SIZE) return "unexpected program header size";
  if (count === 0 || count === 0xffff || at + count * PROGRAM_HEADER_SIZE > file.length) return "no usable program headers";
  const headers: ProgramHeader[] = [];
  for (let i = 0; i < count; i++) {
    const h = at + i * PROGRAM_HEADER_SIZE;
    const field = (offset: number, name: string) => u64(file, h + offset, `program header ${i} ${name}`);
    headers.push({
      type: file.readUInt32LE(h),
      flags: file.readUInt32LE(h + 4),
      offset: field(8, "offset"),
      vaddr: field(16, "address"),
      paddr: field(24, "physical address"),
      filesz: field(32, "file size"),
      memsz: field(40, "memory size"),
      align: field(48, "alignment"),
    });
  }
  return { at, headers };
}

function writeProgramHeader(file: Buffer, at: number, p: ProgramHeader): void {
  file.writeUInt32LE(p.type, at);
  file.writeUInt32LE(p.flags, at + 4);
  const fields = [p.offset, p.vaddr, p.paddr, p.filesz, p.memsz, p.align];
  fields.forEach((v, i) => file.writeBigUInt64LE(BigInt(v), at + 8 + 8 * i));
}

const overlaps = (a: number, aEnd: number, b: number, bEnd: number) => a < bEnd && b < aEnd;

/**
 * `file` without the whole pages of the zero bytes at [start, end) (file
 * offsets), which the loader then maps as zero pages; `file` itself is not
 * changed. When that cannot be done safely, `file` as it is, and why.
 */
export function dropZeroPages(file: Buffer, start: number, end: number): ZeroPages {
  const keep = (why: string): ZeroPages => ({ file, dropped: 0, why });
  let read;
  try {
    read = readProgramHeaders(file);
  } catch (err) {
    return keep((err as Error).message); // a value out of range
  }
  if (typeof read === "string") return keep(read);
  const { at, headers } = read;
  if (start < 0 || end > file.length || start >= end) return keep("no zero bytes given");
  for (let i = start; i < end; i++) if (file[i] !== 0) return keep(`byte ${i} is not zero`);

  const loads = headers.filter((p) => p.type === PT_LOAD);
  const segment = loads.find((p) => p.offset <= start && end <= p.offset + p.filesz);
  if (!segment) return keep("the zeros are not in one loaded segment");
  if (segment.memsz !== segment.filesz) return keep("the segment holding the zeros already has zero-filled memory");
  if (segment.flags !== PF_R) return keep("the segment holding the zeros is not read-only data");
  // Offsets move by whole alignment units, so every segment's offset stays congruent to its address.
  const unit = Math.max(PAGE, ...loads.map((p) => p.align));
  const holeStart = Math.ceil((segment.vaddr + start - segment.offset) / unit) * unit;
  const holeEnd = Math.floor((segment.vaddr + end - segment.offset) / unit) * unit;
  if (holeEnd <= holeStart) return keep("the zeros fill no whole page");
  if (holeEnd >= segment.vaddr + segment.filesz) return keep("the zeros end their segment");
  const dropped = holeEnd - holeStart;
  const cut = segment.offset + (holeStart - segment.vaddr);
  const cutEnd = cut + dropped;

  const note = headers.find((p) => p.type === PT_NOTE);
  if (!note) return keep("no PT_NOTE program header to give its slot");
  if (at + headers.length * PROGRAM_HEADER_SIZE > cut) return keep("the program headers lie after the zeros");
  for (const p of headers) {
    if (p !== segment && p !== note && p.filesz > 0 && overlaps(p.offset, p.offset + p.filesz, cut, cutEnd)) {
      return keep("another program header covers the zeros");
    }
  }

  // The new headers: the segment split in two (loads stay sorted by address), the note's slot gone.
  const first = { ...segment, filesz: holeStart - segment.vaddr, memsz: holeEnd - segment.vaddr };
  const second = {
    ...segment,
    offset: cut,
    vaddr: holeEnd,
    paddr: segment.paddr + (holeEnd - segment.vaddr),
    filesz: segment.vaddr + segment.filesz - holeEnd,
    memsz: segment.vaddr + segment.memsz - holeEnd,
  };
  // (A header with no file bytes inside the cut points at the cut.)
  const moved = (p: ProgramHeader) => (p.offset >= cutEnd ? { ...p, offset: p.offset - dropped } : p.offset > cut ? { ...p, offset: cut } : p);
  const result = headers.filter((p) => p !== note).flatMap((p) => (p === segment ? [first, second] : [moved(p)]));
  // Up to the last byte any program header needs: section headers and unloaded sections go.
  const length = Math.max(...result.map((p) => p.offset + p.filesz));
  const out = Buffer.concat([file.subarray(0, cut), file.subarray(cutEnd, length + dropped)]);
  result.forEach((p, i) => writeProgramHeader(out, at + i * PROGRAM_HEADER_SIZE, p));
  out.writeBigUInt64LE(0n, 0x28); // e_shoff
  out.writeUInt16LE(0, 0x3c); // e_shnum
  out.writeUInt16LE(0, 0x3e); // e_shstrndx
  return { file: out, dropped };
}
