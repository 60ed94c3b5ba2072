// Browsing for Mandos servers (client side): query for the service type on
// each chosen interface over IPv6 and IPv4 mDNS, as mandos-client does,
// resolve instances to addresses, and report each (instance, interface,
// address) once as found and again when it goes away: by goodbye packet,
// TTL expiry, or silence over several re-queries.
import { ServiceCache, diffReports, reportKey, sortResolved, DEFAULT_LIMITS } from "./browse-cache.js";
import { surveyInterfaces, suitableForBrowsing } from "./interfaces.js";
import { listInterfaces } from "../sys/interfaces.js";
import { withZone } from "../sys/addresses.js";
import { MdnsLink } from "./link.js";
import { DEFAULT_SERVICE_TYPE, serviceTypeFqdn } from "./names.js";
import { MDNS_PORT, type DnsQuestion, type Received, type RemoteInfo } from "./dns.js";
import type { BrowseOptions, Browser, FoundService, IpProtocol } from "./types.js";
import { errorMessage } from "../cli/log.js";

interface LinkEntry {
  link: MdnsLink;
  cache: ServiceCache;
}

interface InterfaceState {
  name: string;
  index: number;
  links: Map<IpProtocol, LinkEntry>;
  reported: Map<string, FoundService>;
}

const FIRST_INTERVAL_MS = 1000;

export function browse(opts: BrowseOptions): Browser {
  const serviceType = opts.serviceType ?? DEFAULT_SERVICE_TYPE;
  const protocols: IpProtocol[] = opts.protocols?.length ? [...new Set(opts.protocols)] : ["ipv6", "ipv4"];
  const maxInterval = Math.max(FIRST_INTERVAL_MS, opts.queryIntervalMs ?? 10_000);
  const limits = { ...DEFAULT_LIMITS, missedQueries: Math.max(1, opts.missedQueriesBeforeRemoval ?? 3) };
  const log = opts.log;
  const states = new Map<string, InterfaceState>();
  const reportedMissing = new Set<string>();
  // While a named interface is missing or a query could not be sent (an
  // interface still coming up), look again every second instead of backing off.
  let hurry = false;
  let stopped = false;
  let interval = FIRST_INTERVAL_MS;
  let timer: NodeJS.Timeout | undefined;

  const question: DnsQuestion = { name: serviceTypeFqdn(serviceType), type: "PTR", class: "IN" };

  const call = (what: "onFound" | "onRemoved", s: FoundService) => {
    const fn = opts[what];
    if (!fn) return;
    try {
      fn.call(opts, s);
    } catch (err) {
      log.error(`Zeroconf: ${what} handler failed: ${errorMessage(err)}`);
    }
  };

  /** Compare what is resolved now with what was reported; report the difference. */
  const publish = (st: InterfaceState, now: number) => {
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
    for (const s of removed) {
      st.reported.delete(reportKey(s));
      log.debug(`Zeroconf: Mandos server "${s.name}" on ${s.interfaceName} gone (${s.address}, port ${s.port})`);
      call("onRemoved", s);
    }
    for (const s of added) {
      if (stopped) return;
      st.reported.set(reportKey(s), s);
      log.debug(`Zeroconf: Mandos server "${s.name}" found on ${s.host} (${s.address}, interface ${s.interfaceIndex}) port ${s.port}`);
      call("onFound", s);
    }
  };

  const onMessage = (message: Received, from: RemoteInfo, link: MdnsLink) => {
    if (stopped || !message.isResponse) return;
    // RFC 6762 6: responses from a port other than 5353 are not mDNS.
    if (from.port !== MDNS_PORT) return;
    const st = states.get(link.interfaceName);
    const entry = st?.links.get(link.protocol);
    if (!st || !entry || entry.link !== link) return;
    const now = Date.now();
    entry.cache.ingest([...message.answers, ...message.additionals], now);
    publish(st, now);
    const qs = entry.cache.missing(now);
    if (qs.length > 0) void link.send({ type: "query", id: 0, questions: qs });
  };

  /** Open links for new interfaces, close those of vanished ones. */
  const reconcile = () => {
    const survey = surveyInterfaces(listInterfaces, opts.interfaces, suitableForBrowsing, reportedMissing, log, "will look again");
    if (!survey) return;
    const { chosen, missing } = survey;
    if (missing.length > 0) hurry = true;
    const now = Date.now();
    for (const [name, st] of states) {
      const still = chosen.find((i) => i.name === name && i.index === st.index);
      if (!still) closeInterface(st, now);
    }
    for (const iface of chosen) {
      let st = states.get(iface.name);
      if (!st) {
        st = { name: iface.name, index: iface.index, links: new Map(), reported: new Map() };
        states.set(iface.name, st);
        log.debug(`Zeroconf: browsing for ${serviceType} on ${iface.name} (index ${iface.index})`);
      }
      for (const protocol of protocols) {
        const existing = st.links.get(protocol);
        if (protocol === "ipv4") {
          if (iface.ipv4.length === 0) {
            if (existing) {
              st.links.delete(protocol);
              void existing.link.close();
            }
            continue;
          }
        }
        if (existing && existing.link.fits(iface.index, iface.ipv4)) {
          existing.link.ipv4Subnets = iface.ipv4;
          continue;
        }
        if (existing) {
          // Its multicast membership belongs to an old address: start afresh.
          st.links.delete(protocol);
          void existing.link.close();
        }
        const link = new MdnsLink({
          interfaceName: iface.name,
          interfaceIndex: iface.index,
          protocol,
          ipv4Subnets: iface.ipv4,
          log,
          onMessage,
        });
        const entry: LinkEntry = { link, cache: new ServiceCache(serviceType, protocol, limits) };
        st.links.set(protocol, entry);
        // Ask right away on a new link rather than waiting for the next round.
        void link.ready.then((ok) => {
          if (stopped || st!.links.get(protocol) !== entry) return;
          if (ok) void link.send({ type: "query", id: 0, questions: [question] });
          else {
            // Could not bind: drop it, the next round tries again.
            st!.links.delete(protocol);
            void link.close();
          }
        });
      }
    }
  };

  const closeInterface = (st: InterfaceState, now: number) => {
    states.delete(st.name);
    for (const l of st.links.values()) void l.link.close();
    st.links.clear();
    publish(st, now);
  };

  const round = async () => {
    timer = undefined;
    if (stopped) return;
    hurry = false;
    const sends: Array<Promise<boolean>> = [];
    try {
      reconcile();
      const now = Date.now();
      for (const st of states.values()) {
        for (const l of st.links.values()) {
          sends.push(l.link.send({ type: "query", id: 0, questions: [question] }));
          l.cache.querySent(now);
        }
        publish(st, now);
      }
    } catch (err) {
      log.error(`Zeroconf: browsing round failed: ${errorMessage(err)}`);
    }
    // Sends never reject; a failed one means an interface is not ready yet.
    if ((await Promise.all(sends)).includes(false)) hurry = true;
    if (stopped) return;
    interval = Math.min(interval * 2, maxInterval);
    timer = setTimeout(() => void round(), hurry ? FIRST_INTERVAL_MS : interval);
  };

  try {
    reconcile();
  } catch (err) {
    log.error(`Zeroconf: cannot start browsing: ${errorMessage(err)}`);
  }
  timer = setTimeout(() => void round(), interval);

  return {
    stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clearTimeout(timer);
      for (const st of states.values()) for (const l of st.links.values()) void l.link.close();
      states.clear();
    },
  };
}
