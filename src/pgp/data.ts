// OpenPGP data arrives either ASCII-armored or binary; mandos-keygen
// writes armored key files, the server sends binary secrets, but older or
// hand-made setups use the other form, so every reader accepts both.

export type PgpInput = string | Uint8Array;

const ARMOR_START = "-----BEGIN PGP ";

/** The armored text if `data` is ASCII armor, else undefined (binary). */
export function armoredText(data: PgpInput): string | undefined {
  if (typeof data === "string") return data;
  // Look past leading whitespace only; armor is plain ASCII, so latin1
  // decoding is exact for the part that matters.
  let i = 0;
  while (i < data.length && (data[i] === 0x20 || data[i] === 0x09 || data[i] === 0x0a || data[i] === 0x0d)) i++;
  const head = Buffer.from(data.buffer, data.byteOffset + i, Math.min(ARMOR_START.length, data.length - i));
  if (head.toString("latin1") !== ARMOR_START) return undefined;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("latin1");
}

/** The armor block type ("MESSAGE", "PUBLIC KEY BLOCK", ...) of armored text. */
export function armorType(text: string): string | undefined {
  return /-----BEGIN PGP ([A-Z ,/0-9]+)-----/.exec(text)?.[1];
}

/**
 * Whether the first byte can start an OpenPGP packet: bit 7 is always set
 * in a packet header (RFC 4880 4.2), which plain text and most other
 * formats never have.
 */
export function looksLikePacket(data: Uint8Array): boolean {
  return data.length > 1 && (data[0]! & 0x80) !== 0;
}
