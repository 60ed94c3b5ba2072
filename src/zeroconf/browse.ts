// Browsing for Mandos servers (client side): query for the service type on
// each chosen interface over IPv6 and IPv4 mDNS, as mandos-client does,
// resolve instances to addresses, and report each (instance, interface,
// address) once as found and again when it goes away: by goodbye packet,
// TTL expiry, or silence over several re-queries.
import { ServiceCache, diffReports, reportKey, sortResolved, DEFAULT_LIMITS, type CacheLimits } from "./browse-cache.js";
import { chooseInterfaces, surveyInterfaces, suitableForBrowsing } from "./interfaces.js";
import { linkFits, type Link } from "./link.js";
import { realEffects, type ZeroconfEffects } from "./effects.js";
import { DEFAULT_SERVICE_TYPE, serviceTypeFqdn } from "./names.js";
import { MDNS_PORT, type DnsQuestion, type Received, type RemoteInfo } from "./dns.js";
import type { BrowseOptions, Browser, FoundService, IpProtocol } from "./types.js";
import type { NetInterface } from "../sys/interfaces.js";
import { withZone } from "../sys/addresses.js";
import { errorMessage } from "../cli/log.js";

interface LinkEntry {
  link: Link;
  cache: ServiceCache;
}

interface InterfaceState {
  name: string;
  index: number;
  links: Map<IpProtocol, LinkEntry>;
  /** What onFound was told and onRemoved not yet, by reportKey. */
  reported: Map<string, FoundService>;
}

const FIRST_INTERVAL_MS = 1000;
/**
 * Between query rounds the interfaces are surveyed every second for the
 * first minute: a client started early at boot sees a network driver
 * that loads late within a second (a survey reads a few sysfs files:
 * nothing to save on). Afterwards the query rounds survey, at least every
 * `queryIntervalMs` (10 s by default), and every second while a named
 * interface is missing.
 */
const FAST_SURVEY_MS = 1000;
const FAST_SURVEY_PERIOD_MS = 60_000;

/** Pure: how long until the next survey of its own, `sinceStartMs` after the start; null to leave it to the query rounds. */
export function nextSurveyDelay(sinceStartMs: number): number | null {
  return sinceStartMs + FAST_SURVEY_MS <= FAST_SURVEY_PERIOD_MS ? FAST_SURVEY_MS : null;
}

/**
 * The browser's state: per chosen interface its links (one per family,
 * each with its cache) and what was reported, plus the query interval.
 * Every change is one of the named transitions below, driven by interface
 * surveys (reconcile), sockets becoming ready (opened), query rounds
 * (round) and received messages (receive); effects go through `fx`.
 */
export class ServiceBrowser implements Browser {
  private readonly serviceType: string;
  private readonly protocols: IpProtocol[];
  private readonly maxInterval: number;
  private readonly limits: CacheLimits;
  private readonly question: DnsQuestion;
  private readonly states = new Map<string, InterfaceState>();
  private readonly reportedMissing = new Set<string>();
  /**
   * While a named interface is missing or a query could not be sent (an
   * interface still coming up), look again every second instead of backing off.
   */
  private hurry = false;
  private stopped = false;
  private interval = FIRST_INTERVAL_MS;
  private cancelRound: (() => void) | null = null;
  private cancelSurvey: (() => void) | null = null;
  private startedAt = 0;

  constructor(
    private readonly opts: BrowseOptions,
    private readonly fx: ZeroconfEffects = realEffects,
  ) {
    this.serviceType = opts.serviceType ?? DEFAULT_SERVICE_TYPE;
    this.protocols = opts.protocols?.length ? [...new Set(opts.protocols)] : ["ipv6", "ipv4"];
    this.maxInterval = Math.max(FIRST_INTERVAL_MS, opts.queryIntervalMs ?? 10_000);
    this.limits = { ...DEFAULT_LIMITS, missedQueries: Math.max(1, opts.missedQueriesBeforeRemoval ?? 3) };
    this.question = { name: serviceTypeFqdn(this.serviceType), type: "PTR", class: "IN" };
  }

