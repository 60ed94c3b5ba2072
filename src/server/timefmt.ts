// How the server shows times on D-Bus. Mandos sends Python's
// datetime.isoformat() of a naive UTC time ("2024-01-02T03:04:05.006000").
// Python drops the fraction when it is zero; we always keep it, because
// mandos-monitor parses Expires with "%Y-%m-%dT%H:%M:%S.%f" and would fail
// on a time that happens to fall on a whole second.

/** An epoch time in ms as Mandos's RFC 3339 text; null is "" (never happened). */
export function isoTimestamp(ms: number | null): string {
  if (ms === null) return "";
  const iso = new Date(ms).toISOString(); // 2024-01-02T03:04:05.006Z
  return `${iso.slice(0, 23)}000`;
}

/** Python's repr() of a str, as Mandos's "%r" log messages show it. */
export function pythonRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out + quote;
}
