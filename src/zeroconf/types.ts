// Public types of the Zeroconf (DNS-SD over mDNS) module, shared by the
// client (browse) and the server (announce).
import type { Logger } from "../cli/log.js";
import type { NetInterface } from "../sys/interfaces.js";

/** Which IP family an mDNS socket or an address belongs to. */
export type IpProtocol = "ipv6" | "ipv4";

/** One resolved address of one Mandos server, as seen on one interface. */
export interface FoundService {
  /** DNS-SD instance name, e.g. "Mandos" or "Mandos #2". */
  name: string;
  /** SRV target host, e.g. "server.local". */
  host: string;
  port: number;
  /**
   * Address to connect to. IPv6 link-local addresses carry the zone as an
   * interface NAME ("fe80::1%eth0"), which net.connect accepts.
   */
  address: string;
  /** Interface on which the service was seen. */
  interfaceName: string;
  interfaceIndex: number;
  /** Family of `address`. */
  protocol: IpProtocol;
}

export interface BrowseOptions {
  /** DNS-SD service type; default "_mandos._tcp". */
  serviceType?: string;
  /**
   * Interface names to browse on. Undefined or empty: every suitable
   * interface (not loopback, not point-to-point, broadcast-capable, ARP),
   * as mandos-client chooses them. Named interfaces are used whatever their
   * flags; ones that do not exist yet are picked up when they appear.
   */
  interfaces?: string[];
  /**
   * Instead of `interfaces`: the caller's own choice, made on every survey
   * of the interfaces (the client adopts interfaces that appear late this
   * way): those to browse on, and the named ones that are missing.
   */
  select?(all: NetInterface[]): { chosen: NetInterface[]; missing: string[] };
  /** mDNS families to browse over; default both, as mandos-client does. */
  protocols?: IpProtocol[];
  log: Logger;
  /** Called once per newly resolved (service, interface, address). */
  onFound(service: FoundService): void;
  /** Called with the same object given to onFound when it goes away. */
  onRemoved?(service: FoundService): void;
  /** Longest interval between re-queries (ms); default 10000. Queries start at 1 s and double. */
  queryIntervalMs?: number;
  /** A service silent for this many consecutive queries is removed; default 3. */
  missedQueriesBeforeRemoval?: number;
}

export interface Browser {
  stop(): void;
}

export type AnnounceProtocol = "ipv6" | "ipv4" | "any";

export interface AnnounceOptions {
  /** Service instance name (mandos --servicename); default "Mandos". */
  name?: string;
  /** DNS-SD service type; default "_mandos._tcp". */
  serviceType?: string;
  port: number;
  /** Announce only on this interface (mandos --interface). */
  interfaceName?: string;
  /** "ipv6" (mandos default), "ipv4" (use_ipv6 = False) or "any". */
  protocol?: AnnounceProtocol;
  log: Logger;
  /** Called with each new name chosen after a name collision. */
  onRename?(newName: string): void;
  /**
   * Called when the announcement fails after announce() resolved (too many
   * renames, avahi-daemon reporting failure). Without it, the error is logged.
   */
  onError?(err: Error): void;
  /** Give up after this many renames (Mandos: 32768). */
  maxRenames?: number;
  /**
   * "auto" (default): avahi-daemon if it is on the system D-Bus, else the
   * built-in responder. "avahi" fails if avahi-daemon is not reachable.
   */
  backend?: "auto" | "avahi" | "builtin";
  /**
   * announce() resolves once the name is established, or after this many ms
   * (default 5000) with the name being registered; renames are then
   * reported through onRename.
   */
  establishTimeoutMs?: number;
}

export interface Announcement {
  /** The current service name (changes after a collision). */
  readonly name: string;
  /** Which mechanism carries the announcement. */
  readonly via: "avahi" | "builtin";
  /** Withdraw the announcement (goodbye packets / avahi group freed). */
  stop(): Promise<void>;
}
