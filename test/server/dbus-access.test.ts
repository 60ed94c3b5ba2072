// Who may use our server's D-Bus API, on a real dbus-daemon running the
// policy file we ship (units/dbus-mandos.conf) under the system bus's
// default rules. Root and members of the server's group call methods and
// receive its signals; any other local user (uid 65534, no groups) gets
// AccessDenied and none of the signals, which carry client names, key IDs
// and addresses. The other users are real programs (dbus-send, busctl,
// dbus-monitor) run through setpriv, as an attacker on the machine would.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync } from "node:fs";
import { once } from "node:events";
import { join } from "node:path";
import { Message, systemBus, type MessageBus } from "dbus-next";
import { keyIdFromPem } from "../../src/tls/index.js";
import { requires, run, tempDir, type RunResult } from "../helpers/index.js";
import { asNobody, mandosIds, serverWritableDir, startBus, startServer, waitFor, sleep, writeConfig, type PrivateBus, type RunningServer } from "../helpers/server.js";
import { fetchOverTls, tlsKeyPair } from "../helpers/tls-keys.js";

const skip =
  requires({ root: true, commands: ["dbus-daemon", "dbus-send", "dbus-monitor", "busctl", "setpriv"] }) ||
  (mandosIds() ? false : "needs user _mandos (Debian's mandos package)");

const CLIENT = "/clients/foo";
const IFACE = "se.recompile.Mandos.Client";

type Who = "stranger" | "member";

function as(who: Who, cmd: string, args: string[]): Promise<RunResult> {
  return run("setpriv", [...asNobody(who), cmd, ...args], { timeoutMs: 15_000 });
}

const dbusSend = (who: Who, member: string, ...args: string[]) =>
  as(who, "dbus-send", [`--bus=${bus.address}`, "--print-reply", "--dest=se.recompile.Mandos", CLIENT, `${IFACE}.${member}`, ...args]);
/** Set the write-only Secret property (dbus-send cannot send a variant holding an array). */
const setSecret = (who: Who, bytes: number[]) =>
  as(who, "busctl", [`--address=${bus.address}`, "call", "se.recompile.Mandos", CLIENT, "org.freedesktop.DBus.Properties", "Set", "ssv", IFACE, "Secret", "ay", String(bytes.length), ...bytes.map(String)]);

