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
import { linkFits, type Link } from "./link.js";
import { announcerEvents, establishment, type AnnouncerEvents } from "./establish.js";
import { realEffects, type ZeroconfEffects } from "./effects.js";
import { chooseInterfaces, surveyInterfaces, suitableForAnnouncing } from "./interfaces.js";
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
import type { NetInterface } from "../sys/interfaces.js";
import { errorMessage, type Logger } from "../cli/log.js";

/**
 * One link's life: "opening" until its socket is bound, "probing" (three
 * probes) after that and after every rename, then "announced" (answering).
 */
type Phase = "opening" | "probing" | "announced";

interface LinkState {
  readonly key: string;
  readonly link: Link;
  addresses: string[];
  phase: Phase;
  records: RecordSet;
  probesSent: number;
  /** Last multicast time per record, for the one-per-second rule. */
  lastSent: Map<string, number>;
  /** Cancellers of this link's pending timers. */
  timers: Set<() => void>;
}

const PROBE_INTERVAL_MS = 250;
const PROBES = 3;
const RECONCILE_MS = 5000;

/** What the responder announces and where; checked by startResponder. */
export interface ResponderSettings {
  name: string;
  serviceType: string;
  port: number;
  hostLabel: string;
  /** IP families to announce over, each on its own link per interface. */
  protocols: IpProtocol[];
  maxRenames: number;
  /** Only this interface (mandos --interface); else every suitable one. */
  interfaceName?: string;
  log: Logger;
}

/**
 * The responder's state: the current names, the rename counts, and one
 * LinkState per (interface, family). Every change is one of the named
 * transitions below, driven by interface surveys (reconcile), sockets
 * becoming ready (opened), timers (probe, announce) and received messages
 * (receive); effects go through `fx`.
 */
export class Responder {
  private name_: string;
  private hostLabel: string;
  private renames = 0;
  private hostRenames = 0;
  private stopped = false;
  private establishedOnce = false;
  private readonly links = new Map<string, LinkState>();
  private ownAddresses = new Set<string>();
  private readonly missingReported = new Set<string>();

  constructor(
    private readonly settings: ResponderSettings,
    private readonly events: AnnouncerEvents,
    private readonly fx: ZeroconfEffects = realEffects,
  ) {
    this.name_ = settings.name;
    this.hostLabel = settings.hostLabel;
  }

  /** The service name now (changes on a collision). */
  get name(): string {
    return this.name_;
  }

  /** First survey; with no interface to announce on yet, the start counts as done. */
  start(): void {
    this.reconcile();
    if (this.links.size === 0 && !this.stopped) {
      this.settings.log.warning(`Zeroconf: no interface to announce "${this.name_}" on yet`);
      this.events.established();
    }
  }

  /** Open links on new interfaces and families, follow address changes, close vanished ones. */
  reconcile(): void {
    if (this.stopped) return;
    const { interfaceName, protocols, log } = this.settings;
    const wanted = interfaceName ? [interfaceName] : undefined;
    const list = () => this.fx.listInterfaces();
    const choose = (all: NetInterface[]) => chooseInterfaces(all, wanted, suitableForAnnouncing);
    const survey = surveyInterfaces(list, choose, this.missingReported, log, "will announce when it appears");
    if (!survey) return;
    this.ownAddresses = new Set(survey.all.flatMap((i) => [...i.ipv6.map((a) => a.toLowerCase()), ...i.ipv4.map(hostPart)]));
    const wantedKeys = new Set<string>();
    for (const iface of survey.chosen) {
      for (const p of protocols) {
        const addresses = p === "ipv6" ? iface.ipv6 : iface.ipv4.map(hostPart);
        if (addresses.length === 0) continue;
        const key = `${iface.name}/${p}`;
        wantedKeys.add(key);
        const existing = this.links.get(key);
        if (existing && linkFits(existing.link, iface.index, iface.ipv4)) {
          existing.link.ipv4Subnets = iface.ipv4;
          if (existing.addresses.join() !== addresses.join()) this.addressesChanged(existing, addresses);
          continue;
        }
        if (existing) this.closeLink(existing);
        this.openLink(key, iface, p, addresses);
      }
    }
    for (const ls of this.links.values()) if (!wantedKeys.has(ls.key)) this.closeLink(ls);
  }

  /** A message from one of our links. */
  receive(message: Received, from: RemoteInfo, link: Link): void {
    if (this.stopped) return;
    const ls = this.links.get(`${link.interfaceName}/${link.protocol}`);
    if (!ls || ls.link !== link) return;
    if (message.isResponse) {
      if (from.port !== MDNS_PORT) return;
      const conflict = findConflict([...message.answers, ...message.additionals], ls.records, this.ownAddresses);
      if (conflict) this.rename(conflict);
      return;
    }
    if (ls.phase === "probing" && message.authorities.length > 0 && this.lostTieBreak(ls, message)) return;
    if (ls.phase === "announced" && message.questions.length > 0) this.answer(ls, message, from);
  }

