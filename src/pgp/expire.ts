// Key expiry in gpg's Expire-Date syntax, which Debian's mandos-keygen
// passes through from --expire: "0" (never), a count of days, or a count
// with a unit (d, w, m, y), "seconds=N", or an ISO date. Pure: `now` is
// passed in.

export class ExpireError extends Error {}

const DAY = 86400;
const UNIT: Record<string, number> = { d: DAY, w: 7 * DAY, m: 30 * DAY, y: 365 * DAY };

/** Seconds from `now` until the key expires; 0 means it never does. */
export function parseExpire(text: string, now: Date): number {
  const value = text.trim().toLowerCase();
  if (value === "") throw new ExpireError("--expire: empty key expiration");
  if (value === "0" || value === "none" || value === "never") return 0;
  let m = /^(\d+)([dwmy]?)$/.exec(value);
  if (m) return checked(Number(m[1]) * UNIT[m[2] || "d"]!, text);
  m = /^seconds=(\d+)$/.exec(value);
  if (m) return checked(Number(m[1]), text);
  // ISO 8601 date, or gpg's compact date-time form.
  m = /^(\d{4})-?(\d{2})-?(\d{2})(?:t(\d{2}):?(\d{2}):?(\d{2}))?$/.exec(value);
  if (m) {
    const [, y, mo, d, h = "0", mi = "0", s = "0"] = m;
    const when = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
    const date = new Date(when);
    if (Number.isNaN(when) || date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d)) {
      throw new ExpireError(`--expire: not a valid date: ${JSON.stringify(text)}`);
    }
    const seconds = Math.floor((when - now.getTime()) / 1000);
    if (seconds <= 0) throw new ExpireError(`--expire: date is in the past: ${JSON.stringify(text)}`);
    return checked(seconds, text);
  }
  throw new ExpireError(`--expire: not a gpg expiry time (0, N, Nd, Nw, Nm, Ny, seconds=N or YYYY-MM-DD): ${JSON.stringify(text)}`);
}

function checked(seconds: number, text: string): number {
  // OpenPGP stores expiry as 32-bit seconds after creation.
  if (seconds <= 0 || seconds > 0xffffffff) throw new ExpireError(`--expire: out of range: ${JSON.stringify(text)}`);
  return seconds;
}
