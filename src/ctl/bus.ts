// mandos-ctl's side of D-Bus: read all clients with ObjectManager's
// GetManagedObjects, set properties, call Approve and RemoveClient. Plain
// messages, no proxy objects: nothing is introspected.
import { Message, Variant, systemBus, type MessageBus } from "dbus-next";
import type { ClientProperties, PropertyValue } from "./format.js";

export const BUS_NAME = "se.recompile.Mandos";
export const CLIENT_INTERFACE = "se.recompile.Mandos.Client";
const SERVER_INTERFACE = "se.recompile.Mandos";
const OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager";
const PROPERTIES = "org.freedesktop.DBus.Properties";

export class ConnectError extends Error {}

/** A D-Bus value as mandos-ctl shows it (64-bit integers as numbers). */
function plain(v: unknown): PropertyValue {
  const value = v instanceof Variant ? v.value : v;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return value;
  return String(value);
}

export class CtlBus {
  private constructor(
    private readonly bus: MessageBus,
    private readonly debug: (msg: string) => void,
  ) {}

  static async connect(debug: (msg: string) => void, timeoutMs = 10_000): Promise<CtlBus> {
    let bus: MessageBus;
    try {
      bus = systemBus();
    } catch (err) {
      throw new ConnectError((err as Error).message);
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ConnectError("no answer from the system bus")), timeoutMs);
      bus.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      bus.once("error", (err: unknown) => {
        clearTimeout(timer);
        reject(new ConnectError((err as Error)?.message ?? String(err)));
      });
    });
    return new CtlBus(bus, debug);
  }

  private async call(path: string, iface: string, member: string, signature = "", body: unknown[] = []): Promise<unknown[]> {
    const shown = body.map((b) => (b instanceof Variant ? b.value : b)).map((b) => (Buffer.isBuffer(b) ? `<${b.length} bytes>` : JSON.stringify(b)));
    this.debug(`D-Bus: ${BUS_NAME}:${path}:${iface}.${member}(${shown.join(", ")})`);
    const reply = await this.bus.call(new Message({ destination: BUS_NAME, path, interface: iface, member, signature, body }));
    return reply?.body ?? [];
  }

  /** Object path → client properties, in the server's order. */
  async clients(): Promise<Map<string, ClientProperties>> {
    const [managed] = await this.call("/", OBJECT_MANAGER, "GetManagedObjects");
    const out = new Map<string, ClientProperties>();
    for (const [path, ifaces] of Object.entries((managed ?? {}) as Record<string, Record<string, Record<string, unknown>>>)) {
      const props = ifaces[CLIENT_INTERFACE];
      if (!props) continue;
      const m: ClientProperties = new Map();
      for (const [k, v] of Object.entries(props)) m.set(k, plain(v));
      out.set(path, m);
    }
    return out;
  }

  async setProperty(path: string, name: string, type: string, value: unknown): Promise<void> {
    await this.call(path, PROPERTIES, "Set", "ssv", [CLIENT_INTERFACE, name, new Variant(type, value)]);
  }

  async approve(path: string, value: boolean): Promise<void> {
    await this.call(path, CLIENT_INTERFACE, "Approve", "b", [value]);
  }

  async removeClient(path: string): Promise<void> {
    await this.call("/", SERVER_INTERFACE, "RemoveClient", "o", [path]);
  }

  close(): void {
    this.bus.disconnect();
  }
}
