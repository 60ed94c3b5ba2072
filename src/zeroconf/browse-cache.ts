// What a browser knows about one service type on one link (interface and
// IP family), built from received mDNS records. As with avahi's resolver
// in mandos-client, a service seen over IPv6 mDNS resolves to its IPv6
// addresses and one seen over IPv4 to its IPv4 addresses: an IPv4-only
// server on a host that also has IPv6 is not offered on IPv6. Pure: time is passed in, no I/O. Sizes are capped
// so a flood of records cannot grow memory without bound.
import { asAddress, asPtr, asSrv, type DnsQuestion, type DnsRecord } from "./dns.js";
import { instanceNameOf, lowerName, serviceTypeFqdn } from "./names.js";
import { isLinkLocal } from "../sys/addresses.js";
import type { IpProtocol } from "./types.js";

export interface Resolved {
  name: string;
  host: string;
  port: number;
  /** Without zone. */
  address: string;
  protocol: IpProtocol;
}

export interface CacheLimits {
  maxInstances: number;
  maxHosts: number;
  maxAddressesPerHost: number;
  /** Remove an instance after this many queries without a word from it. */
  missedQueries: number;
}

export const DEFAULT_LIMITS: CacheLimits = { maxInstances: 256, maxHosts: 256, maxAddressesPerHost: 16, missedQueries: 3 };

interface Instance {
  name: string;
  expiresAt: number;
  heardSinceQuery: boolean;
  missed: number;
}

interface Srv {
  port: number;
  target: string;
  expiresAt: number;
}

interface Addr {
  protocol: IpProtocol;
  expiresAt: number;
  receivedAt: number;
}

export class ServiceCache {
  private readonly typeName: string;
  private readonly instances = new Map<string, Instance>();
  private readonly srvs = new Map<string, Srv>();
  private readonly hosts = new Map<string, Map<string, Addr>>();
  private readonly asked = new Map<string, number>();

  constructor(
    private readonly serviceType: string,
    private readonly family: IpProtocol,
    private readonly limits: CacheLimits = DEFAULT_LIMITS,
  ) {
    this.typeName = lowerName(serviceTypeFqdn(serviceType));
  }

  /** Take in the records of one received response. */
  ingest(records: DnsRecord[], now: number): void {
    // Pointers and SRVs first, so address records of a target named in the
    // same packet are accepted.
    for (const r of records) if (r.type === "PTR") this.ingestPtr(r, now);
    for (const r of records) if (r.type === "SRV") this.ingestSrv(r, now);
    for (const r of records) if (r.type === "A" || r.type === "AAAA") this.ingestAddress(r, now);
  }

  private ingestPtr(r: DnsRecord, now: number): void {
    if (lowerName(r.name) !== this.typeName) return;
    const target = asPtr(r);
    if (target === null) return;
    const name = instanceNameOf(target, this.serviceType);
    if (name === null) return;
    const key = lowerName(target);
    const ttl = r.ttl ?? 0;
    if (ttl === 0) {
      // Goodbye: the service is withdrawn.
      this.instances.delete(key);
      this.srvs.delete(key);
      return;
    }
    const existing = this.instances.get(key);
    if (existing) {
      existing.expiresAt = now + ttl * 1000;
      existing.heardSinceQuery = true;
      existing.missed = 0;
      return;
    }
    if (this.instances.size >= this.limits.maxInstances) return;
    this.instances.set(key, { name, expiresAt: now + ttl * 1000, heardSinceQuery: true, missed: 0 });
  }

  private ingestSrv(r: DnsRecord, now: number): void {
    if (instanceNameOf(r.name, this.serviceType) === null) return;
    const key = lowerName(r.name);
    const ttl = r.ttl ?? 0;
    if (ttl === 0) {
      this.srvs.delete(key);
      return;
    }
    const srv = asSrv(r);
    if (srv === null) return;
    if (!this.srvs.has(key) && this.srvs.size >= this.limits.maxInstances) return;
    this.srvs.set(key, { port: srv.port, target: srv.target, expiresAt: now + ttl * 1000 });
    const inst = this.instances.get(key);
    if (inst) {
      inst.heardSinceQuery = true;
      inst.missed = 0;
    }
  }

  private ingestAddress(r: DnsRecord, now: number): void {
    const host = lowerName(r.name);
    // Only hosts that some SRV points to: other hosts are none of our business.
    if (![...this.srvs.values()].some((s) => lowerName(s.target) === host)) return;
    const a = asAddress(r);
    if (a === null || a.family !== this.family) return;
    let addrs = this.hosts.get(host);
    const ttl = r.ttl ?? 0;
    if (ttl === 0) {
      addrs?.delete(a.address);
      return;
    }
    if (!addrs) {
      if (this.hosts.size >= this.limits.maxHosts) return;
      this.hosts.set(host, (addrs = new Map()));
    }
    if (r.flush) {
      // Cache-flush (RFC 6762 10.2): older records of this name and type are stale.
      for (const [addr, v] of addrs) if (v.protocol === a.family && v.receivedAt < now - 1000) addrs.delete(addr);
    }
    if (!addrs.has(a.address) && addrs.size >= this.limits.maxAddressesPerHost) return;
    addrs.set(a.address, { protocol: a.family, expiresAt: now + ttl * 1000, receivedAt: now });
  }

