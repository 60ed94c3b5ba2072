// DNS-SD naming rules: service type and instance names, and the collision
// rename rules avahi uses (Mandos asks avahi for an alternative name; the
// built-in responder must pick the same one, so both backends behave alike).

export const DEFAULT_SERVICE_TYPE = "_mandos._tcp";
export const DEFAULT_SERVICE_NAME = "Mandos";
export const MDNS_DOMAIN = "local";
/** Longest DNS label in bytes. */
export const LABEL_MAX = 63;

/** "_mandos._tcp" → "_mandos._tcp.local". */
export function serviceTypeFqdn(serviceType: string): string {
  return `${serviceType}.${MDNS_DOMAIN}`;
}

/** "Mandos", "_mandos._tcp" → "Mandos._mandos._tcp.local". */
export function instanceFqdn(name: string, serviceType: string): string {
  return `${name}.${serviceTypeFqdn(serviceType)}`;
}

/** Host label → "label.local". */
export function hostFqdn(label: string): string {
  return `${label}.${MDNS_DOMAIN}`;
}

/** DNS names compare case-insensitively (ASCII only, RFC 4343): compare these. */
export function lowerName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/\.$/, "");
}

/**
 * The instance name of a service FQDN of the given type, or null if the
 * FQDN is not of that type. Matching by suffix keeps instance names that
 * contain dots intact (our DNS codec does not escape dots in labels).
 */
export function instanceNameOf(fqdn: string, serviceType: string): string | null {
  const suffix = "." + lowerName(serviceTypeFqdn(serviceType));
  const trimmed = fqdn.replace(/\.$/, "");
  if (trimmed.length <= suffix.length) return null;
  if (!lowerName(trimmed).endsWith(suffix)) return null;
  const name = trimmed.slice(0, trimmed.length - suffix.length);
  return isValidServiceName(name) ? name : null;
}

/** A DNS-SD instance name: 1-63 bytes of UTF-8 without NUL. */
export function isValidServiceName(name: string): boolean {
  const bytes = Buffer.byteLength(name, "utf8");
  return bytes >= 1 && bytes <= LABEL_MAX && !name.includes("\0") && !name.includes("\uFFFD");
}

/** Cut a string to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(s: string, max: number): string {
  let out = "";
  let used = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, "utf8");
    if (used + n > max) break;
    out += ch;
    used += n;
  }
  return out;
}

/**
 * avahi's alternative service name: "Name" → "Name #2", "Name #7" →
 * "Name #8"; the base is shortened so the result still fits in one label.
 * A counter must be a decimal number without a leading zero, after the
 * last " #".
 */
export function alternativeServiceName(name: string): string {
  const counter = trailingCounter(name, " #");
  if (counter !== null) {
    const next = String(counter.value + 1);
    const base = truncateUtf8(counter.base, LABEL_MAX - next.length - 2);
    return `${base} #${next}`;
  }
  return `${truncateUtf8(name, LABEL_MAX - 3)} #2`;
}

/** avahi's alternative host name: "host" → "host-2", "host-9" → "host-10". */
export function alternativeHostName(label: string): string {
  const counter = trailingCounter(label, "-");
  if (counter !== null) {
    const next = String(counter.value + 1);
    const base = truncateUtf8(counter.base, LABEL_MAX - next.length - 1);
    return `${base}-${next}`;
  }
  return `${truncateUtf8(label, LABEL_MAX - 2)}-2`;
}

function trailingCounter(s: string, separator: string): { base: string; value: number } | null {
  const at = s.lastIndexOf(separator);
  if (at < 0) return null;
  const digits = s.slice(at + separator.length);
  if (!/^[1-9][0-9]*$/.test(digits)) return null;
  // avahi uses atoi(); beyond 2^31 its result is undefined. Treat such a
  // suffix as an ordinary part of the name instead.
  const value = Number(digits);
  if (!Number.isSafeInteger(value) || value >= 2 ** 31 - 1) return null;
  return { base: s.slice(0, at), value };
}

/**
 * A host label for the built-in responder from the system host name: its
 * first label, or "mandos" when the host name is empty or "localhost".
 */
export function hostLabelFrom(hostname: string): string {
  const first = hostname.split(".")[0] ?? "";
  const label = truncateUtf8(first.replace(/[\0\\]/g, ""), LABEL_MAX);
  return label === "" || label.toLowerCase() === "localhost" ? "mandos" : label;
}