  /** Open the links (each queries once ready) and schedule the first round and survey. */
  start(): void {
    this.startedAt = this.fx.now();
    try {
      this.reconcile();
    } catch (err) {
      this.opts.log.error(`Zeroconf: cannot start browsing: ${errorMessage(err)}`);
    }
    this.schedule(this.interval);
    this.scheduleSurvey();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.cancelRound?.();
    this.cancelSurvey?.();
    for (const st of this.states.values()) for (const l of st.links.values()) void l.link.close();
    this.states.clear();
  }

  /** Open links for new interfaces, close those of vanished ones. */
  reconcile(): void {
    const { interfaces, select, log } = this.opts;
    const list = () => this.fx.listInterfaces();
    const choose = (all: NetInterface[]) => (select ? select.call(this.opts, all) : chooseInterfaces(all, interfaces, suitableForBrowsing));
    const survey = surveyInterfaces(list, choose, this.reportedMissing, log, "will look again");
    if (!survey) return;
    if (survey.missing.length > 0) this.hurry = true;
    const now = this.fx.now();
    for (const st of this.states.values()) {
      if (!survey.chosen.some((i) => i.name === st.name && i.index === st.index)) this.closeInterface(st, now);
    }
    for (const iface of survey.chosen) {
      let st = this.states.get(iface.name);
      if (!st) {
        st = { name: iface.name, index: iface.index, links: new Map(), reported: new Map() };
        this.states.set(iface.name, st);
        log.debug(`Zeroconf: browsing for ${this.serviceType} on ${iface.name} (index ${iface.index})`);
      }
      for (const protocol of this.protocols) this.reconcileLink(st, iface, protocol);
    }
  }

  /** A response on one of our links: take its records in, report changes, ask for what is missing. */
  receive(message: Received, from: RemoteInfo, link: Link): void {
    if (this.stopped || !message.isResponse) return;
    // RFC 6762 6: responses from a port other than 5353 are not mDNS.
    if (from.port !== MDNS_PORT) return;
    const st = this.states.get(link.interfaceName);
    const entry = st?.links.get(link.protocol);
    if (!st || !entry || entry.link !== link) return;
    const now = this.fx.now();
    entry.cache.ingest([...message.answers, ...message.additionals], now);
    this.publish(st, now);
    const qs = entry.cache.missing(now);
    if (qs.length > 0) void link.send({ type: "query", id: 0, questions: qs });
  }

  /** One query round: resurvey, query on every link, report expiries; then schedule the next, backing off. */
  async round(): Promise<void> {
    this.cancelRound = null;
    if (this.stopped) return;
    this.hurry = false;
    const sends: Array<Promise<boolean>> = [];
    try {
      this.reconcile();
      const now = this.fx.now();
      for (const st of this.states.values()) {
        for (const l of st.links.values()) {
          sends.push(this.query(l.link));
          l.cache.querySent(now);
        }
        this.publish(st, now);
      }
    } catch (err) {
      this.opts.log.error(`Zeroconf: browsing round failed: ${errorMessage(err)}`);
    }
    // Sends never reject; a failed one means an interface is not ready yet.
    if ((await Promise.all(sends)).includes(false)) this.hurry = true;
    if (this.stopped) return;
    this.interval = Math.min(this.interval * 2, this.maxInterval);
    this.schedule(this.hurry ? FIRST_INTERVAL_MS : this.interval);
  }

  // ------------------------------------------------------------ transitions

