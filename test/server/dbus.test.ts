// Our server on a private system bus, driven by Debian's mandos-ctl,
// mandos-monitor and mandos-client (1.8.16) and by our mandos-ctl, whose
// output must be identical to Debian's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { Message, Variant, type MessageBus } from "dbus-next";
import { requires, tempDir } from "../helpers/index.js";
import {
  ctl,
  ctlJson,
  fakeKeyId,
  fetchSecret,
  startFetch,
  serverWritableDir,
  sleep,
  startServer,
  waitFor,
  writeConfig,
  type ClientKeys,
  type PrivateBus,
  type RunningServer,
  type SeenSignal,
  type BusRig,
  busRig,
} from "../helpers/server.js";
import { DEBIAN_CLIENT, DEBIAN_CTL, DEBIAN_KEYGEN, DEBIAN_MONITOR, debianPasswordSection, debianPeer, debianPeerMissing, sectionSecret } from "../helpers/debian-peer.js";

const skip = requires({ commands: ["dbus-daemon"] }) || debianPeerMissing(DEBIAN_CTL, DEBIAN_CLIENT, DEBIAN_KEYGEN);

let dir: ReturnType<typeof tempDir>;
let bus: PrivateBus;
let keys: ClientKeys;
let server: RunningServer;
let watcher: MessageBus;
let signals: SeenSignal[];
let rig: BusRig;

before(async () => {
  if (skip) return;
  rig = await busRig("mandos-dbus-", "hunter2");
  ({ dir, bus, keys, watcher, signals } = rig);
  const clients = `[DEFAULT]
checker = true

${keys.section("foo.example")}
[bar-2.example]
host = bar
key_id = ${fakeKeyId(2)}
secret = aGVsbG8=
checker = exit 3
enabled = no

[baz]
host = baz
key_id = ${fakeKeyId(3)}
secret = aGVsbG8=
interval = P1D
timeout = PT2H3M
`;
  const configDir = writeConfig(join(dir.path, "conf"), { clients, port: 0 });
  const stateDir = serverWritableDir(join(dir.path, "state"));
  process.env.DBUS_SYSTEM_BUS_ADDRESS = bus.address;
  server = await startServer({ configDir, stateDir, env: bus.env });
});

after(async () => {
  if (skip) return;
  await server?.stop();
  rig?.close();
});

function sawSignal(member: string, path?: string, iface = "se.recompile.Mandos.Client") {
  return signals.some((s) => s.member === member && s.iface === iface && (path === undefined || s.path === path));
}

const json = (which: "debian" | "ours" = "debian") => ctlJson(which, bus.env);

/** Run the same mandos-ctl arguments with both programs; they must agree exactly. */
async function same(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const d = await ctl("debian", args, bus.env);
  const o = await ctl("ours", args, bus.env);
  assert.equal(o.stdout.toString(), d.stdout.toString(), `stdout of mandos-ctl ${args.join(" ")}`);
  assert.equal(o.code, d.code, `exit status of mandos-ctl ${args.join(" ")}`);
  if (d.stderr && !d.stderr.includes("Traceback")) assert.equal(o.stderr, d.stderr, `stderr of mandos-ctl ${args.join(" ")}`);
  return { code: d.code, stdout: d.stdout.toString() };
}

