// Durations as Mandos 1.8 reads them (timeout, interval, approval_delay, …):
// first as an RFC 3339 duration ("PT5M", "P1DT2H", "P2W"), then, failing that,
// in the older form of whitespace-separated numbers with a unit letter
// ("5m 30s"; units s m h d w). Values are returned in milliseconds.
import { parsePythonInt, pySplit } from "./configparser.js";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

export class DurationError extends Error {
  override name = "DurationError";
}

type Part = "P" | "Y" | "Mo" | "W" | "D" | "T" | "H" | "Mi" | "S" | "end";

/** Size of each unit; Mandos counts a year as 52 weeks and a month as 4 weeks. */
const UNIT_MS: Partial<Record<Part, number>> = {
  Y: 52 * WEEK,
  Mo: 4 * WEEK,
  W: WEEK,
  D: DAY,
  H: HOUR,
  Mi: MINUTE,
  S: SECOND,
};

/**
 * Which parts may follow which, as in Mandos's parser (RFC 3339 Appendix A,
 * except that, like Mandos, no "T…" part may follow years or months).
 */
const FOLLOWERS: Record<Part, readonly Part[]> = {
  P: ["Y", "Mo", "D", "T", "W"],
  Y: ["Mo", "end"],
  Mo: ["D", "end"],
  D: ["T", "end"],
  T: ["H", "Mi", "S"],
  H: ["Mi", "end"],
  Mi: ["S", "end"],
  S: ["end"],
  W: ["end"],
  end: [],
};

/** The letter ending a part; months and minutes share "M", told apart by position. */
const LETTER: Record<Part, string> = {
  P: "P",
  Y: "Y",
  Mo: "M",
  W: "W",
  D: "D",
  T: "T",
  H: "H",
  Mi: "M",
  S: "S",
  end: "",
};

/** An RFC 3339 duration in milliseconds, or undefined if `s` is not one. */
function parseRfc3339(s: string): number | undefined {
  if (!s.startsWith("P")) return undefined;
  let rest = s.slice(1);
  let part: Part = "P";
  let total = 0;
  while (part !== "end") {
    let matched: Part | undefined;
    for (const candidate of FOLLOWERS[part]) {
      if (candidate === "end") {
        if (rest === "") matched = "end";
      } else if (candidate === "T") {
        if (rest.startsWith("T")) {
          rest = rest.slice(1);
          matched = "T";
        }
      } else {
        const m = /^(\d+)(.)/.exec(rest);
        if (m && m[2] === LETTER[candidate]) {
          total += Number(m[1]) * UNIT_MS[candidate]!;
          rest = rest.slice(m[0].length);
          matched = candidate;
        }
      }
      if (matched) break;
    }
    if (!matched) return undefined;
    part = matched;
  }
  return total;
}

const OLD_UNITS: Readonly<Record<string, number>> = { s: SECOND, m: MINUTE, h: HOUR, d: DAY, w: WEEK };

const HINT = 'use an RFC 3339 duration like "PT5M" or "P1DT2H", or e.g. "5m 30s"';

/**
 * Parse a duration the way Mandos's string_to_delta() does and return
 * milliseconds. An empty string is zero, as in Mandos. Throws DurationError
 * with a one-line message naming the text.
 */
export function parseDuration(s: string): number {
  let total = parseRfc3339(s);
  if (total === undefined) {
    total = 0;
    for (const word of pySplit(s)) {
      const unit = word.slice(-1);
      const count = parsePythonInt(word.slice(0, -1));
      if (count === undefined) {
        throw new DurationError(`not a duration: ${JSON.stringify(s)} (${HINT})`);
      }
      const size = OLD_UNITS[unit];
      if (size === undefined) {
        throw new DurationError(`not a duration: ${JSON.stringify(s)}: unknown unit "${unit}" (${HINT})`);
      }
      total += count * size;
    }
  }
  if (!Number.isSafeInteger(total)) throw new DurationError(`duration too long: ${JSON.stringify(s)}`);
  // Mandos accepts "-5m"; a negative timeout or interval has no meaning.
  if (total < 0) throw new DurationError(`duration is negative: ${JSON.stringify(s)}`);
  return total;
}

/**
 * An RFC 3339 duration for a number of milliseconds, in days, hours, minutes
 * and seconds ("PT0S", "PT5M", "P1DT2H30M"). Whole seconds give text that
 * parseDuration() reads back exactly; a fraction of a second is written as
 * ISO 8601 allows ("PT1.5S"), which Mandos itself would not read.
 */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`not a duration in milliseconds: ${ms}`);
  const days = Math.floor(ms / DAY);
  const hours = Math.floor((ms % DAY) / HOUR);
  const minutes = Math.floor((ms % HOUR) / MINUTE);
  const seconds = Math.floor((ms % MINUTE) / SECOND);
  const millis = ms % SECOND;
  let time = "";
  if (hours) time += `${hours}H`;
  // RFC 3339 allows seconds after hours only by way of minutes ("PT1H0M30S").
  if (minutes || (hours && (seconds || millis))) time += `${minutes}M`;
  if (millis) time += `${seconds}.${String(millis).padStart(3, "0").replace(/0+$/, "")}S`;
  else if (seconds || (!days && !time)) time += `${seconds}S`;
  return `P${days ? `${days}D` : ""}${time ? `T${time}` : ""}`;
}
