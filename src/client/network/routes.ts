// A temporary host route to a Mandos server that the local network cannot
// otherwise reach. Avahi announces only a server's global address when it
// has one; a client that has just a link-local address (no router
// advertisements, e.g. the router is the machine that rebooted) then has no
// route to it although it is on the same link. Mandos works around this by
// adding a route to exactly that address on the interface the server was
// seen on (its helper adds dst ADDRESS/32 or /128, "dev IFACE", protocol
// boot, scope link, table main, failing if the route exists), retrying the
// connection, and deleting the route afterwards. Mandos 1.8.11 fixed a file
// descriptor leak in that path; here every path (success, error, SIGTERM via
// TemporaryRoutes.removeAll) removes what was added, and `ip` runs as a
// child that leaves no descriptor behind.
import type { Logger } from "../../cli/log.js";
import { formatIp, isLinkLocal, isRoutableUnicast, parseIp, parsePrefix, prefixContains, bitsOf, type IpAddress } from "../../sys/addresses.js";
import { checkInterface } from "./interfaces.js";
import { SYS_CLASS_NET } from "../../sys/interfaces.js";
import { NetworkError, runIp, type IpOptions } from "./ip.js";

/** One route as `ip -j route show` prints it (only the fields used here). */
export interface RouteEntry {
  /** "default", "2001:db8::/32", or a host address without a prefix length. */
  dst: string;
  dev?: string;
  gateway?: string;
  /** Absent for ordinary unicast routes; "unreachable", "blackhole", "prohibit", "throw", … */
  type?: string;
  protocol?: string;
}

/** Parse `ip -j route show` output; throws a one-line Error on anything else. */
export function parseRoutesJson(text: string): RouteEntry[] {
  if (text.trim() === "") return [];
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error("cannot parse the route list from ip: not JSON");
  }
  if (!Array.isArray(data)) throw new Error("cannot parse the route list from ip: not a list");
  const out: RouteEntry[] = [];
  for (const item of data as unknown[]) {
    if (typeof item !== "object" || item === null) continue;
    const r = item as Record<string, unknown>;
    if (typeof r.dst !== "string") continue;
    const entry: RouteEntry = { dst: r.dst };
    for (const k of ["dev", "gateway", "type", "protocol"] as const) {
      if (typeof r[k] === "string") entry[k] = r[k] as string;
    }
    out.push(entry);
  }
  return out;
}

/**
 * Pure: does reaching `address` need a host route? True when it is a
 * routable unicast address (not link-local, loopback, multicast) and the
 * most specific route covering it is missing or is not a unicast route
 * (unreachable, blackhole, prohibit, throw). `routes` must be of the
 * address's family (`ip -6` for IPv6). Throws for a string that is not an
 * address.
 */
export function needsRoute(address: string, routes: readonly RouteEntry[]): boolean {
  const addr = parseIp(address);
  if (addr === null) throw new Error(`not an IP address: ${JSON.stringify(address)}`);
  if (!isRoutableUnicast(addr)) return false;
  let best: { length: number; entry: RouteEntry } | null = null;
  for (const entry of routes) {
    const prefix = parsePrefix(entry.dst, addr.family);
    if (prefix === null || !prefixContains(prefix, addr)) continue;
    if (best === null || prefix.length > best.length) best = { length: prefix.length, entry };
  }
  if (best === null) return true;
  const type = best.entry.type ?? "unicast";
  return type !== "unicast";
}

export interface ConnectFailure {
  /** The error code of the failed connect (err.code), e.g. "ENETUNREACH". */
  errorCode: string | undefined;
  address: string;
  /** The interface the server was announced on, or null if unknown. */
  interfaceName: string | null;
  /** --connect was given (Mandos never adds routes then). */
  connectMode: boolean;
  /** A route was already added for this attempt (add at most once). */
  routeAdded: boolean;
}

/**
 * Pure: Mandos's rule for trying again with a direct route: the connection
 * failed with "network/host unreachable", the server came from Zeroconf on
 * a known interface, no route was added yet, and the address is not
 * link-local (IPv6 fe80::/10, IPv4 169.254/16).
 */
export function shouldTryDirectRoute(f: ConnectFailure): boolean {
  if (f.errorCode !== "ENETUNREACH" && f.errorCode !== "EHOSTUNREACH") return false;
  if (f.interfaceName === null || f.connectMode || f.routeAdded) return false;
  const addr = parseIp(f.address);
  return addr !== null && isRoutableUnicast(addr);
}

/** The `ip` arguments that add or delete the route, as Mandos's helper builds it. */
export function routeArgs(action: "add" | "del", addr: IpAddress, interfaceName: string): string[] {
  return [
    `-${addr.family}`,
    "route",
    action,
    `${formatIp(addr)}/${bitsOf(addr.family)}`,
    "dev",
    interfaceName,
    "proto",
    "boot",
    "scope",
    "link",
    "table",
    "main",
  ];
}

// ---------------------------------------------------------------- effects

export interface RouteOptions extends IpOptions {
  sysfs?: string;
}

