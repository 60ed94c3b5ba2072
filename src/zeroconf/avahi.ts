// Announcing through avahi-daemon's D-Bus API (org.freedesktop.Avahi), as
// the Mandos server does: EntryGroupNew, AddService, Commit; on a collision,
// ask avahi for an alternative name (GetAlternativeServiceName) and add
// again, up to a limit of renames. Follows avahi-daemon leaving and coming
// back on the bus, and its server state (re-adding when it is RUNNING).
import dbus from "dbus-next";
import { DEFAULT_SERVICE_NAME, DEFAULT_SERVICE_TYPE } from "./names.js";
import { listInterfaces } from "../sys/interfaces.js";
import { announcerEvents, establishment, type AnnouncerEvents } from "./establish.js";
import type { AnnounceOptions, AnnounceProtocol, Announcement } from "./types.js";
import type { Logger } from "../cli/log.js";
import { errorMessage } from "../cli/log.js";

const AVAHI = "org.freedesktop.Avahi";
const SERVER = "org.freedesktop.Avahi.Server";
const ENTRY_GROUP = "org.freedesktop.Avahi.EntryGroup";
const DBUS = "org.freedesktop.DBus";
const COLLISION_ERROR = "org.freedesktop.Avahi.CollisionError";

// avahi-common/defs.h and address.h
export const AVAHI_IF_UNSPEC = -1;
export const AVAHI_PROTO_UNSPEC = -1;
export const AVAHI_PROTO_INET = 0;
export const AVAHI_PROTO_INET6 = 1;
const SERVER_RUNNING = 2;
const GROUP_ESTABLISHED = 2;
const GROUP_COLLISION = 3;
const GROUP_FAILURE = 4;

const CALL_TIMEOUT_MS = 5000;

export function avahiProtocol(p: AnnounceProtocol | undefined): number {
  return p === "ipv4" ? AVAHI_PROTO_INET : p === "any" ? AVAHI_PROTO_UNSPEC : AVAHI_PROTO_INET6;
}

type Bus = dbus.MessageBus;

/** A connection to the system bus on which avahi-daemon is present. */
export interface AvahiConnection {
  bus: Bus;
  call(path: string, iface: string, member: string, signature?: string, body?: unknown[]): Promise<unknown[]>;
  close(): void;
}

/**
 * Connect to the system bus (DBUS_SYSTEM_BUS_ADDRESS or the default) and
 * check that avahi-daemon owns its name there. Null, with the reason, if not.
 */
export async function connectAvahi(timeoutMs = 3000): Promise<{ conn: AvahiConnection } | { reason: string }> {
  let bus: Bus;
  try {
    bus = dbus.systemBus();
  } catch (err) {
    return { reason: `cannot use the system D-Bus: ${errorMessage(err)}` };
  }
  const conn = makeConnection(bus);
  const connected = await new Promise<string | null>((resolve) => {
    const timer = setTimeout(() => resolve("timed out connecting to the system D-Bus"), timeoutMs);
    bus.once("connect", () => {
      clearTimeout(timer);
      resolve(null);
    });
    bus.once("error", (err: unknown) => {
      clearTimeout(timer);
      resolve(`cannot connect to the system D-Bus: ${errorMessage(err)}`);
    });
  });
  if (connected !== null) {
    conn.close();
    return { reason: connected };
  }
  // Later connection errors must not become uncaught 'error' events.
  bus.on("error", () => {});
  try {
    const [has] = await conn.call("/org/freedesktop/DBus", DBUS, "NameHasOwner", "s", [AVAHI]);
    if (has !== true) {
      conn.close();
      return { reason: "avahi-daemon is not on the system D-Bus" };
    }
  } catch (err) {
    conn.close();
    return { reason: `cannot ask the system D-Bus about avahi-daemon: ${errorMessage(err)}` };
  }
  return { conn };
}