test("Debian's mandos-ctl lists our clients; ours prints exactly the same", { skip, timeout: 60_000 }, async () => {
  const table = await same([]);
  assert.match(table.stdout, /^Name {10}Enabled Timeout  Last Successful Check\n/);
  assert.match(table.stdout, /\nfoo\.example {3}Yes {5}00:05:00 {22}\n/);
  assert.match(table.stdout, /\nbar-2\.example No {6}00:05:00/);
  assert.match(table.stdout, /\nbaz {11}Yes {5}02:03:00/);
  const verbose = await same(["-v"]);
  assert.match(verbose.stdout, /1T00:00:00 baz/);
  await same(["-j"]);
  await same(["--verbose", "baz", "foo.example"]);
  assert.equal((await same(["-V", "foo.example"])).code, 0);
  assert.equal((await same(["-V", "bar-2.example"])).code, 1);
  assert.equal((await same(["nosuchclient"])).code, 1);
  assert.equal((await same(["-e"])).code, 2);
  assert.equal((await same(["-j", "-v"])).code, 2);
  const data = await json();
  assert.deepEqual(Object.keys(data), ["foo.example", "bar-2.example", "baz"]);
  assert.equal(data.baz!.Interval, 86_400_000);
  assert.equal(data["bar-2.example"]!.Expires, "");
  assert.equal(data.baz!.LastCheckerStatus, -2);
  assert.match(String(data.baz!.Created), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
});

test("enable, disable and --is-enabled, with both mandos-ctl programs", { skip, timeout: 60_000 }, async () => {
  for (const which of ["debian", "ours"] as const) {
    assert.equal((await ctl(which, ["--enable", "bar-2.example"], bus.env)).code, 0);
    assert.equal((await ctl(which, ["-V", "bar-2.example"], bus.env)).code, 0, `${which}: enabled`);
    assert.notEqual((await json())["bar-2.example"]!.Expires, "");
    assert.equal((await ctl(which, ["-d", "bar-2.example"], bus.env)).code, 0);
    assert.equal((await ctl(which, ["--is-enabled", "bar-2.example"], bus.env)).code, 1, `${which}: disabled`);
    assert.equal((await json())["bar-2.example"]!.Expires, "");
  }
  assert.ok(sawSignal("PropertyChanged", "/clients/bar_2_example"));
  assert.ok(sawSignal("PropertiesChanged", "/clients/bar_2_example", "org.freedesktop.DBus.Properties"));
});

test("every setter, with Debian's mandos-ctl and with ours", { skip, timeout: 60_000 }, async () => {
  const d = await ctl(
    "debian",
    ["-t", "PT1H", "--extended-timeout", "PT2H", "--approval-delay", "PT5S", "--approval-duration", "PT2S", "-H", "newhost", "-c", "echo %%(host)s", "--deny-by-default", "baz"],
    bus.env,
  );
  assert.equal(d.code, 0, d.stderr);
  let baz = (await json()).baz!;
  assert.equal(baz.Timeout, 3_600_000);
  assert.equal(baz.ExtendedTimeout, 7_200_000);
  assert.equal(baz.ApprovalDelay, 5000);
  assert.equal(baz.ApprovalDuration, 2000);
  assert.equal(baz.Host, "newhost");
  assert.equal(baz.Checker, "echo %%(host)s");
  assert.equal(baz.ApprovedByDefault, false);
  // Ours, including a value Debian's mandos-ctl cannot send (over 2^31 ms).
  const o = await ctl("ours", ["-t", "P52W", "--interval", "PT30M", "--approval-delay", "PT0S", "-H", "h2", "-c", "true", "--approve-by-default", "baz"], bus.env);
  assert.equal(o.code, 0, o.stderr);
  baz = (await json()).baz!;
  assert.equal(baz.Timeout, 52 * 7 * 86_400_000);
  assert.equal(baz.Interval, 1_800_000);
  assert.equal(baz.Host, "h2");
  assert.equal(baz.ApprovedByDefault, true);
  // The pre-1.6.1 time form, with the same warning as Debian's.
  const old = await same(["--approval-duration", "1s", "baz"]);
  assert.equal(old.code, 0);
  assert.equal((await json()).baz!.ApprovalDuration, 1000);
  // A setting change is kept in the state file at once.
  const state = spawnSync("cat", [join(dir.path, "state", "clients.json")], { encoding: "utf8" }).stdout;
  assert.match(state, /"host": "h2"/);
});

test("bump timeout, start and stop checkers, checker results", { skip, timeout: 60_000 }, async () => {
  assert.equal((await ctl("debian", ["-b", "baz"], bus.env)).code, 0);
  let baz = (await json()).baz!;
  assert.notEqual(baz.LastCheckedOK, "");
  assert.equal(baz.LastCheckerStatus, 0);

  assert.equal((await ctl("debian", ["-c", "sleep 30", "baz"], bus.env)).code, 0);
  assert.equal((await ctl("debian", ["--start-checker", "baz"], bus.env)).code, 0);
  assert.equal((await json()).baz!.CheckerRunning, true);
  assert.ok(sawSignal("CheckerStarted", "/clients/baz"));
  assert.equal((await ctl("ours", ["--stop-checker", "baz"], bus.env)).code, 0);
  assert.equal((await json()).baz!.CheckerRunning, false);

  // bar-2.example's checker exits with 3: status 3, wait status 3 << 8.
  assert.equal((await ctl("ours", ["--start-checker", "bar-2.example"], bus.env)).code, 0);
  await waitFor("the checker to finish", async () => (await json())["bar-2.example"]!.LastCheckerStatus === 3);
  const done = signals.find((s) => s.member === "CheckerCompleted" && s.path === "/clients/bar_2_example");
  assert.deepEqual(done?.body, [3, 768n, "exit 3"]);
  baz = (await json()).baz!;
  assert.equal(baz.Enabled, true);
});

test("approval: Debian's mandos-client waits until approved or denied", { skip, timeout: 90_000 }, async () => {
  // Served at once by default.
  const first = await fetchSecret(keys, server.port);
  assert.equal(first.stdout.toString(), "hunter2", first.stderr);
  await waitFor("GotSecret", () => sawSignal("GotSecret", "/clients/foo_example"));

  assert.equal((await ctl("debian", ["--approval-delay", "PT30S", "--deny-by-default", "foo.example"], bus.env)).code, 0);
  const approved = fetchSecret(keys, server.port, 40_000);
  await waitFor("a pending approval", async () => (await json())["foo.example"]!.ApprovalPending === true);
  assert.ok(sawSignal("NeedApproval", "/clients/foo_example"));
  assert.notEqual((await json())["foo.example"]!.LastApprovalRequest, "");
  assert.equal((await ctl("debian", ["--approve", "foo.example"], bus.env)).code, 0);
  const a = await approved;
  assert.equal(a.stdout.toString(), "hunter2", a.stderr);
  assert.equal((await json())["foo.example"]!.ApprovalPending, false);

  await sleep(1100); // let the approval's one-second duration pass
  const denied = startFetch(keys, server.port, 40_000);
  await waitFor("a pending approval", async () => (await json())["foo.example"]!.ApprovalPending === true);
  assert.equal((await ctl("ours", ["--deny", "foo.example"], bus.env)).code, 0);
  await waitFor("Rejected", () => signals.some((s) => s.member === "Rejected" && s.path === "/clients/foo_example" && s.body[0] === "Denied"));
  denied.kill();
  assert.equal((await denied.result).stdout.toString(), "", "no secret after a denial");
  assert.equal((await ctl("ours", ["--approval-delay", "PT0S", "foo.example"], bus.env)).code, 0);
});

test("a new secret set with --secret is what the client gets next", { skip, timeout: 60_000 }, async () => {
  // Another OpenPGP message for the same client key, with another passphrase.
  const b64 = sectionSecret(await debianPasswordSection(keys.dir, "swordfish", "other")).toString("base64");
  const secretFile = join(dir.path, "secret.bin");
  writeFileSync(secretFile, Buffer.from(b64, "base64"));
  assert.equal((await ctl("ours", ["--secret", secretFile, "foo.example"], bus.env)).code, 0);
  assert.ok(signals.some((s) => s.member === "PropertiesChanged" && s.path === "/clients/foo_example" && (s.body[2] as string[]).includes("Secret")));
  const r = await fetchSecret(keys, server.port);
  assert.equal(r.stdout.toString(), "swordfish", r.stderr);
  assert.ok(!server.output().includes("swordfish") && !server.output().includes(b64.slice(0, 40)), "no secret in the log");
});

test("an unknown key gives ClientNotFound; a disabled client is rejected", { skip, timeout: 60_000 }, async () => {
  assert.equal((await ctl("debian", ["-d", "foo.example"], bus.env)).code, 0);
  const refused = startFetch(keys, server.port);
  await waitFor("Rejected", () => signals.some((s) => s.member === "Rejected" && s.path === "/clients/foo_example" && s.body[0] === "Disabled"));
  refused.kill();
  assert.equal((await refused.result).stdout.toString(), "", "no secret for a disabled client");
  assert.equal((await ctl("debian", ["-e", "foo.example"], bus.env)).code, 0);
  // Remove foo.example: its key is then unknown.
  assert.equal((await ctl("debian", ["--deny", "--remove", "foo.example"], bus.env)).code, 0);
  assert.ok(signals.some((s) => s.member === "InterfacesRemoved" && s.body[0] === "/clients/foo_example"));
  assert.ok(signals.some((s) => s.member === "ClientRemoved" && s.iface === "se.recompile.Mandos" && s.body[1] === "foo.example"));
  const names = Object.keys(await json());
  assert.deepEqual(names, ["bar-2.example", "baz"]);
  const unknown = startFetch(keys, server.port);
  await waitFor("ClientNotFound", () => signals.some((s) => s.member === "ClientNotFound" && s.iface === "se.recompile.Mandos"));
  unknown.kill();
  await unknown.result;
  const nf = signals.find((s) => s.member === "ClientNotFound")!;
  assert.match(nf.body[0] as string, /^[0-9A-F]{64}$/);
  assert.equal(nf.body[1], "::1");
});

test("mandos-monitor shows our clients and follows changes", { skip: skip || requires({ commands: ["tmux"] }) || debianPeerMissing(DEBIAN_MONITOR), timeout: 60_000 }, async () => {
  const session = `mandos-test-${process.pid}`;
  const tmux = (...args: string[]) => spawnSync("tmux", args, { encoding: "utf8", timeout: 10_000 });
  tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "30", `env DBUS_SYSTEM_BUS_ADDRESS=${bus.address} TERM=xterm ${debianPeer(DEBIAN_MONITOR)}`);
  try {
    const screen = () => tmux("capture-pane", "-t", session, "-p").stdout;
    await waitFor("the monitor to list clients", () => /baz: enabled/.test(screen()) && /bar-2\.example: DISABLED/.test(screen()));
    assert.equal((await ctl("ours", ["-e", "bar-2.example"], bus.env)).code, 0);
    await waitFor("the monitor to show the change", () => !/bar-2\.example: DISABLED/.test(screen()));
    tmux("send-keys", "-t", session, "q");
  } finally {
    tmux("kill-session", "-t", session);
  }
});

