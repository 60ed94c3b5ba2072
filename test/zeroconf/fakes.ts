// Stand-ins for the Zeroconf state machines' effects: a clock whose timers
// run only when a test moves time on, links that record what they send,
// an interface list the test sets; plus builders for mDNS records.
import type { ZeroconfEffects } from "../../src/zeroconf/effects.js";
import type { Link, LinkOptions } from "../../src/zeroconf/link.js";
import type { DnsMessage, DnsRecord, Received, RemoteInfo } from "../../src/zeroconf/dns.js";
import type { IpProtocol } from "../../src/zeroconf/types.js";
import { IFF, type NetInterface } from "../../src/sys/interfaces.js";
import { makeLogger, type Logger } from "../../src/cli/log.js";

/** Let promise callbacks (links becoming ready, sends settling) run. */
export const flush = () => new Promise<void>((r) => setImmediate(r));

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock {
  time = 0;
  private seq = 0;
  private timers: Timer[] = [];

  setTimer = (ms: number, fn: () => void): (() => void) => {
    const t = { at: this.time + ms, seq: this.seq++, fn };
    this.timers.push(t);
    return () => {
      this.timers = this.timers.filter((x) => x !== t);
    };
  };

  /** Move time on by `ms`, running each timer due on the way at its time, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    await flush();
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.fn();
      await flush();
    }
    this.time = end;
  }

  get pending(): number {
    return this.timers.length;
  }
}

export interface Sent {
  at: number;
  message: DnsMessage;
  to?: { address: string; port: number };
}

export class FakeLink implements Link {
  readonly interfaceName: string;
  readonly interfaceIndex: number;
  readonly protocol: IpProtocol;
  ipv4Subnets: string[];
  readonly ready: Promise<boolean>;
  readonly sent: Sent[] = [];
  closed = false;
  /** What send() answers (false: as a socket not ready yet). */
  sendOk = true;
  private readonly onMessage: LinkOptions["onMessage"];

  constructor(
    opts: LinkOptions,
    private readonly clock: FakeClock,
    bound: boolean,
  ) {
    this.interfaceName = opts.interfaceName;
    this.interfaceIndex = opts.interfaceIndex;
    this.protocol = opts.protocol;
    this.ipv4Subnets = opts.ipv4Subnets ?? [];
    this.onMessage = opts.onMessage;
    this.ready = Promise.resolve(bound);
  }

  describe(): string {
    return `${this.interfaceName} (${this.protocol})`;
  }

  send(message: DnsMessage, to?: { address: string; port: number }): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    this.sent.push({ at: this.clock.time, message, ...(to ? { to } : {}) });
    return Promise.resolve(this.sendOk);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  /** Deliver a message as if received from `from` (default: a peer's port 5353). */
  receive(message: Partial<Received>, from: Partial<RemoteInfo> = {}): void {
    const full: Received = { id: 0, isResponse: false, truncated: false, questions: [], answers: [], authorities: [], additionals: [], ...message };
    this.onMessage(full, { address: "fe80::99", family: "IPv6", port: 5353, size: 100, ...from }, this);
  }

  /** What was sent, taken out. */
  take(): Sent[] {
    return this.sent.splice(0);
  }
}

/** Effects over a fake clock, recorded links and a settable interface list. */
export function fakeEffects(interfaces: NetInterface[]) {
  const clock = new FakeClock();
  const links: FakeLink[] = [];
  const world = {
    clock,
    links,
    interfaces,
    /** Whether new links bind (false: as an interface not ready). */
    bind: true,
    random: 0,
    fx: undefined as unknown as ZeroconfEffects,
    /** The latest link opened on this interface and family. */
    link(name: string, protocol: IpProtocol = "ipv6"): FakeLink {
      const l = links.filter((x) => x.interfaceName === name && x.protocol === protocol).at(-1);
      if (!l) throw new Error(`no link on ${name}/${protocol}`);
      return l;
    },
  };
  world.fx = {
    now: () => clock.time,
    setTimer: clock.setTimer,
    random: () => world.random,
    openLink(opts) {
      const l = new FakeLink(opts, clock, world.bind);
      links.push(l);
      return l;
    },
    listInterfaces: () => world.interfaces,
  };
  return world;
}

export const ETHER = IFF.UP | IFF.BROADCAST | IFF.MULTICAST;

export function netInterface(name: string, index: number, ipv6: string[], ipv4: string[] = [], flags = ETHER): NetInterface {
  return { name, index, flags, operstate: "up", carrier: true, ipv6, ipv4 };
}

/** A logger at debug level that keeps its lines ("test: warning: …"). */
export function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(makeLogger("test", { level: "debug", write: (l) => void lines.push(l.trimEnd()) }), { lines });
}

// ------------------------------------------------------------ records

export const ptr = (inst: string, ttl = 4500): DnsRecord => ({ name: "_mandos._tcp.local", type: "PTR", ttl, data: `${inst}._mandos._tcp.local` });
export const srv = (inst: string, port: number, target = "server.local", ttl = 120): DnsRecord => ({
  name: `${inst}._mandos._tcp.local`,
  type: "SRV",
  ttl,
  data: { port, target, priority: 0, weight: 0 },
});
export const txt = (inst: string, ttl = 4500): DnsRecord => ({ name: `${inst}._mandos._tcp.local`, type: "TXT", ttl, data: [Buffer.alloc(0)] });
export const aaaa = (host: string, address: string, ttl = 120, flush = true): DnsRecord => ({ name: host, type: "AAAA", ttl, flush, data: address });
export const a = (host: string, address: string, ttl = 120): DnsRecord => ({ name: host, type: "A", ttl, flush: true, data: address });
