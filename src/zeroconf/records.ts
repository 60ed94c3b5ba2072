// The records a responder publishes for one service, and the pure decisions
// around them: which records answer a question, whether received records
// conflict with ours, and who wins a simultaneous probe (RFC 6762 8.2).
import { TTL_HOST, TTL_OTHER, rdataOf, sameRecordData, asAddress, type DnsQuestion, type DnsRecord } from "./dns.js";
import { hostFqdn, instanceFqdn, lowerName, serviceTypeFqdn } from "./names.js";

export interface ServiceIdentity {
  name: string;
  serviceType: string;
  hostLabel: string;
  port: number;
  /** TXT strings; empty gives one empty string, as avahi does. */
  txt: string[];
}

export interface RecordSet {
  /** PTR _type._tcp.local → instance (shared). */
  ptr: DnsRecord;
  /** PTR _services._dns-sd._udp.local → _type._tcp.local (shared). */
  servicesPtr: DnsRecord;
  srv: DnsRecord;
  txt: DnsRecord;
  /** A/AAAA records of the host on one link. */
  addresses: DnsRecord[];
}

const SERVICES_ENUM = "_services._dns-sd._udp.local";

export function buildRecords(id: ServiceIdentity, addresses: string[]): RecordSet {
  const inst = instanceFqdn(id.name, id.serviceType);
  const type = serviceTypeFqdn(id.serviceType);
  const host = hostFqdn(id.hostLabel);
  const txt = id.txt.length ? id.txt.map((t) => Buffer.from(t, "utf8")) : [Buffer.alloc(0)];
  return {
    ptr: { name: type, type: "PTR", class: "IN", ttl: TTL_OTHER, flush: false, data: inst },
    servicesPtr: { name: SERVICES_ENUM, type: "PTR", class: "IN", ttl: TTL_OTHER, flush: false, data: type },
    srv: { name: inst, type: "SRV", class: "IN", ttl: TTL_HOST, flush: true, data: { priority: 0, weight: 0, port: id.port, target: host } },
    txt: { name: inst, type: "TXT", class: "IN", ttl: TTL_OTHER, flush: true, data: txt },
    addresses: addresses.map((a) => ({
      name: host,
      type: a.includes(":") ? "AAAA" : "A",
      class: "IN",
      ttl: TTL_HOST,
      flush: true,
      data: a,
    })),
  };
}

export function allRecords(set: RecordSet): DnsRecord[] {
  return [set.ptr, set.srv, set.txt, ...set.addresses, set.servicesPtr];
}

/** Unique records (ours alone): SRV, TXT, addresses. */
export function uniqueRecords(set: RecordSet): DnsRecord[] {
  return [set.srv, set.txt, ...set.addresses];
}

export function withTtl(records: DnsRecord[], ttl: number): DnsRecord[] {
  return records.map((r) => ({ ...r, ttl }));
}

function matches(q: DnsQuestion, r: DnsRecord): boolean {
  return lowerName(q.name) === lowerName(r.name) && (q.type === "ANY" || q.type === r.type);
}

/**
 * Answers (and helpful additional records) for the questions of a query.
 * Known answers the querier already holds with at least half our TTL are
 * left out (RFC 6762 7.1).
 */
export function answerQuestions(
  questions: DnsQuestion[],
  knownAnswers: DnsRecord[],
  set: RecordSet,
): { answers: DnsRecord[]; additionals: DnsRecord[] } {
  const all = allRecords(set);
  const answers: DnsRecord[] = [];
  const add = (list: DnsRecord[], r: DnsRecord) => {
    if (!list.includes(r)) list.push(r);
  };
  for (const q of questions) for (const r of all) if (matches(q, r)) add(answers, r);
  const known = (r: DnsRecord) => knownAnswers.some((k) => sameRecordData(k, r) && (k.ttl ?? 0) >= (r.ttl ?? 0) / 2);
  const kept = answers.filter((r) => !known(r));
  const additionals: DnsRecord[] = [];
  for (const r of kept) {
    if (r === set.ptr) for (const x of [set.srv, set.txt, ...set.addresses]) add(additionals, x);
    if (r === set.srv) for (const x of set.addresses) add(additionals, x);
  }
  return { answers: kept, additionals: additionals.filter((r) => !kept.includes(r) && !known(r)) };
}

export type Conflict = "service" | "host" | null;

/**
 * Do records received from elsewhere claim our unique names with other
 * data? Identical data is no conflict (our own echo, or another responder
 * on this host publishing the same addresses). `ownAddresses` holds every
 * address of this host, so a record naming our host with one of them is ours.
 */
export function findConflict(received: DnsRecord[], set: RecordSet, ownAddresses: Set<string>): Conflict {
  const inst = lowerName(set.srv.name);
  const host = lowerName(hostOf(set));
  let conflict: Conflict = null;
  for (const r of received) {
    if ((r.ttl ?? 0) === 0) continue;
    const name = lowerName(r.name);
    if (name === inst && (r.type === "SRV" || r.type === "TXT")) {
      const ours = r.type === "SRV" ? set.srv : set.txt;
      if (!sameRecordData(r, ours)) return "service";
    }
    if (name === host && (r.type === "A" || r.type === "AAAA")) {
      const a = asAddress(r);
      if (a && !ownAddresses.has(a.address)) conflict = "host";
    }
  }
  return conflict;
}

function hostOf(set: RecordSet): string {
  const d = set.srv.data as { target: string };
  return d.target;
}

/**
 * Simultaneous probe tie-break for one name: compare our records and theirs
 * (sorted by class, type, RDATA) lexicographically; the later set wins.
 * "equal" means the same data: not a conflict at all.
 */
export function probeTieBreak(ours: DnsRecord[], theirs: DnsRecord[]): "win" | "lose" | "equal" {
  const key = (r: DnsRecord) => {
    const rdata = rdataOf(r) ?? Buffer.alloc(0);
    const head = Buffer.alloc(4);
    head.writeUInt16BE(1, 0); // class IN (cache-flush bit excluded)
    head.writeUInt16BE(typeCode(r.type), 2);
    return Buffer.concat([head, rdata]);
  };
  const a = ours.map(key).sort(Buffer.compare);
  const b = theirs.map(key).sort(Buffer.compare);
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = Buffer.compare(a[i]!, b[i]!);
    if (c !== 0) return c > 0 ? "win" : "lose";
  }
  if (a.length === b.length) return "equal";
  return a.length > b.length ? "win" : "lose";
}

function typeCode(type: string): number {
  switch (type) {
    case "A":
      return 1;
    case "PTR":
      return 12;
    case "TXT":
      return 16;
    case "AAAA":
      return 28;
    case "SRV":
      return 33;
    default:
      return 0xffff;
  }
}

/** Records in a probe's authority section that concern one name. */
export function recordsNamed(records: DnsRecord[], name: string): DnsRecord[] {
  const n = lowerName(name);
  return records.filter((r) => lowerName(r.name) === n);
}
