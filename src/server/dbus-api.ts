// The Mandos D-Bus API (DBUS-API in Debian's mandos package), as Mandos
// 1.8.16 publishes it, so Debian's mandos-ctl and mandos-monitor drive this
// server: bus name se.recompile.Mandos; "/" with se.recompile.Mandos and
// org.freedesktop.DBus.ObjectManager; one object per client at
// /clients/<name> with se.recompile.Mandos.Client. Mandos also still
// publishes every interface under its old name (se.bsnet.fukt.Mandos…,
// annotated deprecated) and sends every signal on both; so do we.
import { DBusService, ServiceError, DBUS_ERRORS, type ExportedObject, type InterfaceSpec, type PropertySpec } from "./dbus-service.js";
import type { ClientModel, ClientSignal } from "./client-model.js";
import { isoTimestamp } from "./timefmt.js";
import { Variant } from "dbus-next";

export const BUS_NAME = "se.recompile.Mandos";
export const OLD_BUS_NAME = "se.bsnet.fukt.Mandos";
export const SERVER_INTERFACE = "se.recompile.Mandos";
export const CLIENT_INTERFACE = "se.recompile.Mandos.Client";
const OLD_SERVER_INTERFACE = "se.bsnet.fukt.Mandos";
const OLD_CLIENT_INTERFACE = "se.bsnet.fukt.Mandos.Client";
const OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager";
const DEPRECATED = { "org.freedesktop.DBus.Deprecated": "true" };
const CONST = { "org.freedesktop.DBus.Property.EmitsChangedSignal": "const" };

/**
 * Object path for a client name. Mandos maps "." and "-" to "_"; we map
 * every character a path element may not hold, so any section name works.
 */
export function clientObjectPath(name: string): string {
  const element = name.replace(/[^A-Za-z0-9_]/g, "_");
  return `/clients/${element || "_"}`;
}

/** What the D-Bus layer may do to one client; the server applies and records it. */
export interface ClientControl {
  readonly model: ClientModel;
  readonly objectPath: string;
  /** Run one change against the model at the current time, then commit it. */
  change(fn: (model: ClientModel, now: number) => void): void;
}

export interface ServerControl {
  clients(): Iterable<ClientControl>;
  /** Remove a client by object path; false if there is none. */
  removeClient(objectPath: string): boolean;
}

/** A property value with its D-Bus type, for GetAll and change signals. */
export interface TypedValue {
  type: string;
  value: unknown;
}

/** Every readable client property, in Mandos's order. */
export function clientProperties(model: ClientModel, objectPath: string): Map<string, TypedValue> {
  const r = model.record;
  const m = new Map<string, TypedValue>();
  const put = (name: string, type: string, value: unknown) => m.set(name, { type, value });
  put("ApprovalDelay", "t", r.approvalDelayMs);
  put("ApprovalDuration", "t", r.approvalDurationMs);
  put("ApprovalPending", "b", model.approvalPending);
  put("ApprovedByDefault", "b", r.approvedByDefault);
  put("CheckerRunning", "b", model.checkerRunning);
  put("Checker", "s", r.checker);
  put("Created", "s", isoTimestamp(r.created));
  put("Enabled", "b", r.enabled);
  put("Expires", "s", isoTimestamp(r.expires));
  put("ExtendedTimeout", "t", r.extendedTimeoutMs);
  put("Fingerprint", "s", r.fingerprint);
  put("Host", "s", r.host);
  put("Interval", "t", r.intervalMs);
  put("KeyID", "s", r.keyId);
  put("LastApprovalRequest", "s", isoTimestamp(r.lastApprovalRequest));
  put("LastCheckedOK", "s", isoTimestamp(r.lastCheckedOK));
  put("LastCheckerStatus", "n", r.lastCheckerStatus);
  put("LastEnabled", "s", isoTimestamp(r.lastEnabled));
  put("Name", "s", r.name);
  put("ObjectPath", "o", objectPath);
  put("Timeout", "t", r.timeoutMs);
  return m;
}