/** The main routing table of one family (needs no privileges). */
export async function listRoutes(family: 4 | 6, opts: IpOptions = {}): Promise<RouteEntry[]> {
  const out = await runIp(["-j", `-${family}`, "route", "show", "table", "main"], "cannot list routes", opts);
  return parseRoutesJson(out);
}

export interface TemporaryRoute {
  /** Canonical text of the address. */
  readonly address: string;
  readonly interfaceName: string;
  readonly removed: boolean;
  /** Delete the route; idempotent. A route already gone (interface down or deleted) counts as removed. */
  remove(): Promise<void>;
}

/** Validate, returning the parsed address; throws a one-line NetworkError. */
export function checkRouteAddress(address: string, what: string): IpAddress {
  const addr = typeof address === "string" ? parseIp(address) : null;
  if (addr === null) throw new NetworkError(`${what} ${JSON.stringify(String(address))}: not an IP address`);
  if (isLinkLocal(addr)) throw new NetworkError(`${what} ${address}: a link-local address needs no route`);
  if (!isRoutableUnicast(addr)) throw new NetworkError(`${what} ${address}: not a unicast address`);
  return addr;
}

/** `ip` answers like these mean the route (or its interface) is gone already. */
function isGone(err: unknown): boolean {
  const m = err instanceof Error ? err.message : "";
  return /No such process|Cannot find device|No such device/i.test(m);
}

/**
 * Add a host route to `address` on `interfaceName` (which must exist and
 * be one of `allowed`). Fails if the route exists already, so a route
 * somebody else made is never taken over (and never deleted by us).
 * Returns the handle whose remove() deletes it.
 */
export async function addTemporaryRoute(
  address: string,
  interfaceName: string,
  allowed: Iterable<string>,
  opts: RouteOptions = {},
): Promise<TemporaryRoute> {
  const addr = checkRouteAddress(address, "cannot add a route to");
  const text = formatIp(addr);
  await checkInterface(interfaceName, allowed, `cannot add a route to ${text} on`, opts.sysfs ?? SYS_CLASS_NET);
  await runIp(routeArgs("add", addr, interfaceName), `cannot add a route to ${text} on ${interfaceName}`, opts);
  let removal: Promise<void> | null = null;
  let removed = false;
  return {
    address: text,
    interfaceName,
    get removed() {
      return removed;
    },
    remove() {
      removal ??= runIp(routeArgs("del", addr, interfaceName), `cannot remove the route to ${text} on ${interfaceName}`, opts).then(
        () => {
          removed = true;
        },
        (err: unknown) => {
          if (isGone(err)) {
            removed = true;
            return;
          }
          // Allow another try later (e.g. close() after a failed remove()).
          removal = null;
          throw err;
        },
      );
      return removal;
    },
  };
}

/**
 * Run `fn` with a temporary route in place; the route is removed however
 * `fn` ends. A failure to remove is logged as a warning and never hides
 * `fn`'s own result or error.
 */
export async function withTemporaryRoute<T>(
  address: string,
  interfaceName: string,
  allowed: Iterable<string>,
  fn: () => Promise<T>,
  opts: RouteOptions & { log?: Logger } = {},
): Promise<T> {
  const route = await addTemporaryRoute(address, interfaceName, allowed, opts);
  try {
    return await fn();
  } finally {
    await route.remove().catch((err: unknown) => opts.log?.warning((err as Error).message));
  }
}

/**
 * The routes one client run has added, so that all of them go away on exit
 * or SIGTERM even if the code that added one never got to remove it.
 */
export class TemporaryRoutes {
  #active = new Set<TemporaryRoute>();
  #pending = new Set<Promise<unknown>>();
  #closed = false;

  constructor(
    private readonly allowed: () => Iterable<string>,
    private readonly opts: RouteOptions & { log?: Logger } = {},
  ) {}

  get active(): TemporaryRoute[] {
    return [...this.#active];
  }

  /** Add a route (see addTemporaryRoute); its remove() also forgets it here. */
  async add(address: string, interfaceName: string): Promise<TemporaryRoute> {
    if (this.#closed) throw new NetworkError(`cannot add a route to ${address}: shutting down`);
    const adding = addTemporaryRoute(address, interfaceName, this.allowed(), this.opts);
    this.#pending.add(adding);
    let route: TemporaryRoute;
    try {
      route = await adding;
    } finally {
      this.#pending.delete(adding);
    }
    const tracked: TemporaryRoute = {
      address: route.address,
      interfaceName: route.interfaceName,
      get removed() {
        return route.removed;
      },
      remove: async () => {
        await route.remove();
        this.#active.delete(tracked);
      },
    };
    this.#active.add(tracked);
    // Added while removeAll() ran: it waited for us, but remove it anyway.
    if (this.#closed) await tracked.remove().catch((err: unknown) => this.opts.log?.warning((err as Error).message));
    return tracked;
  }

  /** Remove every route still in place (after any add in progress); idempotent. */
  async removeAll(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#pending]);
    for (const route of [...this.#active]) {
      await route.remove().catch((err: unknown) => this.opts.log?.warning((err as Error).message));
    }
  }
}