function makeConnection(bus: Bus): AvahiConnection {
  let closed = false;
  return {
    bus,
    call(path, iface, member, signature, body) {
      const destination = iface === DBUS ? DBUS : AVAHI;
      const msg = new dbus.Message({ destination, path, interface: iface, member, signature: signature ?? "", body: body ?? [] });
      return new Promise<unknown[]>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`D-Bus call ${member} timed out`)), CALL_TIMEOUT_MS);
        bus.call(msg).then(
          (reply) => {
            clearTimeout(timer);
            resolve(Array.isArray(reply?.body) ? (reply.body as unknown[]) : []);
          },
          (err: unknown) => {
            clearTimeout(timer);
            reject(err);
          },
        );
      });
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        bus.disconnect();
      } catch {
        // Already gone.
      }
    },
  };
}

function dbusErrorName(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "type" in err && typeof (err as { type: unknown }).type === "string"
    ? (err as { type: string }).type
    : undefined;
}

function interfaceIndex(name: string): number {
  const iface = listInterfaces().find((i) => i.name === name);
  if (!iface || iface.index <= 0) throw new Error(`Zeroconf: no network interface "${name}"`);
  return iface.index;
}

/** A D-Bus signal that concerns the announcement, decoded. */
export type AvahiSignal =
  | { kind: "group"; path: string; state: number; error: unknown }
  | { kind: "server"; state: number }
  | { kind: "daemon-left" }
  | { kind: "daemon-back" };

/** Which of the signals matched by announceWithAvahi this message is; null for any other. */
export function decodeSignal(msg: dbus.Message): AvahiSignal | null {
  if (msg.type !== dbus.MessageType.SIGNAL) return null;
  const body: unknown[] = Array.isArray(msg.body) ? msg.body : [];
  if (msg.interface === ENTRY_GROUP && msg.member === "StateChanged" && typeof msg.path === "string" && typeof body[0] === "number") {
    return { kind: "group", path: msg.path, state: body[0], error: body[1] };
  }
  if (msg.interface === SERVER && msg.member === "StateChanged" && msg.path === "/" && typeof body[0] === "number") {
    return { kind: "server", state: body[0] };
  }
  if (msg.interface === DBUS && msg.member === "NameOwnerChanged" && body[0] === AVAHI) {
    if (body[2] === "") return { kind: "daemon-left" };
    if (typeof body[2] === "string") return { kind: "daemon-back" };
  }
  return null;
}

/** What the announcer is to register with avahi-daemon. */
export interface AvahiSettings {
  name: string;
  serviceType: string;
  port: number;
  /** AVAHI_IF_UNSPEC or an interface index. */
  ifIndex: number;
  /** An AVAHI_PROTO_* value. */
  protocol: number;
  maxRenames: number;
  log: Logger;
}

/**
 * One service registered with avahi-daemon: the current name, the rename
 * count and the entry group (null while there is none). Every change is
 * one of the named transitions below, driven by avahi's signals; the D-Bus
 * sequences they start run one at a time, so signals cannot interleave them.
 */
export class AvahiAnnouncer {
  private name_: string;
  private renames = 0;
  private group: string | null = null;
  private closed = false;
  private stopping: Promise<void> | null = null;
  private establishedOnce = false;
  private busy: Promise<void> = Promise.resolve();

  constructor(
    private readonly conn: Pick<AvahiConnection, "call" | "close">,
    private readonly settings: AvahiSettings,
    private readonly events: AnnouncerEvents,
  ) {
    this.name_ = settings.name;
  }

  /** The service name now (changes on a collision). */
  get name(): string {
    return this.name_;
  }

  /** Stopped, or stopping: by stop() or after a failure. */
  get stopped(): boolean {
    return this.stopping !== null;
  }

  /** Wait until the D-Bus sequences started so far are done. */
  idle(): Promise<void> {
    return this.busy;
  }

