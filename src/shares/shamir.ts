// Splitting a password into shares and combining them back. The field
// arithmetic is privy-io's audited shamir-secret-sharing (GF(2^8) with
// Vault's tables, coefficients and x coordinates from node:crypto); its
// shares are y bytes followed by x, ours carry x in the header.
import { randomBytes } from "node:crypto";
import { combine, split } from "shamir-secret-sharing";
import {
  CHECK_BYTES,
  MAX_SECRET_BYTES,
  MAX_SHARES,
  MAX_THRESHOLD,
  MIN_THRESHOLD,
  SET_ID_BYTES,
  ShareError,
  checkValue,
  encodeShare,
  verifyCombined,
  type Share,
} from "./format.js";

/** Throws a one-line ShareError unless 2 <= threshold <= 32 and threshold <= shares <= 255. */
export function checkSplit(threshold: number, shares: number): void {
  const ok = (n: number, max: number) => Number.isInteger(n) && n >= MIN_THRESHOLD && n <= max;
  if (!ok(threshold, MAX_THRESHOLD)) throw new ShareError(`threshold must be a whole number from ${MIN_THRESHOLD} to ${MAX_THRESHOLD}`);
  if (!ok(shares, MAX_SHARES)) throw new ShareError(`number of shares must be a whole number from ${MIN_THRESHOLD} to ${MAX_SHARES}`);
  if (threshold > shares) throw new ShareError(`threshold ${threshold} exceeds the number of shares ${shares}`);
}

/** N encoded shares of a fresh set, any `threshold` of which give back the password. */
export async function splitPassword(password: Uint8Array, threshold: number, shares: number): Promise<Buffer[]> {
  checkSplit(threshold, shares);
  if (password.length === 0) throw new ShareError("empty password");
  if (password.length > MAX_SECRET_BYTES) throw new ShareError(`password longer than ${MAX_SECRET_BYTES} bytes`);
  const setId = randomBytes(SET_ID_BYTES);
  // The library insists on a plain Uint8Array (a Buffer is refused).
  const value = new Uint8Array(password.length + CHECK_BYTES);
  value.set(password);
  value.set(checkValue(password, threshold, setId), password.length);
  try {
    const raw = await split(value, shares, threshold);
    return raw.map((r) => {
      const y = Buffer.from(r.subarray(0, r.length - 1));
      const encoded = encodeShare({ threshold, index: r[r.length - 1]!, setId, y });
      y.fill(0);
      r.fill(0);
      return encoded;
    });
  } finally {
    value.fill(0);
  }
}

/**
 * The password from exactly `threshold` shares of one set with distinct
 * indexes, or null when the check fails (a wrong or corrupted share).
 */
export async function combineShares(shares: readonly Share[]): Promise<Buffer | null> {
  const first = shares[0];
  if (!first) throw new ShareError("no shares to combine");
  for (const s of shares) {
    if (s.threshold !== first.threshold || !s.setId.equals(first.setId)) throw new ShareError("shares of different sets");
    if (s.y.length !== first.y.length) return null;
  }
  if (shares.length !== first.threshold) throw new ShareError(`${shares.length} shares given, threshold is ${first.threshold}`);
  if (new Set(shares.map((s) => s.index)).size !== shares.length) throw new ShareError("duplicate share index");
  const raw = shares.map((s) => {
    const r = new Uint8Array(s.y.length + 1);
    r.set(s.y);
    r[s.y.length] = s.index;
    return r;
  });
  try {
    return verifyCombined(await combine(raw), first.threshold, first.setId);
  } finally {
    for (const r of raw) r.fill(0);
  }
}
