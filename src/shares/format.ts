// The share format: what a server holds (inside its OpenPGP message) when a
// client's password is split k-of-n. Servers never look inside; only the
// client and mandos-keygen do. Pure.
//
//   offset  size  field
//   0       14    magic "\0\xffmandos-share": NUL-led and not UTF-8, so no
//                 real password (typed text) starts with it
//   14      1     format version (1)
//   15      1     K, the threshold (2-32: see MAX_THRESHOLD)
//   16      1     this share's index, its x coordinate (1-255)
//   17      16    set identifier (random per split)
//   33      rest  y: Shamir share of (password || check), one byte per byte
//
// The check is SHA-256 over a label, K, the set identifier and the
// password, appended to the password *before* splitting: fewer than K
// shares say nothing about it (Shamir hides the whole shared value), so it
// cannot serve to guess a weak password offline, while after combining it
// tells a right combination from a wrong one (a wrong share, a corrupted
// one, or a header changed in transit: K and the set id are bound in).
import { createHash, timingSafeEqual } from "node:crypto";

export const MAGIC = Buffer.from("\0\xffmandos-share", "latin1");
export const VERSION = 1;
export const SET_ID_BYTES = 16;
export const CHECK_BYTES = 32;
export const HEADER_BYTES = MAGIC.length + 3 + SET_ID_BYTES;
/** Larger passwords are not Mandos passwords (the client prints at most 64 KiB). */
export const MAX_SECRET_BYTES = 32 * 1024;
export const MIN_THRESHOLD = 2;
/**
 * Combining costs K² steps per byte, and the client combines what anyone
 * on the link sends: K = 255 with a 32 KiB share took 16 s per try. At 32
 * one try of the largest share is a fraction of a second.
 */
export const MAX_THRESHOLD = 32;
export const MAX_SHARES = 255;

export class ShareError extends Error {}

export interface Share {
  threshold: number;
  index: number;
  setId: Buffer;
  /** The share of (password || check); wipe it after use. */
  y: Buffer;
}

/** Only a secret with the magic is a share; anything else is a password, as for Mandos. */
export function isShare(secret: Uint8Array): boolean {
  return secret.length >= MAGIC.length && MAGIC.equals(Buffer.from(secret.buffer, secret.byteOffset, MAGIC.length));
}

/** A share's threshold and index (header numbers only, for reports), or null for anything else. */
export function shareHeader(secret: Uint8Array): { threshold: number; index: number } | null {
  if (!isShare(secret) || secret.length < HEADER_BYTES) return null;
  return { threshold: secret[MAGIC.length + 1]!, index: secret[MAGIC.length + 2]! };
}

export function encodeShare(s: Share): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header[MAGIC.length] = VERSION;
  header[MAGIC.length + 1] = s.threshold;
  header[MAGIC.length + 2] = s.index;
  s.setId.copy(header, MAGIC.length + 3);
  return Buffer.concat([header, s.y]);
}

/**
 * Parse a share strictly. Errors say what is wrong with the layout, never
 * a byte of the share. The returned y is a copy; the caller wipes both.
 */
export function parseShare(data: Uint8Array): Share {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (!isShare(buf)) throw new ShareError("not a share (no share magic)");
  if (buf.length < HEADER_BYTES) throw new ShareError(`share too short (${buf.length} bytes)`);
  const version = buf[MAGIC.length]!;
  if (version !== VERSION) throw new ShareError(`unknown share format version ${version}`);
  const threshold = buf[MAGIC.length + 1]!;
  if (threshold < MIN_THRESHOLD) throw new ShareError(`share threshold ${threshold} below ${MIN_THRESHOLD}`);
  if (threshold > MAX_THRESHOLD) throw new ShareError(`share threshold ${threshold} above ${MAX_THRESHOLD}`);
  const index = buf[MAGIC.length + 2]!;
  if (index === 0) throw new ShareError("share index 0");
  const yLength = buf.length - HEADER_BYTES;
  if (yLength < 1 + CHECK_BYTES) throw new ShareError(`share too short (${buf.length} bytes)`);
  if (yLength > MAX_SECRET_BYTES + CHECK_BYTES) throw new ShareError(`share too long (${buf.length} bytes)`);
  return {
    threshold,
    index,
    setId: Buffer.from(buf.subarray(MAGIC.length + 3, HEADER_BYTES)),
    y: Buffer.from(buf.subarray(HEADER_BYTES)),
  };
}

/** The check value of a password in a set: appended to it before splitting. */
export function checkValue(password: Uint8Array, threshold: number, setId: Buffer): Buffer {
  return createHash("sha256")
    .update("mandos-share v1 check\0")
    .update(Uint8Array.of(threshold))
    .update(setId)
    .update(password)
    .digest();
}

/** Split a combined value into the password and whether its check holds; wipes what it drops. */
export function verifyCombined(value: Uint8Array, threshold: number, setId: Buffer): Buffer | null {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const password = Buffer.from(buf.subarray(0, buf.length - CHECK_BYTES));
  const expected = checkValue(password, threshold, setId);
  const ok = timingSafeEqual(expected, buf.subarray(buf.length - CHECK_BYTES));
  buf.fill(0);
  if (ok) return password;
  password.fill(0);
  return null;
}
