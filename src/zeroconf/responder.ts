// Built-in mDNS responder: announces one DNS-SD service when avahi-daemon is
// not available. It follows RFC 6762 where it matters for Mandos: probing
// before use (three probes 250 ms apart), renaming on a conflict with
// avahi's rule, simultaneous-probe tie-break, two announcements, answering
// queries (known-answer suppression, one multicast per record per second),
// legacy unicast answers, and goodbye packets on stop.
//
// Why not bonjour-service's publish(): it advertises every address of every
// interface on every link, cannot be limited to one interface or IP family,
// and on a name collision it only prints an Error to the console and stops;
// Mandos renames ("Mandos #2") instead.
import { hostname } from "node:os";
import { MdnsLink } from "./link.js";
import { establishment } from "./establish.js";
import { surveyInterfaces, suitableForAnnouncing } from "./interfaces.js";
import { listInterfaces, type NetInterface } from "../sys/interfaces.js";
import {
  DEFAULT_SERVICE_NAME,
  DEFAULT_SERVICE_TYPE,
  alternativeHostName,
  alternativeServiceName,
  hostFqdn,
  hostLabelFrom,
  instanceFqdn,
  isValidServiceName,
  lowerName,
} from "./names.js";
import { FLAG_AA, MDNS_PORT, type DnsRecord, type Received, type RemoteInfo } from "./dns.js";
import {
  allRecords,
  answerQuestions,
  buildRecords,
  findConflict,
  probeTieBreak,
  recordsNamed,
  uniqueRecords,
  withTtl,
  type RecordSet,
  type ServiceIdentity,
} from "./records.js";
import type { AnnounceOptions, Announcement, IpProtocol } from "./types.js";
import { errorMessage } from "../cli/log.js";

interface LinkState {
  link: MdnsLink;
  addresses: string[];
  phase: "probing" | "announced";
  records: RecordSet;
  /** Last multicast time per record, for the one-per-second rule. */
  lastSent: Map<string, number>;
  timers: Set<NodeJS.Timeout>;
}

const PROBE_INTERVAL_MS = 250;
const RECONCILE_MS = 5000;

export interface ResponderOptions extends AnnounceOptions {
  /** Host label to publish (default: first label of the system host name). */
  hostLabel?: string;
}

