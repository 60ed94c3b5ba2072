// Announcing through avahi-daemon's D-Bus API (org.freedesktop.Avahi), as
// the Mandos server does: EntryGroupNew, AddService, Commit; on a collision,
// ask avahi for an alternative name (GetAlternativeServiceName) and add
// again, up to a limit of renames. Follows avahi-daemon leaving and coming
// back on the bus, and its server state (re-adding when it is RUNNING).
import dbus from "dbus-next";
import { DEFAULT_SERVICE_NAME, DEFAULT_SERVICE_TYPE } from "./names.js";
import { listInterfaces } from "../sys/interfaces.js";
import { establishment } from "./establish.js";
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

/** Announce through avahi-daemon. Resolves when established (or after establishTimeoutMs). */
export async function announceWithAvahi(conn: AvahiConnection, opts: AnnounceOptions): Promise<Announcement> {
  const log: Logger = opts.log;
  const serviceType = opts.serviceType ?? DEFAULT_SERVICE_TYPE;
  const protocol = avahiProtocol(opts.protocol);
  const ifIndex = opts.interfaceName ? interfaceIndex(opts.interfaceName) : AVAHI_IF_UNSPEC;
  const maxRenames = opts.maxRenames ?? 32768;
  let name = opts.name ?? DEFAULT_SERVICE_NAME;
  let renames = 0;
  let group: string | null = null;
  let stopped = false;
  let failed = false;
  let busy: Promise<void> = Promise.resolve();

  const start = establishment();

  /** Serialise D-Bus sequences so signals cannot interleave them. */
  const serial = (what: string, fn: () => Promise<void>) => {
    busy = busy.then(async () => {
      if (stopped) return;
      try {
        await fn();
      } catch (err) {
        fail(new Error(`Zeroconf: avahi ${what} failed: ${errorMessage(err)}`));
      }
    });
    return busy;
  };

  const fail = (err: Error) => {
    if (failed) return;
    failed = true;
    log.error(err.message);
    void stop();
    if (!start.settled) start.failed(err);
    else if (opts.onError) opts.onError(err);
  };

  const add = async (): Promise<void> => {
    if (group === null) {
      const [path] = await conn.call("/", SERVER, "EntryGroupNew");
      if (typeof path !== "string") throw new Error("EntryGroupNew returned no object path");
      group = path;
    } else {
      await conn.call(group, ENTRY_GROUP, "Reset");
    }
    log.debug(`Zeroconf: adding service "${name}" of type ${serviceType} to avahi`);
    try {
      await conn.call(group, ENTRY_GROUP, "AddService", "iiussssqaay", [ifIndex, protocol, 0, name, serviceType, "", "", opts.port, []]);
    } catch (err) {
      if (dbusErrorName(err) === COLLISION_ERROR) {
        log.info(`Zeroconf: local service name collision for "${name}"`);
        return rename();
      }
      throw err;
    }
    await conn.call(group, ENTRY_GROUP, "Commit");
  };

  const rename = async (): Promise<void> => {
    if (renames >= maxRenames) throw new Error(`no suitable service name found after ${renames} renames`);
    const [alt] = await conn.call("/", SERVER, "GetAlternativeServiceName", "s", [name]);
    if (typeof alt !== "string" || alt === "") throw new Error("GetAlternativeServiceName returned nothing");
    renames += 1;
    const old = name;
    name = alt;
    log.info(`Zeroconf: service name "${old}" is taken; changing it to "${name}"`);
    try {
      opts.onRename?.(name);
    } catch (err) {
      log.error(`Zeroconf: onRename handler failed: ${errorMessage(err)}`);
    }
    return add();
  };

  const freeGroup = async () => {
    const g = group;
    group = null;
    if (g === null) return;
    try {
      await conn.call(g, ENTRY_GROUP, "Free");
    } catch {
      // The group may already be gone with its daemon.
    }
  };

  const serverState = (state: number) => {
    if (state === SERVER_RUNNING) {
      void serial("AddService", add);
    } else {
      // Registering, collision of the host name, failure: the group is
      // invalid until the server runs again (as Mandos handles it).
      log.debug(`Zeroconf: avahi server state ${state}; withdrawing until it runs`);
      void serial("cleanup", freeGroup);
    }
  };

  const onSignal = (msg: dbus.Message) => {
    try {
      if (stopped || msg.type !== dbus.MessageType.SIGNAL) return;
      const body: unknown[] = Array.isArray(msg.body) ? msg.body : [];
      if (msg.interface === ENTRY_GROUP && msg.member === "StateChanged" && msg.path === group) {
        const [state, error] = body;
        if (state === GROUP_ESTABLISHED) {
          if (!start.settled) log.info(`Zeroconf: announcing service "${name}" (${serviceType}) on port ${opts.port} through avahi-daemon`);
          else log.debug(`Zeroconf: service "${name}" established`);
          start.established();
        } else if (state === GROUP_COLLISION) {
          log.info(`Zeroconf: service name collision for "${name}"`);
          void serial("rename", rename);
        } else if (state === GROUP_FAILURE) {
          fail(new Error(`Zeroconf: avahi reports failure for service "${name}": ${String(error)}`));
        }
      } else if (msg.interface === SERVER && msg.member === "StateChanged" && msg.path === "/") {
        if (typeof body[0] === "number") serverState(body[0]);
      } else if (msg.interface === DBUS && msg.member === "NameOwnerChanged" && body[0] === AVAHI) {
        const newOwner = body[2];
        if (newOwner === "") {
          log.warning("Zeroconf: avahi-daemon left the system D-Bus; the service is not announced until it returns");
          group = null;
        } else if (typeof newOwner === "string") {
          log.info("Zeroconf: avahi-daemon is back on the system D-Bus");
          group = null;
          void serial("GetState", async () => {
            const [state] = await conn.call("/", SERVER, "GetState");
            if (typeof state === "number") serverState(state);
          });
        }
      }
    } catch (err) {
      log.error(`Zeroconf: bad D-Bus signal: ${errorMessage(err)}`);
    }
  };

  const stop = async () => {
    if (stopped) return;
    await busy.catch(() => {});
    stopped = true;
    conn.bus.removeListener("message", onSignal);
    await freeGroup();
    conn.close();
  };

  conn.bus.on("message", onSignal);
  let busErrorLogged = false;
  conn.bus.on("error", (err: unknown) => {
    if (stopped || busErrorLogged) return;
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
    serverState(state);
  } catch (err) {
    await stop();
    throw new Error(`Zeroconf: cannot talk to avahi-daemon: ${errorMessage(err)}`);
  }

  return start.announcement({
    timeoutMs: opts.establishTimeoutMs ?? 5000,
    stillWaiting: () => log.info(`Zeroconf: service "${name}" still being registered with avahi-daemon`),
    name: () => name,
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
