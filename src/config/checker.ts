// Run-time expansion of a client's checker command. After the load-time
// pass, the template still holds "%(attr)s" references (written "%%(attr)s"
// in clients.conf); when a checker starts, each becomes the client's
// attribute, formatted as Mandos (Python) prints it and quoted for /bin/sh.

/** Attributes Mandos 1.8 offers to checkers; "dbus_object_path" only with D-Bus. */
export const RUNTIME_EXPANSIONS: readonly string[] = [
  "approval_delay",
  "approval_duration",
  "created",
  "enabled",
  "expires",
  "key_id",
  "fingerprint",
  "host",
  "interval",
  "last_approval_request",
  "last_checked_ok",
  "last_enabled",
  "name",
  "timeout",
  "dbus_object_path",
];

export type CheckerValue = string | number | boolean | null;

export class CheckerTemplateError extends Error {
  override name = "CheckerTemplateError";
}

/** Python's shlex.quote(): safe words as they are, anything else in single quotes. */
export function shellQuote(s: string): string {
  if (s === "") return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

/** How Python's str() prints a value: True/False, None, numbers, text as is. */
function pythonStr(value: CheckerValue): string {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  return String(value);
}

/** One "%…" directive: "%%", or "%(name)" with optional flags, width, precision and length, then a conversion letter. */
const DIRECTIVE = /%(?:(%)|\(([^)]*)\)([-+ #0]*)(\d*)(?:\.(\d*))?[hlL]?([a-zA-Z%]?))/y;

interface Piece {
  literal?: string;
  name?: string;
  leftAlign?: boolean;
  width?: number;
  precision?: number;
}

function parseTemplate(template: string): Piece[] {
  const pieces: Piece[] = [];
  let pos = 0;
  while (pos < template.length) {
    const percent = template.indexOf("%", pos);
    if (percent < 0) {
      pieces.push({ literal: template.slice(pos) });
      break;
    }
    if (percent > pos) pieces.push({ literal: template.slice(pos, percent) });
    DIRECTIVE.lastIndex = percent;
    const m = DIRECTIVE.exec(template);
    if (m?.[1]) {
      pieces.push({ literal: "%" });
    } else if (m && m[6] === "s") {
      pieces.push({
        name: m[2]!,
        leftAlign: m[3]!.includes("-"),
        width: m[4] ? Number(m[4]) : 0,
        ...(m[5] !== undefined ? { precision: Number(m[5] || "0") } : {}),
      });
    } else if (m && m[6] === "") {
      throw new CheckerTemplateError(`checker has an incomplete "%(${m[2]})" directive (write %%(${m[2]})s in clients.conf)`);
    } else if (m) {
      throw new CheckerTemplateError(`checker uses "%(${m[2]})${m[6]}"; only %(name)s is supported`);
    } else {
      throw new CheckerTemplateError(
        'checker has a "%" not followed by "%" or "(name)s" (a literal percent sign is "%%%%" in clients.conf)',
      );
    }
    pos = percent + (m?.[0].length ?? 1);
  }
  return pieces;
}

/**
 * Check a checker template at load time, so a mistake is reported when the
 * configuration is read rather than when the first checker would run.
 */
export function validateCheckerTemplate(template: string, names: readonly string[] = RUNTIME_EXPANSIONS): void {
  for (const piece of parseTemplate(template)) {
    if (piece.name !== undefined && !names.includes(piece.name)) {
      throw new CheckerTemplateError(
        `checker refers to %(${piece.name})s, which is not a client attribute (known: ${names.join(", ")})`,
      );
    }
  }
}

/**
 * Expand "%(name)s" with attrs[name], printed as Python's str() would and
 * shell-quoted; "%%" becomes "%". An unknown name or a malformed directive
 * throws CheckerTemplateError.
 */
export function expandChecker(template: string, attrs: Readonly<Record<string, CheckerValue>>): string {
  let out = "";
  for (const piece of parseTemplate(template)) {
    if (piece.literal !== undefined) {
      out += piece.literal;
      continue;
    }
    const name = piece.name!;
    if (!Object.prototype.hasOwnProperty.call(attrs, name)) {
      throw new CheckerTemplateError(
        `checker refers to %(${name})s, which is not a client attribute (known: ${Object.keys(attrs).join(", ")})`,
      );
    }
    let text = shellQuote(pythonStr(attrs[name]!));
    if (piece.precision !== undefined) text = text.slice(0, piece.precision);
    if (piece.width) text = piece.leftAlign ? text.padEnd(piece.width) : text.padStart(piece.width);
    out += text;
  }
  return out;
}

/** Python's str(datetime.timedelta): "0:05:00", "1 day, 2:00:00", "0:00:01.500000". */
export function pythonTimedelta(ms: number): string {
  const micros = Math.round(ms * 1000);
  const microsPerDay = 86_400_000_000;
  const days = Math.floor(micros / microsPerDay);
  let rest = micros - days * microsPerDay;
  const fraction = rest % 1_000_000;
  rest = (rest - fraction) / 1_000_000;
  const hms = `${Math.floor(rest / 3600)}:${String(Math.floor(rest / 60) % 60).padStart(2, "0")}:${String(rest % 60).padStart(2, "0")}`;
  const dayText = days ? `${days} day${Math.abs(days) === 1 ? "" : "s"}, ` : "";
  return dayText + hms + (fraction ? `.${String(fraction).padStart(6, "0")}` : "");
}

/** Python's str() of a naive UTC datetime.datetime: "2024-01-02 03:04:05.006000"; null is "None". */
export function pythonDatetime(date: Date | null): string {
  if (date === null) return "None";
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const text =
    `${pad(date.getUTCFullYear(), 4)}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}`;
  const ms = date.getUTCMilliseconds();
  return ms ? `${text}.${pad(ms * 1000, 6)}` : text;
}

/** A client's state as the server knows it, for checkerAttributes(). */
export interface CheckerClientState {
  name: string;
  host: string;
  keyId: string | null;
  fingerprint: string | null;
  enabled: boolean;
  timeoutMs: number;
  intervalMs: number;
  approvalDelayMs: number;
  approvalDurationMs: number;
  created: Date;
  expires: Date | null;
  lastEnabled: Date | null;
  lastCheckedOk: Date | null;
  lastApprovalRequest: Date | null;
  /** Present only when the server offers D-Bus, as in Mandos. */
  dbusObjectPath?: string | null;
}

/**
 * The attributes for expandChecker(), printed exactly as Mandos 1.8 prints
 * them (durations like "0:05:00", times like "2024-01-02 03:04:05", "None").
 */
export function checkerAttributes(c: CheckerClientState): Record<string, CheckerValue> {
  const attrs: Record<string, CheckerValue> = {
    approval_delay: pythonTimedelta(c.approvalDelayMs),
    approval_duration: pythonTimedelta(c.approvalDurationMs),
    created: pythonDatetime(c.created),
    enabled: c.enabled,
    expires: pythonDatetime(c.expires),
    key_id: c.keyId ?? "",
    fingerprint: c.fingerprint ?? "",
    host: c.host,
    interval: pythonTimedelta(c.intervalMs),
    last_approval_request: pythonDatetime(c.lastApprovalRequest),
    last_checked_ok: pythonDatetime(c.lastCheckedOk),
    last_enabled: pythonDatetime(c.lastEnabled),
    name: c.name,
    timeout: pythonTimedelta(c.timeoutMs),
  };
  if (c.dbusObjectPath != null) attrs.dbus_object_path = c.dbusObjectPath;
  return attrs;
}