  signal(s: AvahiSignal): void {
    if (this.stopped) return;
    if (s.kind === "group") {
      if (s.path === this.group) this.groupState(s.state, s.error);
    } else if (s.kind === "server") {
      this.serverState(s.state);
    } else if (s.kind === "daemon-left") {
      this.settings.log.warning("Zeroconf: avahi-daemon left the system D-Bus; the service is not announced until it returns");
      this.group = null;
    } else {
      this.settings.log.info("Zeroconf: avahi-daemon is back on the system D-Bus");
      this.group = null;
      this.serial("GetState", async () => {
        const [state] = await this.conn.call("/", SERVER, "GetState");
        if (typeof state === "number") this.serverState(state);
      });
    }
  }

  /** avahi-daemon runs: add the service; any other state: the group is invalid until it runs again (as Mandos handles it). */
  serverState(state: number): void {
    if (state === SERVER_RUNNING) {
      this.serial("AddService", () => this.add());
    } else {
      this.settings.log.debug(`Zeroconf: avahi server state ${state}; withdrawing until it runs`);
      this.serial("cleanup", () => this.freeGroup());
    }
  }

  /** Free the entry group and close the connection, after any D-Bus sequence under way. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.busy.catch(() => {});
      this.closed = true;
      await this.freeGroup();
      this.conn.close();
    })();
    return this.stopping;
  }

  // ------------------------------------------------------------ transitions

  private groupState(state: number, error: unknown): void {
    const { log, serviceType, port } = this.settings;
    if (state === GROUP_ESTABLISHED) {
      if (!this.establishedOnce) log.info(`Zeroconf: announcing service "${this.name_}" (${serviceType}) on port ${port} through avahi-daemon`);
      else log.debug(`Zeroconf: service "${this.name_}" established`);
      this.establishedOnce = true;
      this.events.established();
    } else if (state === GROUP_COLLISION) {
      log.info(`Zeroconf: service name collision for "${this.name_}"`);
      this.serial("rename", () => this.rename());
    } else if (state === GROUP_FAILURE) {
      this.fail(new Error(`Zeroconf: avahi reports failure for service "${this.name_}": ${String(error)}`));
    }
  }

  /** Into a new or reset entry group; a local name collision renames at once. */
  private async add(): Promise<void> {
    const { conn } = this;
    const { log, serviceType, ifIndex, protocol, port } = this.settings;
    if (this.group === null) {
      const [path] = await conn.call("/", SERVER, "EntryGroupNew");
      if (typeof path !== "string") throw new Error("EntryGroupNew returned no object path");
      this.group = path;
    } else {
      await conn.call(this.group, ENTRY_GROUP, "Reset");
    }
    log.debug(`Zeroconf: adding service "${this.name_}" of type ${serviceType} to avahi`);
    try {
      await conn.call(this.group, ENTRY_GROUP, "AddService", "iiussssqaay", [ifIndex, protocol, 0, this.name_, serviceType, "", "", port, []]);
    } catch (err) {
      if (dbusErrorName(err) === COLLISION_ERROR) {
        log.info(`Zeroconf: local service name collision for "${this.name_}"`);
        return this.rename();
      }
      throw err;
    }
    await conn.call(this.group, ENTRY_GROUP, "Commit");
  }

  /** avahi's alternative name, then add again. */
  private async rename(): Promise<void> {
    if (this.renames >= this.settings.maxRenames) throw new Error(`no suitable service name found after ${this.renames} renames`);
    const [alt] = await this.conn.call("/", SERVER, "GetAlternativeServiceName", "s", [this.name_]);
    if (typeof alt !== "string" || alt === "") throw new Error("GetAlternativeServiceName returned nothing");
    this.renames += 1;
    const old = this.name_;
    this.name_ = alt;
    this.settings.log.info(`Zeroconf: service name "${old}" is taken; changing it to "${alt}"`);
    this.events.renamed(alt);
    return this.add();
  }

  private async freeGroup(): Promise<void> {
    const g = this.group;
    this.group = null;
    if (g === null) return;
    try {
      await this.conn.call(g, ENTRY_GROUP, "Free");
    } catch {
      // The group may already be gone with its daemon.
    }
  }

