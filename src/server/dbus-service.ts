// A small table-driven D-Bus object server on top of dbus-next's
// connection. dbus-next's own Interface classes answer Properties.Set on a
// read-only property with an error *and* then set it, reject a value whose
// variant type differs from the property's (dbus-python sends an int32 for
// every integer, so Debian's mandos-ctl could not set a timeout), and have
// no annotations. Here one method handler answers Introspectable,
// Properties and the objects' own methods, with exact errors.
import { Message, Variant, type MessageBus } from "dbus-next";

type MessageT = Message;
const METHOD_CALL = 1;
const NO_REPLY_EXPECTED = 1;

export type Access = "read" | "write" | "readwrite";

export interface PropertySpec {
  type: string;
  access: Access;
  get?: () => unknown;
  /** Receives the value already converted to the property's type. */
  set?: (value: unknown) => void | Promise<void>;
  annotations?: Record<string, string>;
}

export interface ArgSpec {
  name?: string;
  type: string;
}

export interface MethodSpec {
  in?: ArgSpec[];
  out?: ArgSpec[];
  /** Returns the single out value, or an array for several. */
  call: (...args: unknown[]) => unknown;
  /** Changes nothing: answered at once, without waiting for the state to be saved. */
  readOnly?: boolean;
  annotations?: Record<string, string>;
}

export interface SignalSpec {
  args: ArgSpec[];
  annotations?: Record<string, string>;
}

export interface InterfaceSpec {
  name: string;
  methods?: Record<string, MethodSpec>;
  properties?: Record<string, PropertySpec>;
  signals?: Record<string, SignalSpec>;
  annotations?: Record<string, string>;
}

export interface ExportedObject {
  path: string;
  interfaces: InterfaceSpec[];
}

/** An error to send back to the caller, with a D-Bus error name. */
export class ServiceError extends Error {
  constructor(
    readonly errorName: string,
    message: string,
  ) {
    super(message);
  }
}

const E = {
  unknownMethod: "org.freedesktop.DBus.Error.UnknownMethod",
  unknownObject: "org.freedesktop.DBus.Error.UnknownObject",
  unknownInterface: "org.freedesktop.DBus.Error.UnknownInterface",
  unknownProperty: "org.freedesktop.DBus.Error.UnknownProperty",
  readOnly: "org.freedesktop.DBus.Error.PropertyReadOnly",
  invalidArgs: "org.freedesktop.DBus.Error.InvalidArgs",
  accessDenied: "org.freedesktop.DBus.Error.AccessDenied",
  failed: "org.freedesktop.DBus.Error.Failed",
};
export const DBUS_ERRORS = E;

const INTROSPECTABLE = "org.freedesktop.DBus.Introspectable";
const PROPERTIES = "org.freedesktop.DBus.Properties";
const PEER = "org.freedesktop.DBus.Peer";

const INTEGER_TYPES = new Set(["y", "n", "q", "i", "u", "x", "t"]);

/**
 * Convert a variant sent to Properties.Set to the property's type. Any
 * integer type is accepted for an integer property (dbus-python sends int32),
 * as long as the value fits.
 */
export function coerceVariant(target: string, variant: { signature: string; value: unknown }): unknown {
  const { signature, value } = variant;
  if (INTEGER_TYPES.has(target)) {
    if (!INTEGER_TYPES.has(signature)) throw new ServiceError(E.invalidArgs, `expected an integer, got type "${signature}"`);
    const n = typeof value === "bigint" ? value : BigInt(value as number);
    const [min, max] = integerRange(target);
    if (n < min || n > max) throw new ServiceError(E.invalidArgs, `value ${n} out of range for type "${target}"`);
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new ServiceError(E.invalidArgs, `value ${n} is too large`);
    }
    return Number(n);
  }
  if (target === "ay") {
    if (signature !== "ay") throw new ServiceError(E.invalidArgs, `expected a byte array, got type "${signature}"`);
    return Buffer.isBuffer(value) ? value : Buffer.from(value as number[]);
  }
  if (signature !== target) throw new ServiceError(E.invalidArgs, `expected type "${target}", got "${signature}"`);
  return value;
}