  /** Keep, replace, open or close the link of one family on one interface. */
  private reconcileLink(st: InterfaceState, iface: NetInterface, protocol: IpProtocol): void {
    const existing = st.links.get(protocol);
    if (protocol === "ipv4" && iface.ipv4.length === 0) {
      // No IPv4 address, no IPv4 link.
      if (existing) this.dropLink(st, existing);
      return;
    }
    if (existing && linkFits(existing.link, iface.index, iface.ipv4)) {
      existing.link.ipv4Subnets = iface.ipv4;
      return;
    }
    // Its multicast membership belongs to an old address: start afresh.
    if (existing) this.dropLink(st, existing);
    const link = this.fx.openLink({
      interfaceName: iface.name,
      interfaceIndex: iface.index,
      protocol,
      ipv4Subnets: iface.ipv4,
      log: this.opts.log,
      onMessage: (m, from, l) => this.receive(m, from, l),
    });
    const entry: LinkEntry = { link, cache: new ServiceCache(this.serviceType, protocol, this.limits) };
    st.links.set(protocol, entry);
    void link.ready.then((ok) => this.opened(st, entry, ok));
  }

  /** A new link's socket is bound: ask right away rather than at the next round. If it could not bind, the next round tries again. */
  private opened(st: InterfaceState, entry: LinkEntry, ok: boolean): void {
    const { link } = entry;
    if (this.stopped || st.links.get(link.protocol) !== entry) return;
    if (ok) void this.query(link);
    else this.dropLink(st, entry);
  }

  private dropLink(st: InterfaceState, entry: LinkEntry): void {
    st.links.delete(entry.link.protocol);
    void entry.link.close();
  }

  /** An interface is gone: close its links and report its services removed. */
  private closeInterface(st: InterfaceState, now: number): void {
    this.states.delete(st.name);
    for (const l of st.links.values()) void l.link.close();
    st.links.clear();
    this.publish(st, now);
  }

  /** Compare what is resolved now with what was reported; report the difference. */
  private publish(st: InterfaceState, now: number): void {
    const resolved = sortResolved([...st.links.values()].flatMap((l) => l.cache.resolved(now)));
    const current: FoundService[] = resolved.map((r) => ({
      name: r.name,
      host: r.host,
      port: r.port,
      address: withZone(r.address, st.name),
      interfaceName: st.name,
      interfaceIndex: st.index,
      protocol: r.protocol,
    }));
    const { added, removed } = diffReports(st.reported, current);
    const log = this.opts.log;
    for (const s of removed) {
      st.reported.delete(reportKey(s));
      log.debug(`Zeroconf: Mandos server "${s.name}" on ${s.interfaceName} gone (${s.address}, port ${s.port})`);
      this.call("onRemoved", s);
    }
    for (const s of added) {
      if (this.stopped) return;
      st.reported.set(reportKey(s), s);
      log.debug(`Zeroconf: Mandos server "${s.name}" found on ${s.host} (${s.address}, interface ${s.interfaceIndex}) port ${s.port}`);
      this.call("onFound", s);
    }
  }

  // ------------------------------------------------------------ helpers

  private query(link: Link): Promise<boolean> {
    return link.send({ type: "query", id: 0, questions: [this.question] });
  }

  private schedule(ms: number): void {
    this.cancelRound = this.fx.setTimer(ms, () => void this.round());
  }

  /** A survey between rounds, while nextSurveyDelay() asks for one. */
  private scheduleSurvey(): void {
    const delay = nextSurveyDelay(this.fx.now() - this.startedAt);
    if (delay === null) return;
    this.cancelSurvey = this.fx.setTimer(delay, () => {
      this.cancelSurvey = null;
      if (this.stopped) return;
      try {
        this.reconcile();
      } catch (err) {
        this.opts.log.error(`Zeroconf: interface survey failed: ${errorMessage(err)}`);
      }
      this.scheduleSurvey();
    });
  }

  private call(what: "onFound" | "onRemoved", s: FoundService): void {
    const fn = this.opts[what];
    if (!fn) return;
    try {
      fn.call(this.opts, s);
    } catch (err) {
      this.opts.log.error(`Zeroconf: ${what} handler failed: ${errorMessage(err)}`);
    }
  }
}

export function browse(opts: BrowseOptions): Browser {
  const browser = new ServiceBrowser(opts);
  browser.start();
  return browser;
}
