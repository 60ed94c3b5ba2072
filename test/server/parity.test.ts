// The D-Bus API of our server compared with Debian's mandos 1.8.16 itself,
// run one after the other on the same private bus with the same
// configuration: the same interfaces, methods, signals, property types and
// access, deprecation annotations, and managed objects.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import { join } from "node:path";
import { Message, Variant, systemBus, type MessageBus } from "dbus-next";
import { requires, tempDir } from "../helpers/index.js";
import { fakeKeyId, freePort, serverWritableDir, startBus, startServer, writeConfig } from "../helpers/server.js";
import { DEBIAN_SERVER, debianPeerMissing } from "../helpers/debian-peer.js";

const skip = requires({ root: true, commands: ["dbus-daemon", "gpg"], files: ["/usr/bin/python3"] }) || debianPeerMissing(DEBIAN_SERVER);

interface Api {
  /** "iface method Name(in)->(out)", "iface signal Name(sig)", "iface property Name type access", annotations. */
  members: Set<string>;
  managedInterfaces: string[];
  propertyTypes: Map<string, string>;
}

function members(xml: string, skipInterfaces: Set<string>): string[] {
  const out: string[] = [];
  for (const iface of xml.matchAll(/<interface name="([^"]+)">([^]*?)<\/interface>/g)) {
    const name = iface[1]!;
    if (skipInterfaces.has(name)) continue;
    const body = iface[2]!;
    for (const m of body.matchAll(/<(method|signal) name="([^"]+)"\s*(\/>|>([^]*?)<\/\1>)/g)) {
      const inner = m[4] ?? "";
      const args = [...inner.matchAll(/<arg\b([^>]*)\/>/g)].map((a) => {
        const type = /type="([^"]+)"/.exec(a[1]!)![1];
        const dir = /direction="([^"]+)"/.exec(a[1]!)?.[1] ?? (m[1] === "signal" ? "out" : "in");
        return `${dir}:${type}`;
      });
      out.push(`${name} ${m[1]} ${m[2]}(${args.join(",")})`);
      for (const ann of inner.matchAll(/<annotation name="([^"]+)" value="([^"]+)"/g)) out.push(`${name} ${m[1]} ${m[2]} @${ann[1]}=${ann[2]}`);
    }
    for (const p of body.matchAll(/<property name="([^"]+)" type="([^"]+)" access="([^"]+)"\s*(\/>|>([^]*?)<\/property>)/g)) {
      out.push(`${name} property ${p[1]} ${p[2]} ${p[3]}`);
      for (const ann of (p[5] ?? "").matchAll(/<annotation name="([^"]+)" value="([^"]+)"/g)) out.push(`${name} property ${p[1]} @${ann[1]}=${ann[2]}`);
    }
    // Interface-level annotations: those outside any member.
    const outside = body.replace(/<(method|signal|property)\b[^]*?(\/>|<\/\1>)/g, "");
    for (const ann of outside.matchAll(/<annotation name="([^"]+)" value="([^"]+)"/g)) out.push(`${name} @${ann[1]}=${ann[2]}`);
  }
  return out;
}

async function collect(bus: MessageBus): Promise<Api> {
  const call = async (path: string, iface: string, member: string) =>
    (await bus.call(new Message({ destination: "se.recompile.Mandos", path, interface: iface, member })))!.body[0];
  // Only the interfaces Mandos defines are compared; the standard ones differ by library.
  const standard = new Set(["org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Peer"]);
  const set = new Set<string>();
  for (const path of ["/", "/clients/c1_example"]) {
    for (const m of members((await call(path, "org.freedesktop.DBus.Introspectable", "Introspect")) as string, standard)) set.add(`${path} ${m}`);
  }
  const managed = (await call("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")) as Record<string, Record<string, Record<string, Variant>>>;
  const client = managed["/clients/c1_example"]!;
  const propertyTypes = new Map<string, string>();
  for (const [iface, props] of Object.entries(client)) {
    for (const [name, v] of Object.entries(props)) propertyTypes.set(`${iface} ${name}`, v.signature);
  }
  return { members: set, managedInterfaces: Object.keys(client).sort(), propertyTypes };
}

test("our D-Bus API is Debian's mandos 1.8.16 API", { skip, timeout: 120_000 }, async () => {
  using dir = tempDir("mandos-parity-");
  chmodSync(dir.path, 0o755);
  const bus = startBus(join(dir.path, "bus"));
  let watcher: MessageBus | null = null;
  try {
    const clients = `[c1.example]
host = c1
key_id = ${fakeKeyId(1)}
fingerprint = ${"B".repeat(40)}
secret = aGVsbG8=
checker = true
`;
    const configDir = writeConfig(join(dir.path, "conf"), { clients, port: await freePort() });
    process.env.DBUS_SYSTEM_BUS_ADDRESS = bus.address;
    watcher = systemBus();
    await new Promise<void>((resolve) => watcher!.once("connect", () => resolve()));

    const debian = await startServer({ configDir, stateDir: serverWritableDir(join(dir.path, "s1")), env: bus.env, debian: true, timeoutMs: 30_000 });
    let theirs: Api;
    try {
      theirs = await collect(watcher);
    } finally {
      await debian.stop();
    }
    const ours = await startServer({ configDir, stateDir: serverWritableDir(join(dir.path, "s2")), env: bus.env });
    let mine: Api;
    try {
      mine = await collect(watcher);
    } finally {
      await ours.stop();
    }
    assert.ok(theirs.members.size > 50, "Debian's API was read");
    assert.deepEqual([...mine.members].sort(), [...theirs.members].sort());
    assert.deepEqual(mine.managedInterfaces, theirs.managedInterfaces);
    assert.deepEqual(new Map([...mine.propertyTypes].sort()), new Map([...theirs.propertyTypes].sort()));
  } finally {
    watcher?.disconnect();
    bus.stop();
  }
});
