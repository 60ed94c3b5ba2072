// One mDNS socket on one interface for one IP family ("link").
//
// Why not bonjour-service's own socket handling: multicast-dns (which it
// wraps) binds an IPv6 socket to the address given as `interface`, and a
// socket bound to a unicast address never receives multicast; without
// `interface` it refuses IPv6 altogether. And on Linux every socket bound
// to [::]:5353 receives ff02::fb traffic of all interfaces where anyone
// joined the group (IPV6_MULTICAST_ALL), with no way in Node to learn the
// arrival interface. So each IPv6 link binds to ff02::fb%IFNAME: binding to
// a link-scope multicast address with a zone ties the socket to that
// device (sk_bound_dev_if), so it only receives that interface's mDNS
// traffic and sends out of it, from the kernel-chosen link-local source.
// multicast-dns still does the rest (socket options, membership, codec).
//
// IPv4 has no such trick: IPv4 links bind to 224.0.0.251 and keep only
// packets whose source lies in one of the interface's subnets (two
// interfaces on the same subnet cannot be told apart; IPv6 is Mandos's
// preferred family anyway).
import { dnsPacket, multicastDns, MDNS_IPV4, MDNS_IPV6, MDNS_PORT, asReceived, type DnsMessage, type MulticastDns, type Received, type RemoteInfo } from "./dns.js";
import { ipv4InSubnet } from "../sys/addresses.js";
import type { IpProtocol } from "./types.js";
import type { Logger } from "../cli/log.js";
import { errorMessage } from "../cli/log.js";

export interface LinkOptions {
  interfaceName: string;
  interfaceIndex: number;
  protocol: IpProtocol;
  /** IPv4 only: the interface's addresses with prefix ("10.0.0.1/24"). */
  ipv4Subnets?: string[];
  log: Logger;
  onMessage(message: Received, from: RemoteInfo, link: Link): void;
}

/** What the browser and the responder need of a link; tests give them stand-ins. */
export interface Link {
  readonly interfaceName: string;
  readonly interfaceIndex: number;
  readonly protocol: IpProtocol;
  ipv4Subnets: string[];
  /** Resolves true when the socket is bound, false if binding failed. */
  readonly ready: Promise<boolean>;
  describe(): string;
  /** Multicast a message on this link (or unicast it to `to`). Never rejects; false if not sent. */
  send(message: DnsMessage, to?: { address: string; port: number }): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Is a link still right for the interface (same index, same IPv4 source
 * address)? If not, its socket and multicast membership belong to an old
 * interface or address, and it must be opened afresh.
 */
export function linkFits(link: Pick<Link, "interfaceIndex" | "protocol" | "ipv4Subnets">, index: number, ipv4Subnets: string[]): boolean {
  if (index !== link.interfaceIndex) return false;
  return link.protocol === "ipv6" || link.ipv4Subnets[0] === ipv4Subnets[0];
}

export class MdnsLink implements Link {
  readonly interfaceName: string;
  readonly interfaceIndex: number;
  readonly protocol: IpProtocol;
  ipv4Subnets: string[];
  private readonly mdns: MulticastDns;
  private readonly log: Logger;
  private closed = false;
  private warned = 0;
  readonly ready: Promise<boolean>;

  constructor(opts: LinkOptions) {
    this.interfaceName = opts.interfaceName;
    this.interfaceIndex = opts.interfaceIndex;
    this.protocol = opts.protocol;
    this.ipv4Subnets = opts.ipv4Subnets ?? [];
    this.log = opts.log;
    const v6 = opts.protocol === "ipv6";
    const ifaceAddress = v6 ? `::%${opts.interfaceName}` : (this.ipv4Subnets[0] ?? "0.0.0.0/0").split("/")[0]!;
    this.mdns = multicastDns({
      type: v6 ? "udp6" : "udp4",
      ip: v6 ? MDNS_IPV6 : MDNS_IPV4,
      port: MDNS_PORT,
      interface: ifaceAddress,
      bind: v6 ? `${MDNS_IPV6}%${opts.interfaceName}` : MDNS_IPV4,
      reuseAddr: true,
      // Loopback lets a browser and a responder on the same host see each other.
      loopback: true,
      ttl: 255,
    });
    this.ready = new Promise((resolve) => {
      this.mdns.on("ready", () => resolve(true));
      this.mdns.on("error", (err) => {
        this.log.warning(`Zeroconf: mDNS socket on ${this.describe()} failed: ${errorMessage(err)}`);
        resolve(false);
      });
    });
    this.mdns.on("warning", (err) => this.warn(`mDNS on ${this.describe()}: ${errorMessage(err)}`));
    this.mdns.on("packet", (packet, rinfo) => {
      // Nothing from the network may throw out of here.
      try {
        if (this.closed || !this.accepts(rinfo)) return;
        const message = asReceived(packet);
        if (message) opts.onMessage(message, rinfo, this);
      } catch (err) {
        this.warn(`ignoring mDNS packet from ${String(rinfo?.address)} on ${this.describe()}: ${errorMessage(err)}`);
      }
    });
  }

  describe(): string {
    return `${this.interfaceName} (${this.protocol === "ipv6" ? "IPv6" : "IPv4"})`;
  }

  send(message: DnsMessage, to?: { address: string; port: number }): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const dest = to ?? { address: this.protocol === "ipv6" ? MDNS_IPV6 : MDNS_IPV4, port: MDNS_PORT };
      // A socket closed mid-send might never call back.
      const timer = setTimeout(() => resolve(false), 2000);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      try {
        // multicast-dns encodes on a later tick, where a throw would be
        // uncaught; names taken from the network end up in our queries, so
        // make sure the message encodes first.
        dnsPacket.encode(message);
        this.mdns.send(message, dest, (err) => {
          if (err) this.warn(`cannot send mDNS on ${this.describe()}: ${errorMessage(err)}`);
          done(!err);
        });
      } catch (err) {
        this.warn(`cannot encode mDNS message for ${this.describe()}: ${errorMessage(err)}`);
        done(false);
      }
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      try {
        this.mdns.destroy(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  private accepts(rinfo: RemoteInfo): boolean {
    if (typeof rinfo?.address !== "string" || typeof rinfo.port !== "number") return false;
    if (this.protocol === "ipv6") return true; // the socket is bound to the device
    return this.ipv4Subnets.some((cidr) => ipv4InSubnet(rinfo.address, cidr));
  }

  /** Socket and decode warnings: debug level, and only the first few. */
  private warn(msg: string): void {
    if (this.warned++ < 20) this.log.debug(`Zeroconf: ${msg}`);
  }
}
