// mandos-ctl's output, byte for byte as Debian's mandos-ctl prints it: the
// client table (padded columns joined by one space, trailing spaces kept)
// and the JSON dump (Python's json.dumps with indent=4, ASCII only).

export type PropertyValue = string | number | boolean;
export type ClientProperties = Map<string, PropertyValue>;

export const ALL_KEYWORDS = [
  "Name",
  "Enabled",
  "Timeout",
  "LastCheckedOK",
  "Created",
  "Interval",
  "Host",
  "KeyID",
  "Fingerprint",
  "CheckerRunning",
  "LastEnabled",
  "ApprovalPending",
  "ApprovedByDefault",
  "LastApprovalRequest",
  "ApprovalDelay",
  "ApprovalDuration",
  "Checker",
  "ExtendedTimeout",
  "Expires",
  "LastCheckerStatus",
] as const;

export const DEFAULT_KEYWORDS = ["Name", "Enabled", "Timeout", "LastCheckedOK"] as const;

const HEADERS: Record<string, string> = {
  Name: "Name",
  Enabled: "Enabled",
  Timeout: "Timeout",
  LastCheckedOK: "Last Successful Check",
  LastApprovalRequest: "Last Approval Request",
  Created: "Created",
  Interval: "Interval",
  Host: "Host",
  Fingerprint: "Fingerprint",
  KeyID: "Key ID",
  CheckerRunning: "Check Is Running",
  LastEnabled: "Last Enabled",
  ApprovalPending: "Approval Is Pending",
  ApprovedByDefault: "Approved By Default",
  ApprovalDelay: "Approval Delay",
  ApprovalDuration: "Approval Duration",
  Checker: "Checker",
  ExtendedTimeout: "Extended Timeout",
  Expires: "Expires",
  LastCheckerStatus: "Last Checker Status",
};

const DURATIONS = new Set(["Timeout", "Interval", "ApprovalDelay", "ApprovalDuration", "ExtendedTimeout"]);

/** "[DAYST]HH:MM:SS", whole seconds, as mandos-ctl shows durations. */
export function millisecondsToString(ms: number): string {
  const totalSeconds = Math.floor(ms / 1000);
  const days = Math.floor(totalSeconds / 86400);
  const s = totalSeconds % 86400;
  const two = (n: number) => String(n).padStart(2, "0");
  return `${days ? `${days}T` : ""}${two(Math.floor(s / 3600))}:${two(Math.floor((s % 3600) / 60))}:${two(s % 60)}`;
}

export function valueToString(value: PropertyValue | undefined, keyword: string): string {
  if (typeof value === "boolean") return value ? "Yes" : "No";
  if (DURATIONS.has(keyword) && typeof value === "number") return millisecondsToString(value);
  return value === undefined ? "" : String(value);
}

/** Length in code points, as Python's len() and str.format() count. */
const width = (s: string) => [...s].length;
const pad = (s: string, w: number) => s + " ".repeat(Math.max(0, w - width(s)));

export function formatTable(clients: readonly ClientProperties[], verbose: boolean): string {
  const keywords = verbose ? ALL_KEYWORDS : DEFAULT_KEYWORDS;
  const widths = keywords.map((k) => Math.max(width(HEADERS[k]!), ...clients.map((c) => width(valueToString(c.get(k), k)))));
  const row = (cells: string[]) => cells.map((cell, i) => pad(cell, widths[i]!)).join(" ");
  const lines = [row(keywords.map((k) => HEADERS[k]!))];
  for (const c of clients) lines.push(row(keywords.map((k) => valueToString(c.get(k), k))));
  return lines.join("\n");
}

/** A JSON string as Python's json.dumps writes it (ensure_ascii). */
export function pyJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const code = s.charCodeAt(i);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (code < 0x20 || code > 0x7e) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return out + '"';
}

function pyJsonValue(v: PropertyValue | undefined): string {
  if (typeof v === "string") return pyJsonString(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") return String(v);
  return "null";
}

/** {name: {keyword: value}} with four-space indentation, keys in mandos-ctl's order. */
export function formatJson(clients: readonly ClientProperties[]): string {
  if (!clients.length) return "{}";
  // Python builds a dict keyed by name: a repeated name keeps its first place, last value.
  const byName = new Map<string, ClientProperties>();
  for (const c of clients) byName.set(String(c.get("Name") ?? ""), c);
  const blocks = [...byName].map(([name, c]) => {
    const fields = ALL_KEYWORDS.map((k) => `        ${pyJsonString(k)}: ${pyJsonValue(c.get(k))}`);
    return `    ${pyJsonString(name)}: {\n${fields.join(",\n")}\n    }`;
  });
  return `{\n${blocks.join(",\n")}\n}`;
}