/** Durations set over D-Bus: Mandos takes any millisecond count; refuse absurd ones. */
const MAX_DURATION_MS = 100 * 366 * 86_400_000;
function duration(value: unknown): number {
  const ms = value as number;
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_DURATION_MS) {
    throw new ServiceError(DBUS_ERRORS.invalidArgs, `duration out of range: ${ms} ms`);
  }
  return ms;
}

function clientInterface(name: string, c: ClientControl, deprecated: boolean): InterfaceSpec {
  const model = c.model;
  const props = () => clientProperties(model, c.objectPath);
  const ro = (prop: string, annotations?: Record<string, string>): PropertySpec => ({
    type: props().get(prop)!.type,
    access: "read",
    get: () => props().get(prop)!.value,
    ...(annotations ? { annotations } : {}),
  });
  const rw = (prop: string, set: (v: unknown) => void): PropertySpec => ({
    type: props().get(prop)!.type,
    access: "readwrite",
    get: () => props().get(prop)!.value,
    set,
  });
  const durationProp = (prop: string, apply: (m: ClientModel, now: number, ms: number) => void) =>
    rw(prop, (v) => {
      const ms = duration(v);
      c.change((m, now) => apply(m, now, ms));
    });
  return {
    name,
    ...(deprecated ? { annotations: DEPRECATED } : {}),
    methods: {
      Approve: { in: [{ name: "value", type: "b" }], call: (v) => c.change((m, now) => m.approve(now, v as boolean)) },
      CheckedOK: { call: () => c.change((m, now) => m.checkedOK(now)) },
      Enable: { annotations: DEPRECATED, call: () => c.change((m, now) => m.enable(now)) },
      StartChecker: { annotations: DEPRECATED, call: () => c.change((m, now) => m.startChecker(now)) },
      Disable: { annotations: DEPRECATED, call: () => c.change((m, now) => m.disable(now)) },
      StopChecker: { annotations: DEPRECATED, call: () => c.change((m) => m.stopChecker()) },
    },
    signals: {
      CheckerCompleted: {
        args: [
          { name: "exitcode", type: "n" },
          { name: "waitstatus", type: "x" },
          { name: "command", type: "s" },
        ],
      },
      CheckerStarted: { args: [{ name: "command", type: "s" }] },
      PropertyChanged: {
        args: [
          { name: "property", type: "s" },
          { name: "value", type: "v" },
        ],
        annotations: DEPRECATED,
      },
      GotSecret: { args: [] },
      Rejected: { args: [{ name: "reason", type: "s" }] },
      NeedApproval: {
        args: [
          { name: "timeout", type: "t" },
          { name: "default", type: "b" },
        ],
      },
    },
    properties: {
      ApprovalDelay: durationProp("ApprovalDelay", (m, now, ms) => m.setSetting(now, "approvalDelayMs", ms)),
      ApprovalDuration: durationProp("ApprovalDuration", (m, now, ms) => m.setSetting(now, "approvalDurationMs", ms)),
      ApprovalPending: ro("ApprovalPending"),
      ApprovedByDefault: rw("ApprovedByDefault", (v) => c.change((m, now) => m.setSetting(now, "approvedByDefault", v as boolean))),
      CheckerRunning: rw("CheckerRunning", (v) =>
        c.change((m, now) => (v ? m.startChecker(now) : m.stopChecker())),
      ),
      Checker: rw("Checker", (v) => c.change((m, now) => m.setSetting(now, "checker", v as string))),
      Created: ro("Created", CONST),
      Enabled: rw("Enabled", (v) => c.change((m, now) => (v ? m.enable(now) : m.disable(now)))),
      Expires: ro("Expires"),
      ExtendedTimeout: durationProp("ExtendedTimeout", (m, now, ms) => m.setSetting(now, "extendedTimeoutMs", ms)),
      Fingerprint: ro("Fingerprint", CONST),
      Host: rw("Host", (v) => c.change((m, now) => m.setSetting(now, "host", v as string))),
      Interval: durationProp("Interval", (m, now, ms) => m.setInterval(now, ms)),
      KeyID: ro("KeyID", CONST),
      LastApprovalRequest: ro("LastApprovalRequest"),
      // Setting it, to anything, means CheckedOK() (DBUS-API note h).
      LastCheckedOK: rw("LastCheckedOK", () => c.change((m, now) => m.checkedOK(now))),
      LastCheckerStatus: ro("LastCheckerStatus"),
      LastEnabled: ro("LastEnabled"),
      Name: ro("Name", CONST),
      ObjectPath: ro("ObjectPath", { ...CONST, ...DEPRECATED }),
      Secret: {
        type: "ay",
        access: "write",
        annotations: { "org.freedesktop.DBus.Property.EmitsChangedSignal": "invalidates" },
        set: (v) => c.change((m) => m.setSecret(v as Buffer)),
      },
      Timeout: durationProp("Timeout", (m, now, ms) => m.setTimeout(now, ms)),
    },
  };
}