/** dbus-monitor as `who`: not allowed to become a monitor, it subscribes with eavesdropping match rules. */
class Monitor {
  readonly child: ChildProcess;
  out = "";
  constructor(who: Who) {
    this.child = spawn("setpriv", [...asNobody(who), "dbus-monitor", "--address", bus.address], { stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout!.on("data", (d: Buffer) => (this.out += d.toString()));
    this.child.stderr!.on("data", (d: Buffer) => (this.out += d.toString()));
  }
  /** Message headers: "signal sender=:1.4 -> destination=(null destination) ... member=X". */
  headers(): string[] {
    return this.out.split("\n").filter((l) => /^(signal|method call|method return|error) /.test(l));
  }
  /** What it got from, or saw sent to, the connection `unique`. */
  involving(unique: string): string[] {
    return this.headers().filter((h) => h.includes(` sender=${unique} `) || h.includes(` destination=${unique} `));
  }
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    await once(this.child, "close");
  }
}

let dir: ReturnType<typeof tempDir>;
let bus: PrivateBus;
let server: RunningServer;
let root: MessageBus;
let serverName: string;
let stranger: Monitor;
let member: Monitor;
const keys = tlsKeyPair();
const rootSignals: { member: string; body: unknown[] }[] = [];

before(async () => {
  if (skip) return;
  dir = tempDir("mandos-dbus-access-");
  chmodSync(dir.path, 0o755);
  bus = startBus(join(dir.path, "bus"));
  // Subscribed before the server starts, so they would see its first signals too.
  stranger = new Monitor("stranger");
  member = new Monitor("member");
  process.env.DBUS_SYSTEM_BUS_ADDRESS = bus.address;
  root = systemBus();
  await root.call(
    new Message({ destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "AddMatch", signature: "s", body: ["type='signal'"] }),
  );
  root.on("message", (msg: Message) => {
    if (msg.type === 4 /* SIGNAL */ && msg.sender !== "org.freedesktop.DBus") rootSignals.push({ member: msg.member ?? "", body: msg.body });
  });
  const clients = `[foo]
host = foo.example
key_id = ${keyIdFromPem(keys.publicPem)}
secret = ${Buffer.from("not really OpenPGP").toString("base64")}
checker = true
`;
  const configDir = writeConfig(join(dir.path, "conf"), { clients, port: 0 });
  server = await startServer({ configDir, stateDir: serverWritableDir(join(dir.path, "state")), env: bus.env });
  const owner = await root.call(
    new Message({ destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "GetNameOwner", signature: "s", body: ["se.recompile.Mandos"] }),
  );
  serverName = owner!.body[0] as string;
});

after(async () => {
  if (skip) return;
  await stranger?.stop();
  await member?.stop();
  await server?.stop();
  root?.disconnect();
  bus?.stop();
  dir?.cleanup();
});

async function enabled(): Promise<boolean> {
  const r = await root.call(
    new Message({ destination: "se.recompile.Mandos", path: CLIENT, interface: "org.freedesktop.DBus.Properties", member: "Get", signature: "ss", body: [IFACE, "Enabled"] }),
  );
  return (r!.body[0] as { value: boolean }).value;
}

const DENIED = /^Error org\.freedesktop\.DBus\.Error\.AccessDenied: Rejected send message/;

test("another user gets AccessDenied for Approve, Enable and setting the Secret; a member of the server's group does not", { skip, timeout: 60_000 }, async () => {
  await root.call(new Message({ destination: "se.recompile.Mandos", path: CLIENT, interface: IFACE, member: "Disable" }));
  assert.equal(await enabled(), false);

  const approve = await dbusSend("stranger", "Approve", "boolean:true");
  assert.equal(approve.code, 1);
  assert.match(approve.stderr, DENIED);
  const enable = await dbusSend("stranger", "Enable");
  assert.equal(enable.code, 1);
  assert.match(enable.stderr, DENIED);
  assert.equal(await enabled(), false, "the refused Enable changed nothing");
  const secret = await setSecret("stranger", [1, 2, 3]);
  assert.equal(secret.code, 1);
  assert.match(secret.stderr, /^Call failed: Access denied$/m);

  const byMember = await dbusSend("member", "Enable");
  assert.equal(byMember.code, 0, byMember.stderr);
  assert.equal(await enabled(), true);
  const secretByMember = await setSecret("member", [...Buffer.from("new secret")]);
  assert.equal(secretByMember.code, 0, secretByMember.stderr);
  const approveByMember = await dbusSend("member", "Approve", "boolean:true");
  assert.equal(approveByMember.code, 0, approveByMember.stderr);
  assert.match(approveByMember.stdout.toString(), new RegExp(`^method return .* sender=${serverName} `));
});

test("the server's signals reach root and its group, and no other user, who also cannot eavesdrop on calls", { skip, timeout: 60_000 }, async () => {
  // A member's calls (one carrying a secret), a known client fetching its
  // secret and an unknown key: each makes the server signal.
  assert.equal((await setSecret("member", [...Buffer.from("another secret")])).code, 0);
  assert.equal((await dbusSend("member", "Enable")).code, 0);
  assert.deepEqual(await fetchOverTls("::1", server.port, keys), Buffer.from("another secret"));
  const unknown = tlsKeyPair();
  assert.equal((await fetchOverTls("::1", server.port, unknown)).length, 0);
  const unknownId = keyIdFromPem(unknown.publicPem);

  const expected = ["ClientNotFound", "GotSecret", "PropertiesChanged"];
  await waitFor("root to receive the server's signals", () => expected.every((m) => rootSignals.some((s) => s.member === m)));
  assert.ok(rootSignals.some((s) => s.member === "ClientNotFound" && s.body[0] === unknownId && s.body[1] === "::1"));
  await waitFor("the group member to receive them", () =>
    expected.every((m) => member.involving(serverName).some((h) => h.startsWith("signal ") && h.endsWith(`member=${m}`))),
  );
  assert.ok(member.out.includes(unknownId), "the member got ClientNotFound's key id");
  // Broadcast to every recipient at once: what the stranger was sent is on its way.
  await sleep(500);
  await stranger.stop();
  assert.ok(
    stranger.headers().some((h) => h.includes("member=NameOwnerChanged")),
    `the stranger was subscribed (it got the bus's own signals):\n${stranger.out}`,
  );
  assert.deepEqual(stranger.involving(serverName), [], "nothing from or to the server");
  assert.ok(!stranger.out.includes(unknownId) && !stranger.out.includes("::1"), "no key id, no address");
  // (The bus itself announces who owns the names: NameOwnerChanged is public.)
  assert.doesNotMatch(stranger.out, /interface=se\.|path=\/clients|Mandos\.Client/);
});
