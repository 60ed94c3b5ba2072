// The loader's view of an ELF64 executable, for tests: its loaded segments,
// and the bytes a program sees at an address (file bytes, then zeros up to
// each segment's memory size), whatever the file's layout.

export interface Segment {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export const PT_LOAD = 1;
export const PT_NOTE = 4;

export function programHeaders(file: Buffer): Segment[] {
  const at = Number(file.readBigUInt64LE(0x20));
  const count = file.readUInt16LE(0x38);
  return Array.from({ length: count }, (_, i) => {
    const h = at + i * 56;
    const n = (o: number) => Number(file.readBigUInt64LE(h + o));
    return { type: file.readUInt32LE(h), flags: file.readUInt32LE(h + 4), offset: n(8), vaddr: n(16), filesz: n(32), memsz: n(40), align: n(48) };
  });
}

/** The `length` bytes a program sees from address `vaddr`; throws where no segment maps one. */
export function loadedBytes(file: Buffer, vaddr: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  const loads = programHeaders(file).filter((p) => p.type === PT_LOAD);
  let done = 0;
  while (done < length) {
    const address = vaddr + done;
    const s = loads.find((p) => p.vaddr <= address && address < p.vaddr + p.memsz);
    if (!s) throw new Error(`address 0x${address.toString(16)} is not mapped`);
    const take = Math.min(length - done, s.vaddr + s.memsz - address);
    const inSegment = address - s.vaddr;
    const fromFile = Math.max(0, Math.min(take, s.filesz - inSegment));
    if (fromFile > 0) file.copy(out, done, s.offset + inSegment, s.offset + inSegment + fromFile);
    done += take; // the rest of `take` stays zero
  }
  return out;
}

/**
 * Whether two executables load the same bytes at every address either maps,
 * but for their ELF and program headers (mapped with the first segment).
 */
export function sameLoadedImage(a: Buffer, b: Buffer): boolean {
  const loads = (f: Buffer) => programHeaders(f).filter((p) => p.type === PT_LOAD);
  const headers = (f: Buffer) => {
    const first = loads(f).find((p) => p.offset === 0);
    const end = Number(f.readBigUInt64LE(0x20)) + f.readUInt16LE(0x38) * 56;
    return first ? [first.vaddr, first.vaddr + end] : [0, 0];
  };
  const [hStart, hEnd] = [headers(a), headers(b)].reduce(([s, e], [s2, e2]) => [Math.min(s, s2), Math.max(e, e2)]);
  const image = (f: Buffer, vaddr: number, size: number) => {
    const bytes = loadedBytes(f, vaddr, size);
    bytes.fill(0, Math.max(0, hStart - vaddr), Math.max(0, Math.min(size, hEnd - vaddr)));
    return bytes;
  };
  return [...loads(a), ...loads(b)].every((p) => image(a, p.vaddr, p.memsz).equals(image(b, p.vaddr, p.memsz)));
}