export async function startResponder(opts: ResponderOptions): Promise<Announcement> {
  const log = opts.log;
  const serviceType = opts.serviceType ?? DEFAULT_SERVICE_TYPE;
  const protocols: IpProtocol[] = opts.protocol === "ipv4" ? ["ipv4"] : opts.protocol === "any" ? ["ipv6", "ipv4"] : ["ipv6"];
  const maxRenames = opts.maxRenames ?? 32768;
  let name = opts.name ?? DEFAULT_SERVICE_NAME;
  if (name.includes(".")) {
    // Our DNS codec cannot put a dot inside a label.
    const fixed = name.replace(/\./g, "-");
    log.warning(`Zeroconf: service name "${name}" contains a dot; announcing it as "${fixed}"`);
    name = fixed;
  }
  if (!isValidServiceName(name)) throw new Error(`Zeroconf: invalid service name "${name}" (1-63 bytes of UTF-8)`);
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new Error(`Zeroconf: invalid port ${opts.port}`);
  let hostLabel = opts.hostLabel ?? hostLabelFrom(hostname());
  let renames = 0;
  let hostRenames = 0;
  let stopped = false;
  let failed = false;
  let generation = 0;
  const links = new Map<string, LinkState>();
  let ownAddresses = new Set<string>();
  const missingReported = new Set<string>();

  const start = establishment();

  const identity = (): ServiceIdentity => ({ name, serviceType, hostLabel, port: opts.port, txt: [] });
  const key = (ifname: string, p: IpProtocol) => `${ifname}/${p}`;

  const later = (ls: LinkState, ms: number, fn: () => void) => {
    const gen = generation;
    const t = setTimeout(() => {
      ls.timers.delete(t);
      if (stopped || gen !== generation || links.get(key(ls.link.interfaceName, ls.link.protocol)) !== ls) return;
      try {
        fn();
      } catch (err) {
        log.error(`Zeroconf: responder on ${ls.link.describe()} failed: ${errorMessage(err)}`);
      }
    }, ms);
    ls.timers.add(t);
  };

  const clearTimers = (ls: LinkState) => {
    for (const t of ls.timers) clearTimeout(t);
    ls.timers.clear();
  };

  const startProbing = (ls: LinkState) => {
    const delayMs = Math.random() * PROBE_INTERVAL_MS;
    clearTimers(ls);
    ls.phase = "probing";
    ls.records = buildRecords(identity(), ls.addresses);
    let sent = 0;
    const probe = () => {
      const inst = instanceFqdn(name, serviceType);
      void ls.link.send({
        type: "query",
        id: 0,
        questions: [
          { name: inst, type: "ANY", class: "IN" },
          { name: hostFqdn(hostLabel), type: "ANY", class: "IN" },
        ],
        authorities: uniqueRecords(ls.records),
      });
      sent += 1;
      later(ls, PROBE_INTERVAL_MS, sent < 3 ? probe : () => announce(ls));
    };
    later(ls, delayMs, probe);
  };

  const announce = (ls: LinkState) => {
    ls.phase = "announced";
    const send = () => multicastResponse(ls, allRecords(ls.records), []);
    send();
    later(ls, 1000, send);
    log.debug(`Zeroconf: service "${name}" established on ${ls.link.describe()}`);
    if ([...links.values()].every((l) => l.phase === "announced")) {
      if (!start.settled) log.info(`Zeroconf: announcing service "${name}" (${serviceType}) on port ${opts.port} with the built-in mDNS responder`);
      start.established();
    }
  };

  const multicastResponse = (ls: LinkState, answers: DnsRecord[], additionals: DnsRecord[]) => {
    const now = Date.now();
    for (const r of answers) ls.lastSent.set(recordKey(r), now);
    void ls.link.send({ type: "response", id: 0, flags: FLAG_AA, answers, additionals });
  };

  const fail = (err: Error) => {
    if (failed) return;
    failed = true;
    log.error(errorMessage(err));
    void shutdown(false);
    if (!start.settled) start.failed(err);
    else if (opts.onError) opts.onError(err);
  };

  const rename = (what: "service" | "host") => {
    generation += 1;
    if (what === "service") {
      if (renames >= maxRenames) {
        fail(new Error(`Zeroconf: no suitable service name found after ${renames} renames`));
        return;
      }
      renames += 1;
      const old = name;
      name = alternativeServiceName(name);
      log.info(`Zeroconf: service name "${old}" is taken; changing it to "${name}"`);
      try {
        opts.onRename?.(name);
      } catch (err) {
        log.error(`Zeroconf: onRename handler failed: ${errorMessage(err)}`);
      }
    } else {
      if (hostRenames >= maxRenames) {
        fail(new Error(`Zeroconf: no suitable host name found after ${hostRenames} renames`));
        return;
      }
      hostRenames += 1;
      const old = hostLabel;
      hostLabel = alternativeHostName(hostLabel);
      log.info(`Zeroconf: host name "${old}.local" is taken; changing it to "${hostLabel}.local"`);
    }
    for (const ls of links.values()) startProbing(ls);
  };

  const onMessage = (message: Received, from: RemoteInfo, link: MdnsLink) => {
    if (stopped) return;
    const ls = links.get(key(link.interfaceName, link.protocol));
    if (!ls || ls.link !== link) return;
    if (message.isResponse) {
      if (from.port !== MDNS_PORT) return;
      const conflict = findConflict([...message.answers, ...message.additionals], ls.records, ownAddresses);
      if (conflict) rename(conflict);
      return;
    }
    // A probe from someone else for one of our names while we probe too.
    // Losing the tie-break counts as a collision and renames, as avahi
    // does (it withdraws the record; Mandos then renames). Waiting and
    // probing again instead could livelock two hosts that each win one
    // name and lose the other.
    if (ls.phase === "probing" && message.authorities.length > 0) {
      const names: Array<[string, "service" | "host"]> = [
        [ls.records.srv.name, "service"],
        [hostFqdn(hostLabel), "host"],
      ];
      for (const [ours, what] of names) {
        const theirs = recordsNamed(message.authorities, ours);
        if (theirs.length === 0) continue;
        const mine = recordsNamed(uniqueRecords(ls.records), ours);
        if (probeTieBreak(mine, theirs) === "lose") {
          log.debug(`Zeroconf: lost a simultaneous probe for "${ours}"`);
          rename(what);
          return;
        }
      }
    }
    if (ls.phase !== "announced" || message.questions.length === 0) return;
    const known = message.answers;
    const { answers, additionals } = answerQuestions(message.questions, known, ls.records);
    if (answers.length === 0) return;
    if (from.port !== MDNS_PORT) {
      // Legacy unicast query (RFC 6762 6.7): answer to the sender, short TTLs, no flush bits.
      const cap = (rs: DnsRecord[]) => rs.map((r) => ({ ...r, ttl: Math.min(r.ttl ?? 0, 10), flush: false }));
      void ls.link.send(
        { type: "response", id: message.id, flags: FLAG_AA, questions: message.questions, answers: cap(answers), additionals: cap(additionals) },
        { address: from.address, port: from.port },
      );
      return;
    }
    const isProbe = message.authorities.length > 0;
    const now = Date.now();
    const fresh = isProbe ? answers : answers.filter((r) => now - (ls.lastSent.get(recordKey(r)) ?? 0) >= 1000);
    if (fresh.length === 0) return;
    const shared = fresh.some((r) => r.type === "PTR");
    if (!shared || isProbe) multicastResponse(ls, fresh, additionals);
    else later(ls, 20 + Math.random() * 100, () => multicastResponse(ls, fresh, additionals));
  };

  const linkAddresses = (iface: NetInterface, p: IpProtocol): string[] =>
    p === "ipv6" ? iface.ipv6 : iface.ipv4.map((c) => c.split("/")[0]!);

  const reconcile = () => {
    if (stopped) return;
    const wanted = opts.interfaceName ? [opts.interfaceName] : undefined;
    const survey = surveyInterfaces(listInterfaces, wanted, suitableForAnnouncing, missingReported, log, "will announce when it appears");
    if (!survey) return;
    const { all, chosen } = survey;
    ownAddresses = new Set(all.flatMap((i) => [...i.ipv6.map((a) => a.toLowerCase()), ...i.ipv4.map((c) => c.split("/")[0]!)]));
    const wantedKeys = new Set<string>();
    for (const iface of chosen) {
      for (const p of protocols) {
        const addresses = linkAddresses(iface, p);
        if (addresses.length === 0) continue;
        const k = key(iface.name, p);
        wantedKeys.add(k);
        const existing = links.get(k);
        if (existing && existing.link.fits(iface.index, iface.ipv4)) {
          existing.link.ipv4Subnets = iface.ipv4;
          if (existing.addresses.join() !== addresses.join()) {
            existing.addresses = addresses;
            existing.records = buildRecords(identity(), addresses);
            if (existing.phase === "announced") multicastResponse(existing, allRecords(existing.records), []);
          }
          continue;
        }
        if (existing) closeLink(k, existing);
        const link = new MdnsLink({ interfaceName: iface.name, interfaceIndex: iface.index, protocol: p, ipv4Subnets: iface.ipv4, log, onMessage });
        const ls: LinkState = {
          link,
          addresses,
          phase: "probing",
          records: buildRecords(identity(), addresses),
          lastSent: new Map(),
          timers: new Set(),
        };
        links.set(k, ls);
        void link.ready.then((ok) => {
          if (ok && links.get(k) === ls) startProbing(ls);
          else if (!ok && links.get(k) === ls) closeLink(k, ls);
        });
      }
    }
    for (const [k, ls] of links) if (!wantedKeys.has(k)) closeLink(k, ls);
  };

  const closeLink = (k: string, ls: LinkState) => {
    clearTimers(ls);
    links.delete(k);
    void ls.link.close();
  };

  const shutdown = async (goodbye: boolean) => {
    if (stopped) return;
    stopped = true;
    clearInterval(reconcileTimer);
    const all = [...links.values()];
    links.clear();
    await Promise.all(
      all.map(async (ls) => {
        clearTimers(ls);
        if (goodbye && ls.phase === "announced") await ls.link.send({ type: "response", id: 0, flags: FLAG_AA, answers: withTtl(goodbyeRecords(ls.records), 0) });
        await ls.link.close();
      }),
    );
  };

  reconcile();
  const reconcileTimer = setInterval(reconcile, RECONCILE_MS);
  reconcileTimer.unref();
  if (links.size === 0) {
    log.warning(`Zeroconf: no interface to announce "${name}" on yet`);
    start.established();
  }
  return start.announcement({
    timeoutMs: opts.establishTimeoutMs ?? 5000,
    stillWaiting: () => log.info(`Zeroconf: service "${name}" still being registered`),
    name: () => name,
    via: "builtin",
    stop: () => shutdown(true),
  });
}

/**
 * What a goodbye withdraws: the service's own records. Not the host's
 * address records, nor the service-type enumeration: another service on
 * this host may share them, and a goodbye would make browsers drop it too.
 */
function goodbyeRecords(set: RecordSet): DnsRecord[] {
  return [set.ptr, set.srv, set.txt];
}

function recordKey(r: DnsRecord): string {
  return `${r.type} ${lowerName(r.name)}`;
}