  /** Withdraw: goodbye packets on announced links (unless `goodbye` is false), then close every link. */
  async stop(goodbye = true): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const all = [...this.links.values()];
    this.links.clear();
    await Promise.all(
      all.map(async (ls) => {
        this.cancelTimers(ls);
        if (goodbye && ls.phase === "announced") {
          await ls.link.send({ type: "response", id: 0, flags: FLAG_AA, answers: withTtl(goodbyeRecords(ls.records), 0) });
        }
        await ls.link.close();
      }),
    );
  }

  // ------------------------------------------------------------ transitions

  private openLink(key: string, iface: NetInterface, protocol: IpProtocol, addresses: string[]): void {
    const link = this.fx.openLink({
      interfaceName: iface.name,
      interfaceIndex: iface.index,
      protocol,
      ipv4Subnets: iface.ipv4,
      log: this.settings.log,
      onMessage: (m, from, l) => this.receive(m, from, l),
    });
    const ls: LinkState = {
      key,
      link,
      addresses,
      phase: "opening",
      records: buildRecords(this.identity(), addresses),
      probesSent: 0,
      lastSent: new Map(),
      timers: new Set(),
    };
    this.links.set(key, ls);
    void link.ready.then((ok) => this.opened(ls, ok));
  }

  /** The socket is bound (or could not be: the next survey tries again). */
  private opened(ls: LinkState, ok: boolean): void {
    if (this.stopped || this.links.get(ls.key) !== ls) return;
    if (ok) this.startProbing(ls);
    else this.closeLink(ls);
  }

  private addressesChanged(ls: LinkState, addresses: string[]): void {
    ls.addresses = addresses;
    ls.records = buildRecords(this.identity(), addresses);
    if (ls.phase === "announced") this.multicast(ls, allRecords(ls.records), []);
  }

  /** Probe for the current names: after a random delay, three probes 250 ms apart. */
  private startProbing(ls: LinkState): void {
    this.cancelTimers(ls);
    ls.phase = "probing";
    ls.records = buildRecords(this.identity(), ls.addresses);
    ls.probesSent = 0;
    this.after(ls, this.fx.random() * PROBE_INTERVAL_MS, () => this.probe(ls));
  }

  private probe(ls: LinkState): void {
    void ls.link.send({
      type: "query",
      id: 0,
      questions: [
        { name: instanceFqdn(this.name_, this.settings.serviceType), type: "ANY", class: "IN" },
        { name: hostFqdn(this.hostLabel), type: "ANY", class: "IN" },
      ],
      authorities: uniqueRecords(ls.records),
    });
    ls.probesSent += 1;
    this.after(ls, PROBE_INTERVAL_MS, () => (ls.probesSent < PROBES ? this.probe(ls) : this.announce(ls)));
  }

  /** No conflict while probing: two announcements a second apart; established once every link is. */
  private announce(ls: LinkState): void {
    const { log, serviceType, port } = this.settings;
    ls.phase = "announced";
    const send = () => this.multicast(ls, allRecords(ls.records), []);
    send();
    this.after(ls, 1000, send);
    log.debug(`Zeroconf: service "${this.name_}" established on ${ls.link.describe()}`);
    if (![...this.links.values()].every((l) => l.phase === "announced")) return;
    if (!this.establishedOnce) log.info(`Zeroconf: announcing service "${this.name_}" (${serviceType}) on port ${port} with the built-in mDNS responder`);
    this.establishedOnce = true;
    this.events.established();
  }

  /**
   * A probe from someone else for one of our names while we probe too.
   * Losing the tie-break counts as a collision and renames, as avahi does
   * (it withdraws the record; Mandos then renames). Waiting and probing
   * again instead could livelock two hosts that each win one name and lose
   * the other. True if it renamed.
   */
  private lostTieBreak(ls: LinkState, message: Received): boolean {
    const names: Array<[string, "service" | "host"]> = [
      [ls.records.srv.name, "service"],
      [hostFqdn(this.hostLabel), "host"],
    ];
    for (const [ours, what] of names) {
      const theirs = recordsNamed(message.authorities, ours);
      if (theirs.length === 0) continue;
      const mine = recordsNamed(uniqueRecords(ls.records), ours);
      if (probeTieBreak(mine, theirs) === "lose") {
        this.settings.log.debug(`Zeroconf: lost a simultaneous probe for "${ours}"`);
        this.rename(what);
        return true;
      }
    }
    return false;
  }

  /** Answer a query: legacy unicast to the sender, else multicast at most once a second per record. */
  private answer(ls: LinkState, message: Received, from: RemoteInfo): void {
    const { answers, additionals } = answerQuestions(message.questions, message.answers, ls.records);
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
    const now = this.fx.now();
    const fresh = isProbe ? answers : answers.filter((r) => now - (ls.lastSent.get(recordKey(r)) ?? 0) >= 1000);
    if (fresh.length === 0) return;
    // Shared records (PTR) wait 20-120 ms so that answers from several hosts spread out.
    const shared = fresh.some((r) => r.type === "PTR");
    if (!shared || isProbe) this.multicast(ls, fresh, additionals);
    else this.after(ls, 20 + this.fx.random() * 100, () => this.multicast(ls, fresh, additionals));
  }

  private multicast(ls: LinkState, answers: DnsRecord[], additionals: DnsRecord[]): void {
    const now = this.fx.now();
    for (const r of answers) ls.lastSent.set(recordKey(r), now);
    void ls.link.send({ type: "response", id: 0, flags: FLAG_AA, answers, additionals });
  }

  /** One of our names is taken: take the next one (avahi's rule) and probe again everywhere. */
  private rename(what: "service" | "host"): void {
    const { log, maxRenames } = this.settings;
    if (what === "service") {
      if (this.renames >= maxRenames) return this.fail(new Error(`Zeroconf: no suitable service name found after ${this.renames} renames`));
      this.renames += 1;
      const old = this.name_;
      this.name_ = alternativeServiceName(old);
      log.info(`Zeroconf: service name "${old}" is taken; changing it to "${this.name_}"`);
      this.events.renamed(this.name_);
    } else {
      if (this.hostRenames >= maxRenames) return this.fail(new Error(`Zeroconf: no suitable host name found after ${this.hostRenames} renames`));
      this.hostRenames += 1;
      const old = this.hostLabel;
      this.hostLabel = alternativeHostName(old);
      log.info(`Zeroconf: host name "${old}.local" is taken; changing it to "${this.hostLabel}.local"`);
    }
    // Links still opening probe with the new names once they are ready.
    for (const ls of this.links.values()) if (ls.phase !== "opening") this.startProbing(ls);
  }

  private fail(err: Error): void {
    if (this.stopped) return;
    this.settings.log.error(errorMessage(err));
    void this.stop(false);
    this.events.failed(err);
  }

  private closeLink(ls: LinkState): void {
    this.cancelTimers(ls);
    this.links.delete(ls.key);
    void ls.link.close();
  }

  // ------------------------------------------------------------ helpers

  private identity(): ServiceIdentity {
    const { serviceType, port } = this.settings;
    return { name: this.name_, serviceType, hostLabel: this.hostLabel, port, txt: [] };
  }

  /** Run `fn` later for this link, unless the link is closed or its timers cancelled by then. */
  private after(ls: LinkState, ms: number, fn: () => void): void {
    const cancel = this.fx.setTimer(ms, () => {
      ls.timers.delete(cancel);
      if (this.stopped || this.links.get(ls.key) !== ls) return;
      try {
        fn();
      } catch (err) {
        this.settings.log.error(`Zeroconf: responder on ${ls.link.describe()} failed: ${errorMessage(err)}`);
      }
    });
    ls.timers.add(cancel);
  }

  private cancelTimers(ls: LinkState): void {
    for (const cancel of ls.timers) cancel();
    ls.timers.clear();
  }
}