  private fail(err: Error): void {
    if (this.stopping) return;
    this.settings.log.error(err.message);
    void this.stop();
    this.events.failed(err);
  }

  /** Queue a D-Bus sequence behind the others; a failure ends the announcement. */
  private serial(what: string, fn: () => Promise<void>): void {
    this.busy = this.busy.then(async () => {
      if (this.closed) return;
      try {
        await fn();
      } catch (err) {
        this.fail(new Error(`Zeroconf: avahi ${what} failed: ${errorMessage(err)}`));
      }
    });
  }
}

/** Announce through avahi-daemon. Resolves when established (or after establishTimeoutMs). */
export async function announceWithAvahi(conn: AvahiConnection, opts: AnnounceOptions): Promise<Announcement> {
  const log: Logger = opts.log;
  const start = establishment();
  const announcer = new AvahiAnnouncer(
    conn,
    {
      name: opts.name ?? DEFAULT_SERVICE_NAME,
      serviceType: opts.serviceType ?? DEFAULT_SERVICE_TYPE,
      port: opts.port,
      ifIndex: opts.interfaceName ? interfaceIndex(opts.interfaceName) : AVAHI_IF_UNSPEC,
      protocol: avahiProtocol(opts.protocol),
      maxRenames: opts.maxRenames ?? 32768,
      log,
    },
    announcerEvents(start, opts),
  );
  const onSignal = (msg: dbus.Message) => {
    try {
      const s = decodeSignal(msg);
      if (s) announcer.signal(s);
    } catch (err) {
      log.error(`Zeroconf: bad D-Bus signal: ${errorMessage(err)}`);
    }
  };
  const stop = async () => {
    conn.bus.removeListener("message", onSignal);
    await announcer.stop();
  };
  conn.bus.on("message", onSignal);
  let busErrorLogged = false;
  conn.bus.on("error", (err: unknown) => {
    if (busErrorLogged || announcer.stopped) return;
    busErrorLogged = true;
    log.warning(`Zeroconf: system D-Bus connection failed (${errorMessage(err)}); the service may no longer be announced`);
  });
  const match = (rule: string) => conn.call("/org/freedesktop/DBus", DBUS, "AddMatch", "s", [rule]);
  try {
    await match(`type='signal',sender='${AVAHI}',interface='${ENTRY_GROUP}'`);
    await match(`type='signal',sender='${AVAHI}',interface='${SERVER}',member='StateChanged'`);
    await match(`type='signal',sender='${DBUS}',interface='${DBUS}',member='NameOwnerChanged',arg0='${AVAHI}'`);
    const [state] = await conn.call("/", SERVER, "GetState");
    if (typeof state !== "number") throw new Error("GetState returned no state");
    if (state !== SERVER_RUNNING) log.info(`Zeroconf: waiting for avahi-daemon to finish starting (state ${state})`);
    announcer.serverState(state);
  } catch (err) {
    await stop();
    throw new Error(`Zeroconf: cannot talk to avahi-daemon: ${errorMessage(err)}`);
  }

  return start.announcement({
    timeoutMs: opts.establishTimeoutMs ?? 5000,
    stillWaiting: () => log.info(`Zeroconf: service "${announcer.name}" still being registered with avahi-daemon`),
    name: () => announcer.name,
    via: "avahi",
    stop,
  });
}

/** avahi-daemon's alternative service name for `name` (used by tests to check our rule). */
export async function avahiAlternativeServiceName(conn: AvahiConnection, name: string): Promise<string> {
  const [alt] = await conn.call("/", SERVER, "GetAlternativeServiceName", "s", [name]);
  return String(alt);
}

export async function avahiAlternativeHostName(conn: AvahiConnection, name: string): Promise<string> {
  const [alt] = await conn.call("/", SERVER, "GetAlternativeHostName", "s", [name]);
  return String(alt);
}