  /** Account for a query just sent: instances silent for too long are dropped. */
  querySent(now: number): void {
    for (const [key, inst] of this.instances) {
      if (inst.heardSinceQuery) inst.missed = 0;
      else inst.missed += 1;
      inst.heardSinceQuery = false;
      if (inst.missed >= this.limits.missedQueries) {
        this.instances.delete(key);
        this.srvs.delete(key);
      }
    }
    this.expire(now);
  }

  /** Forget expired records. */
  expire(now: number): void {
    for (const [k, v] of this.instances) if (v.expiresAt <= now) this.instances.delete(k);
    for (const [k, v] of this.srvs) if (v.expiresAt <= now) this.srvs.delete(k);
    for (const [h, addrs] of this.hosts) {
      for (const [a, v] of addrs) if (v.expiresAt <= now) addrs.delete(a);
      const used = [...this.srvs.values()].some((s) => lowerName(s.target) === h);
      if (addrs.size === 0 || !used) this.hosts.delete(h);
    }
  }

  /** Everything resolved, IPv6 link-local addresses first (see sortResolved). */
  resolved(now: number): Resolved[] {
    const out: Resolved[] = [];
    for (const [key, inst] of this.instances) {
      if (inst.expiresAt <= now) continue;
      const srv = this.srvs.get(key);
      if (!srv || srv.expiresAt <= now) continue;
      const addrs = this.hosts.get(lowerName(srv.target));
      if (!addrs) continue;
      for (const [address, a] of addrs) {
        if (a.expiresAt <= now) continue;
        out.push({ name: inst.name, host: srv.target, port: srv.port, address, protocol: a.protocol });
      }
    }
    return sortResolved(out);
  }

  /**
   * Questions to ask for what is missing (an SRV for a known instance,
   * addresses for a known target), each at most once a second.
   */
  missing(now: number): DnsQuestion[] {
    const qs: DnsQuestion[] = [];
    const ask = (name: string, type: string) => {
      if (!sendableName(name)) return;
      const k = `${type} ${lowerName(name)}`;
      const last = this.asked.get(k);
      if (last !== undefined && now - last < 1000) return;
      this.asked.set(k, now);
      qs.push({ name, type, class: "IN" });
    };
    for (const [key, inst] of this.instances) {
      const srv = this.srvs.get(key);
      if (!srv) {
        ask(`${inst.name}.${serviceTypeFqdn(this.serviceType)}`, "SRV");
        continue;
      }
      const addrs = this.hosts.get(lowerName(srv.target));
      if (!addrs || addrs.size === 0) ask(srv.target, this.family === "ipv6" ? "AAAA" : "A");
    }
    for (const [k, t] of this.asked) if (now - t > 60_000) this.asked.delete(k);
    return qs;
  }

  /** Known instance names (for tests and logs). */
  instanceNames(): string[] {
    return [...this.instances.values()].map((i) => i.name);
  }
}

/** Would this name encode to a valid DNS name (labels of 1-63 bytes, 255 in all)? */
function sendableName(name: string): boolean {
  const labels = name.replace(/\.$/, "").split(".");
  const sizes = labels.map((l) => Buffer.byteLength(l, "utf8"));
  return sizes.every((n) => n >= 1 && n <= 63) && sizes.reduce((a, n) => a + n + 1, 1) <= 255;
}

/** IPv6 link-local first, then other IPv6, then IPv4 (stable otherwise). */
export function sortResolved<T extends Resolved>(list: T[]): T[] {
  return list.sort((x, y) => rank(x) - rank(y));
}

function rank(r: Resolved): number {
  if (r.protocol === "ipv6") return isLinkLocal(r.address) ? 0 : 1;
  return 2;
}

/** Stable identity of one report: instance and address (per interface). */
export function reportKey(r: { name: string; address: string }): string {
  return `${r.name.toLowerCase()}\n${r.address}`;
}

/** Which reports are new and which are gone, comparing by identity and content. */
export function diffReports<T extends Resolved>(
  previous: Map<string, T>,
  current: T[],
): { added: T[]; removed: T[] } {
  const now = new Map(current.map((r) => [reportKey(r), r]));
  const added: T[] = [];
  const removed: T[] = [];
  for (const [k, old] of previous) {
    const cur = now.get(k);
    if (!cur || cur.port !== old.port || lowerName(cur.host) !== lowerName(old.host)) removed.push(old);
  }
  for (const [k, cur] of now) {
    const old = previous.get(k);
    if (!old || cur.port !== old.port || lowerName(cur.host) !== lowerName(old.host)) added.push(cur);
  }
  return { added, removed };
}