function integerRange(t: string): [bigint, bigint] {
  switch (t) {
    case "y":
      return [0n, 255n];
    case "n":
      return [-32768n, 32767n];
    case "q":
      return [0n, 65535n];
    case "i":
      return [-(2n ** 31n), 2n ** 31n - 1n];
    case "u":
      return [0n, 2n ** 32n - 1n];
    case "x":
      return [-(2n ** 63n), 2n ** 63n - 1n];
    default:
      return [0n, 2n ** 64n - 1n];
  }
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function annotationXml(annotations: Record<string, string> | undefined, indent: string): string {
  let out = "";
  for (const [name, value] of Object.entries(annotations ?? {})) {
    out += `${indent}<annotation name="${xmlEscape(name)}" value="${xmlEscape(value)}"/>\n`;
  }
  return out;
}

function argXml(arg: ArgSpec, direction: "in" | "out" | null, indent: string): string {
  const name = arg.name ? ` name="${xmlEscape(arg.name)}"` : "";
  const dir = direction ? ` direction="${direction}"` : "";
  return `${indent}<arg${name} type="${arg.type}"${dir}/>\n`;
}

function interfaceXml(iface: InterfaceSpec): string {
  let out = `  <interface name="${iface.name}">\n`;
  for (const [name, m] of Object.entries(iface.methods ?? {})) {
    out += `    <method name="${name}">\n`;
    for (const a of m.in ?? []) out += argXml(a, "in", "      ");
    for (const a of m.out ?? []) out += argXml(a, "out", "      ");
    out += annotationXml(m.annotations, "      ");
    out += `    </method>\n`;
  }
  for (const [name, s] of Object.entries(iface.signals ?? {})) {
    out += `    <signal name="${name}">\n`;
    for (const a of s.args) out += argXml(a, null, "      ");
    out += annotationXml(s.annotations, "      ");
    out += `    </signal>\n`;
  }
  for (const [name, p] of Object.entries(iface.properties ?? {})) {
    const ann = annotationXml(p.annotations, "      ");
    out += ann
      ? `    <property name="${name}" type="${p.type}" access="${p.access}">\n${ann}    </property>\n`
      : `    <property name="${name}" type="${p.type}" access="${p.access}"/>\n`;
  }
  out += annotationXml(iface.annotations, "    ");
  out += `  </interface>\n`;
  return out;
}

const STANDARD_INTERFACES_XML = `  <interface name="${INTROSPECTABLE}">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="${PEER}">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg name="machine_uuid" type="s" direction="out"/>
    </method>
  </interface>
`;

const PROPERTIES_XML = `  <interface name="${PROPERTIES}">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="props" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/>
      <arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>
`;

export type ServiceLog = (msg: string) => void;

/** Answer a call; unless told not to, only once what it changed is on disk. */
type Reply = (signature: string, body: unknown[], waitForDisk?: boolean) => void;

export class DBusService {
  private objects = new Map<string, ExportedObject>();
  private readonly handler: (msg: MessageT) => boolean;

  constructor(
    readonly bus: MessageBus,
    private readonly onError: ServiceLog = () => {},
    /**
     * Resolves when what a call on `path` changed is durable: a reply is an
     * acknowledgement. A rejection (a ServiceError) is the caller's answer instead.
     */
    private readonly durable: (path: string) => Promise<void> = () => Promise.resolve(),
  ) {
    this.handler = (msg) => this.handle(msg);
    bus.addMethodHandler(this.handler);
  }

  export(obj: ExportedObject): void {
    this.objects.set(obj.path, obj);
  }

  unexport(path: string): void {
    this.objects.delete(path);
  }

  close(): void {
    this.bus.removeMethodHandler(this.handler);
  }

  /** Emit a signal; the values must match the signal's argument types. */
  emit(path: string, iface: string, name: string, signature: string, body: unknown[]): void {
    try {
      this.bus.send(Message.newSignal(path, iface, name, signature, body));
    } catch (err) {
      this.onError(`could not emit D-Bus signal ${iface}.${name} on ${path}: ${(err as Error).message}`);
    }
  }

  /** Properties of one interface as a{sv} (readable ones only). */
  getAll(obj: ExportedObject, ifaceName: string): Record<string, Variant> {
    const out: Record<string, Variant> = {};
    for (const iface of obj.interfaces) {
      if (ifaceName !== "" && iface.name !== ifaceName) continue;
      for (const [name, p] of Object.entries(iface.properties ?? {})) {
        if (p.access === "write" || !p.get) continue;
        out[name] = new Variant(p.type, p.get());
      }
    }
    return out;
  }

  introspect(path: string): string {
    const obj = this.objects.get(path);
    let xml =
      '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n' +
      ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n' +
      `<node name="${xmlEscape(path)}">\n`;
    if (obj) {
      xml += STANDARD_INTERFACES_XML;
      if (obj.interfaces.some((i) => i.properties && Object.keys(i.properties).length)) xml += PROPERTIES_XML;
      for (const iface of obj.interfaces) xml += interfaceXml(iface);
    }
    const prefix = path === "/" ? "/" : `${path}/`;
    const children = new Set<string>();
    for (const p of this.objects.keys()) {
      if (p !== path && p.startsWith(prefix)) children.add(p.slice(prefix.length).split("/")[0]!);
    }
    for (const child of [...children].sort()) xml += `  <node name="${xmlEscape(child)}"/>\n`;
    return xml + "</node>\n";
  }

  private handle(msg: MessageT): boolean {
    if (msg.type !== METHOD_CALL) return false;
    // Peer.Ping and GetMachineId: dbus-next answers those.
    if (msg.interface === PEER) return false;
    const reply: Reply = (signature, body, waitForDisk = true) => {
      if (msg.flags & NO_REPLY_EXPECTED) return;
      const send = () => {
        try {
          this.bus.send(Message.newMethodReturn(msg, signature, body));
        } catch (err) {
          this.onError(`could not send D-Bus reply to ${msg.member}: ${(err as Error).message}`);
          this.sendError(msg, E.failed, "internal error building the reply");
        }
      };
      if (!waitForDisk) return send();
      void this.durable(msg.path ?? "/").then(send, (err: unknown) => this.fail(msg, err));
    };
    try {
      const result = this.dispatch(msg, reply);
      if (result instanceof Promise) {
        result.catch((err: unknown) => this.fail(msg, err));
      }
    } catch (err) {
      this.fail(msg, err);
    }
    return true;
  }

  private fail(msg: MessageT, err: unknown): void {
    if (err instanceof ServiceError) return this.sendError(msg, err.errorName, err.message);
    this.onError(`D-Bus ${msg.interface ?? ""}.${msg.member} on ${msg.path} failed: ${(err as Error)?.message ?? String(err)}`);
    this.sendError(msg, E.failed, (err as Error)?.message ?? "failed");
  }

  private sendError(msg: MessageT, name: string, text: string): void {
    if (msg.flags & NO_REPLY_EXPECTED) return;
    try {
      // dbus-next's typings say string, but newError takes the call being answered.
      this.bus.send(Message.newError(msg as unknown as string, name, text));
    } catch {
      // Nothing more can be done for this caller.
    }
  }

  private dispatch(msg: MessageT, reply: Reply): void | Promise<void> {
    const { path, member } = msg;
    const ifaceName = msg.interface;
    const signature = msg.signature ?? "";
    const body = msg.body ?? [];
    if (ifaceName === INTROSPECTABLE || (!ifaceName && member === "Introspect")) {
      if (member !== "Introspect" || signature !== "") throw new ServiceError(E.unknownMethod, `no method ${member}(${signature})`);
      return reply("s", [this.introspect(path)], false);
    }
    const obj = this.objects.get(path);
    if (!obj) throw new ServiceError(E.unknownObject, `no object at ${path}`);
    if (ifaceName === PROPERTIES) return this.properties(obj, member, signature, body, reply);

    for (const iface of obj.interfaces) {
      if (ifaceName && iface.name !== ifaceName) continue;
      const m = iface.methods?.[member];
      if (!m) continue;
      const expected = (m.in ?? []).map((a) => a.type).join("");
      if (signature !== expected) {
        throw new ServiceError(E.invalidArgs, `${iface.name}.${member} takes "${expected}", got "${signature}"`);
      }
      const outSig = (m.out ?? []).map((a) => a.type).join("");
      const send = (value: unknown) => {
        const n = (m.out ?? []).length;
        reply(outSig, n === 0 ? [] : n === 1 ? [value] : (value as unknown[]), !m.readOnly);
      };
      const result = m.call(...body);
      if (result instanceof Promise) return result.then(send);
      return send(result);
    }
    if (ifaceName && !obj.interfaces.some((i) => i.name === ifaceName)) {
      throw new ServiceError(E.unknownInterface, `no interface ${ifaceName} at ${path}`);
    }
    throw new ServiceError(E.unknownMethod, `no method ${member} at ${path}`);
  }

  private properties(
    obj: ExportedObject,
    member: string,
    signature: string,
    body: unknown[],
    reply: Reply,
  ): void | Promise<void> {
    const find = (ifaceName: string, prop: string): PropertySpec => {
      const candidates = obj.interfaces.filter((i) => ifaceName === "" || i.name === ifaceName);
      if (!candidates.length) throw new ServiceError(E.unknownInterface, `no interface ${ifaceName} at ${obj.path}`);
      for (const iface of candidates) {
        const p = iface.properties?.[prop];
        if (p) return p;
      }
      throw new ServiceError(E.unknownProperty, `no property ${prop} in ${ifaceName || "any interface"} at ${obj.path}`);
    };
    if (member === "Get" && signature === "ss") {
      const [ifaceName, prop] = body as [string, string];
      const p = find(ifaceName, prop);
      if (p.access === "write" || !p.get) throw new ServiceError(E.accessDenied, `property ${prop} is write-only`);
      return reply("v", [new Variant(p.type, p.get())], false);
    }
    if (member === "GetAll" && signature === "s") {
      const [ifaceName] = body as [string];
      if (ifaceName !== "" && !obj.interfaces.some((i) => i.name === ifaceName)) {
        throw new ServiceError(E.unknownInterface, `no interface ${ifaceName} at ${obj.path}`);
      }
      return reply("a{sv}", [this.getAll(obj, ifaceName)], false);
    }
    if (member === "Set" && signature === "ssv") {
      const [ifaceName, prop, variant] = body as [string, string, { signature: string; value: unknown }];
      const p = find(ifaceName, prop);
      if (p.access === "read" || !p.set) throw new ServiceError(E.readOnly, `property ${prop} is read-only`);
      const value = coerceVariant(p.type, variant);
      const done = p.set(value);
      if (done instanceof Promise) return done.then(() => reply("", []));
      return reply("", []);
    }
    throw new ServiceError(E.unknownMethod, `no method ${PROPERTIES}.${member}(${signature})`);
  }
}
