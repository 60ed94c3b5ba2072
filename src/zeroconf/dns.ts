// Typed access to the DNS message codec (dns-packet, as used by
// multicast-dns) and checks that turn decoded, untrusted records into
// well-typed values. Everything decoded from the network goes through the
// `as*` functions here before use: a malformed record becomes null, never
// an exception.
import { createRequire } from "node:module";
import { isIPv4, isIPv6 } from "node:net";

// multicast-dns and dns-packet are the layers under bonjour-service, which
// we use directly (see docs/design.md); both are CommonJS without types.
const require = createRequire(import.meta.url);

export type RecordType = "PTR" | "SRV" | "TXT" | "A" | "AAAA" | "ANY" | "NSEC";

export interface DnsQuestion {
  name: string;
  type: string;
  class?: string;
}

export interface DnsRecord {
  name: string;
  type: string;
  class?: string;
  ttl?: number;
  /** mDNS cache-flush bit (unique records). */
  flush?: boolean;
  data?: unknown;
}

export interface SrvData {
  port: number;
  target: string;
  priority?: number;
  weight?: number;
}

/** What dns-packet encodes; what it decodes has the same shape, unchecked. */
export interface DnsMessage {
  id?: number;
  type?: "query" | "response";
  flags?: number;
  questions?: DnsQuestion[];
  answers?: DnsRecord[];
  authorities?: DnsRecord[];
  additionals?: DnsRecord[];
}

interface RecordCodec {
  encode(data: unknown): Buffer;
}

interface DnsPacketModule {
  encode(message: DnsMessage): Buffer;
  decode(buf: Buffer): unknown;
  record(type: string): RecordCodec;
  AUTHORITATIVE_ANSWER: number;
}

export const dnsPacket = require("dns-packet") as DnsPacketModule;

export interface RemoteInfo {
  address: string;
  family: string;
  port: number;
  size: number;
}

/** The part of a multicast-dns instance we use. */
export interface MulticastDns {
  send(message: DnsMessage, rinfo: { address: string; port: number } | null, cb: (err?: Error | null) => void): void;
  destroy(cb?: () => void): void;
  on(event: "packet", listener: (packet: unknown, rinfo: RemoteInfo) => void): this;
  on(event: "ready", listener: () => void): this;
  on(event: "error" | "warning", listener: (err: Error) => void): this;
}

export interface MulticastDnsOptions {
  type: "udp4" | "udp6";
  ip: string;
  port: number;
  interface: string;
  bind: string;
  reuseAddr: boolean;
  loopback: boolean;
  ttl: number;
}

export const multicastDns = require("multicast-dns") as (opts: MulticastDnsOptions) => MulticastDns;

export const MDNS_PORT = 5353;
export const MDNS_IPV6 = "ff02::fb";
export const MDNS_IPV4 = "224.0.0.251";
/** Flag bits of the DNS header. */
export const FLAG_AA = 1 << 10;
export const FLAG_TC = 1 << 9;

/** Record TTLs as avahi uses them: host records 120 s, others 75 min. */
export const TTL_HOST = 120;
export const TTL_OTHER = 4500;

/** A decoded message with every section an array (input unchecked). */
export interface Received {
  id: number;
  isResponse: boolean;
  truncated: boolean;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

/** Shape-check a decoded message; drops entries that are not records. */
export function asReceived(decoded: unknown): Received | null {
  if (typeof decoded !== "object" || decoded === null) return null;
  const m = decoded as Record<string, unknown>;
  const flags = typeof m.flags === "number" ? m.flags : 0;
  return {
    id: typeof m.id === "number" ? m.id : 0,
    isResponse: m.type === "response",
    truncated: (flags & FLAG_TC) !== 0,
    questions: arrayOf(m.questions, isQuestion),
    answers: arrayOf(m.answers, isRecord),
    authorities: arrayOf(m.authorities, isRecord),
    additionals: arrayOf(m.additionals, isRecord),
  };
}

function arrayOf<T>(v: unknown, ok: (x: unknown) => x is T): T[] {
  return Array.isArray(v) ? v.filter(ok) : [];
}

function isQuestion(x: unknown): x is DnsQuestion {
  if (typeof x !== "object" || x === null) return false;
  const q = x as Record<string, unknown>;
  return typeof q.name === "string" && typeof q.type === "string" && (q.class === undefined || q.class === "IN");
}

function isRecord(x: unknown): x is DnsRecord {
  if (typeof x !== "object" || x === null) return false;
  const r = x as Record<string, unknown>;
  return (
    typeof r.name === "string" &&
    typeof r.type === "string" &&
    (r.class === undefined || r.class === "IN") &&
    typeof r.ttl === "number" &&
    Number.isInteger(r.ttl) &&
    r.ttl >= 0
  );
}

/** PTR target name, or null. */
export function asPtr(r: DnsRecord): string | null {
  return r.type === "PTR" && typeof r.data === "string" && r.data.length > 0 ? r.data : null;
}

/** SRV port and target, or null (port 0 means "no service" per RFC 2782). */
export function asSrv(r: DnsRecord): SrvData | null {
  if (r.type !== "SRV" || typeof r.data !== "object" || r.data === null) return null;
  const d = r.data as Record<string, unknown>;
  const port = d.port;
  const target = d.target;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  if (typeof target !== "string" || target.length === 0 || target === ".") return null;
  return { port, target };
}

/** The address of an A or AAAA record, or null. */
export function asAddress(r: DnsRecord): { address: string; family: "ipv4" | "ipv6" } | null {
  if (typeof r.data !== "string") return null;
  if (r.type === "AAAA" && isIPv6(r.data) && !r.data.includes("%")) return { address: r.data.toLowerCase(), family: "ipv6" };
  if (r.type === "A" && isIPv4(r.data)) return { address: r.data, family: "ipv4" };
  return null;
}

/** The raw RDATA of a record (for comparing records), or null if it cannot be encoded. */
export function rdataOf(r: DnsRecord): Buffer | null {
  try {
    return dnsPacket.record(r.type).encode(r.data).subarray(2);
  } catch {
    return null;
  }
}

/** Same name, type and RDATA? */
export function sameRecordData(a: DnsRecord, b: DnsRecord): boolean {
  if (a.type !== b.type || a.name.toLowerCase() !== b.name.toLowerCase()) return false;
  // Names inside RDATA (SRV target, PTR) compare case-insensitively.
  if (a.type === "PTR") {
    const pa = asPtr(a);
    const pb = asPtr(b);
    return pa !== null && pb !== null && pa.toLowerCase() === pb.toLowerCase();
  }
  if (a.type === "SRV") {
    const sa = asSrv(a);
    const sb = asSrv(b);
    return sa !== null && sb !== null && sa.port === sb.port && sa.target.toLowerCase() === sb.target.toLowerCase();
  }
  const ra = rdataOf(a);
  const rb = rdataOf(b);
  return ra !== null && rb !== null && ra.equals(rb);
}

/** Decode a datagram; null if it is not a DNS message. */
export function decodeMessage(buf: Buffer): Received | null {
  try {
    return asReceived(dnsPacket.decode(buf));
  } catch {
    return null;
  }
}