const CLIENT_INTERFACE_NAMES = [
  "org.freedesktop.DBus.Introspectable",
  "org.freedesktop.DBus.Properties",
  CLIENT_INTERFACE,
  OLD_CLIENT_INTERFACE,
];

/** The Mandos API on a bus: the server object and one object per client. */
export class MandosDBus {
  private readonly server: ExportedObject;

  constructor(
    readonly service: DBusService,
    private readonly control: ServerControl,
  ) {
    this.server = { path: "/", interfaces: [this.objectManager(), this.serverInterface(SERVER_INTERFACE, false), this.serverInterface(OLD_SERVER_INTERFACE, true)] };
    service.export(this.server);
  }

  private objectManager(): InterfaceSpec {
    return {
      name: OBJECT_MANAGER,
      methods: {
        GetManagedObjects: {
          out: [{ name: "objpath_interfaces_and_properties", type: "a{oa{sa{sv}}}" }],
          readOnly: true,
          call: () => {
            const out: Record<string, Record<string, Record<string, Variant>>> = {};
            for (const c of this.control.clients()) out[c.objectPath] = this.interfacesAndProperties(c);
            return out;
          },
        },
      },
      signals: {
        InterfacesAdded: {
          args: [
            { name: "object_path", type: "o" },
            { name: "interfaces_and_properties", type: "a{sa{sv}}" },
          ],
        },
        InterfacesRemoved: {
          args: [
            { name: "object_path", type: "o" },
            { name: "interfaces", type: "as" },
          ],
        },
      },
    };
  }

  private serverInterface(name: string, deprecated: boolean): InterfaceSpec {
    return {
      name,
      ...(deprecated ? { annotations: DEPRECATED } : {}),
      methods: {
        GetAllClients: {
          out: [{ type: "ao" }],
          annotations: DEPRECATED,
          readOnly: true,
          call: () => [...this.control.clients()].map((c) => c.objectPath),
        },
        GetAllClientsWithProperties: {
          out: [{ type: "a{oa{sv}}" }],
          annotations: DEPRECATED,
          readOnly: true,
          call: () => {
            const out: Record<string, Record<string, Variant>> = {};
            for (const c of this.control.clients()) out[c.objectPath] = this.properties(c);
            return out;
          },
        },
        RemoveClient: {
          in: [{ name: "object_path", type: "o" }],
          call: (path) => {
            if (!this.control.removeClient(path as string)) {
              throw new ServiceError(DBUS_ERRORS.unknownObject, `no client at ${String(path)}`);
            }
          },
        },
      },
      signals: {
        ClientAdded: { args: [{ name: "objpath", type: "o" }] },
        ClientNotFound: {
          args: [
            { name: "key_id", type: "s" },
            { name: "address", type: "s" },
          ],
        },
        ClientRemoved: {
          args: [
            { name: "objpath", type: "o" },
            { name: "name", type: "s" },
          ],
          annotations: DEPRECATED,
        },
      },
    };
  }