export interface ResponderOptions extends AnnounceOptions {
  /** Host label to publish (default: first label of the system host name). */
  hostLabel?: string;
}

/** Check the options, start a Responder, and resurvey the interfaces every few seconds. */
export async function startResponder(opts: ResponderOptions): Promise<Announcement> {
  const log = opts.log;
  let name = opts.name ?? DEFAULT_SERVICE_NAME;
  if (name.includes(".")) {
    // Our DNS codec cannot put a dot inside a label.
    const fixed = name.replace(/\./g, "-");
    log.warning(`Zeroconf: service name "${name}" contains a dot; announcing it as "${fixed}"`);
    name = fixed;
  }
  if (!isValidServiceName(name)) throw new Error(`Zeroconf: invalid service name "${name}" (1-63 bytes of UTF-8)`);
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) throw new Error(`Zeroconf: invalid port ${opts.port}`);
  const settings: ResponderSettings = {
    name,
    serviceType: opts.serviceType ?? DEFAULT_SERVICE_TYPE,
    port: opts.port,
    hostLabel: opts.hostLabel ?? hostLabelFrom(hostname()),
    protocols: opts.protocol === "ipv4" ? ["ipv4"] : opts.protocol === "any" ? ["ipv6", "ipv4"] : ["ipv6"],
    maxRenames: opts.maxRenames ?? 32768,
    interfaceName: opts.interfaceName,
    log,
  };
  const start = establishment();
  const events = announcerEvents(start, opts);
  const responder = new Responder(
    settings,
    {
      ...events,
      failed(err) {
        clearInterval(timer);
        events.failed(err);
      },
    },
  );
  const timer = setInterval(() => responder.reconcile(), RECONCILE_MS);
  timer.unref();
  responder.start();
  return start.announcement({
    timeoutMs: opts.establishTimeoutMs ?? 5000,
    stillWaiting: () => log.info(`Zeroconf: service "${responder.name}" still being registered`),
    name: () => responder.name,
    via: "builtin",
    stop: () => {
      clearInterval(timer);
      return responder.stop(true);
    },
  });
}

function hostPart(cidr: string): string {
  return cidr.split("/")[0]!;
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