test("GetManagedObjects, introspection and errors", { skip, timeout: 30_000 }, async () => {
  const call = (path: string, iface: string, member: string, signature = "", body: unknown[] = []) =>
    watcher.call(new Message({ destination: "se.recompile.Mandos", path, interface: iface, member, signature, body }));
  const managed = (await call("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"))!.body[0] as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(managed["/clients/baz"]!).sort(), [
    "org.freedesktop.DBus.Introspectable",
    "org.freedesktop.DBus.Properties",
    "se.bsnet.fukt.Mandos.Client",
    "se.recompile.Mandos.Client",
  ]);
  const xml = (await call("/clients/baz", "org.freedesktop.DBus.Introspectable", "Introspect"))!.body[0] as string;
  assert.match(xml, /<property name="Secret" type="ay" access="write">/);
  assert.match(xml, /<interface name="se.bsnet.fukt.Mandos.Client">/);
  const root = (await call("/", "org.freedesktop.DBus.Introspectable", "Introspect"))!.body[0] as string;
  assert.match(root, /<node name="clients"\/>/);
  await assert.rejects(call("/clients/baz", "org.freedesktop.DBus.Properties", "Get", "ss", ["se.recompile.Mandos.Client", "Secret"]), /write-only/);
  await assert.rejects(call("/clients/baz", "org.freedesktop.DBus.Properties", "Get", "ss", ["se.recompile.Mandos.Client", "Nope"]), /no property/);
  await assert.rejects(call("/", "se.recompile.Mandos", "RemoveClient", "o", ["/clients/nope"]), /no client/);
  // Bad input gets an error reply, never a crash.
  const set = (prop: string, v: Variant) => call("/clients/baz", "org.freedesktop.DBus.Properties", "Set", "ssv", ["se.recompile.Mandos.Client", prop, v]);
  await assert.rejects(set("Timeout", new Variant("s", "PT5M")), /expected an integer/);
  await assert.rejects(set("Timeout", new Variant("x", -5n)), /out of range/);
  await assert.rejects(set("Name", new Variant("s", "x")), /read-only/);
  await assert.rejects(set("Enabled", new Variant("s", "yes")), /expected type "b"/);
  await assert.rejects(call("/clients/baz", "se.recompile.Mandos.Client", "Approve", "s", ["yes"]), /takes "b"/);
  await assert.rejects(call("/clients/nope", "se.recompile.Mandos.Client", "Approve", "b", [true]), /no object/);
  await set("Timeout", new Variant("i", 600_000)); // what dbus-python sends for an int
  assert.equal((await json()).baz!.Timeout, 600_000);
  const old = (await call("/", "se.bsnet.fukt.Mandos", "GetAllClients"))!.body[0] as string[];
  assert.deepEqual(old, ["/clients/bar_2_example", "/clients/baz"]);
  // The server survived all of that.
  assert.equal(server.proc.exitCode, null);
});