  private properties(c: ClientControl): Record<string, Variant> {
    const out: Record<string, Variant> = {};
    for (const [name, v] of clientProperties(c.model, c.objectPath)) out[name] = new Variant(v.type, v.value);
    return out;
  }

  private interfacesAndProperties(c: ClientControl): Record<string, Record<string, Variant>> {
    return {
      "org.freedesktop.DBus.Introspectable": {},
      "org.freedesktop.DBus.Properties": {},
      [CLIENT_INTERFACE]: this.properties(c),
      [OLD_CLIENT_INTERFACE]: this.properties(c),
    };
  }

  private serverSignal(name: string, signature: string, body: unknown[]): void {
    this.service.emit("/", SERVER_INTERFACE, name, signature, body);
    this.service.emit("/", OLD_SERVER_INTERFACE, name, signature, body);
  }

  /** Export a client object and announce it (InterfacesAdded, ClientAdded). */
  addClient(c: ClientControl): void {
    this.service.export({
      path: c.objectPath,
      interfaces: [clientInterface(CLIENT_INTERFACE, c, false), clientInterface(OLD_CLIENT_INTERFACE, c, true)],
    });
    this.service.emit("/", OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}", [c.objectPath, this.interfacesAndProperties(c)]);
    this.serverSignal("ClientAdded", "o", [c.objectPath]);
  }

  /** Withdraw a client object (InterfacesRemoved, ClientRemoved). */
  removeClient(c: ClientControl): void {
    this.service.unexport(c.objectPath);
    this.service.emit("/", OBJECT_MANAGER, "InterfacesRemoved", "oas", [c.objectPath, CLIENT_INTERFACE_NAMES]);
    this.serverSignal("ClientRemoved", "os", [c.objectPath, c.model.name]);
  }

  clientNotFound(keyId: string, address: string): void {
    this.serverSignal("ClientNotFound", "ss", [keyId, address]);
  }

  /** A client's own signal, on both its interface names. */
  clientSignal(c: ClientControl, s: ClientSignal): void {
    const send = (name: string, signature: string, body: unknown[]) => {
      this.service.emit(c.objectPath, CLIENT_INTERFACE, name, signature, body);
      this.service.emit(c.objectPath, OLD_CLIENT_INTERFACE, name, signature, body);
    };
    switch (s.name) {
      case "CheckerStarted":
        return send("CheckerStarted", "s", [s.command]);
      case "CheckerCompleted":
        return send("CheckerCompleted", "nxs", [s.exitCode, s.waitStatus, s.command]);
      case "GotSecret":
        return send("GotSecret", "", []);
      case "Rejected":
        return send("Rejected", "s", [s.reason]);
      case "NeedApproval":
        return send("NeedApproval", "tb", [s.timeoutMs, s.approvedByDefault]);
    }
  }

  /** Changed properties: PropertyChanged (old, on both names) and PropertiesChanged. */
  propertiesChanged(c: ClientControl, changed: Map<string, TypedValue>, invalidated: string[]): void {
    for (const [name, v] of changed) {
      const variant = new Variant(v.type, v.value);
      this.service.emit(c.objectPath, CLIENT_INTERFACE, "PropertyChanged", "sv", [name, variant]);
      this.service.emit(c.objectPath, OLD_CLIENT_INTERFACE, "PropertyChanged", "sv", [name, variant]);
    }
    if (changed.size || invalidated.length) {
      const dict: Record<string, Variant> = {};
      for (const [name, v] of changed) dict[name] = new Variant(v.type, v.value);
      this.service.emit(c.objectPath, "org.freedesktop.DBus.Properties", "PropertiesChanged", "sa{sv}as", [
        CLIENT_INTERFACE,
        dict,
        invalidated,
      ]);
    }
  }
}
