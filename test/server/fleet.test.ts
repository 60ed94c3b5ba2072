// Three of our servers sharing client state through a real 3-member etcd
// cluster on loopback (issue 9): a disable on one is enforced by all within
// a second (Debian's mandos-ctl, Debian's client's real handshake), each
// checker runs on one server and moves on when that server dies, approval
// crosses servers, the fleet fails closed without quorum and resumes
// without losing an acknowledged change, concurrent changes are not lost,
// and kill -9 right after an acknowledgement loses nothing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Message, Variant, type MessageBus } from "dbus-next";
import type { Etcd3 } from "etcd3";
import { requires, tempDir } from "../helpers/index.js";
import { DEBIAN_CLIENT, DEBIAN_SERVER, debianPeerMissing, startDebianServer } from "../helpers/debian-peer.js";
import { etcdMissing, startEtcd, type EtcdCluster } from "../helpers/etcd.js";
import { fleetConf, startFleet, stopFleet, type FleetMember } from "../helpers/fleet.js";
import {
  callServer,
  connectBus,
  ctl,
  fakeKeyId,
  metricSample,
  metricsUrl,
  fetchSecret,
  makeKeys,
  serverWritableDir,
  startBus,
  startServer,
  writeConfig,
  setClientProperty,
  sleep,
  startFetch,
  waitFor,
  CLIENT_INTERFACE,
  DEBIAN_CTL,
  type ClientKeys,
} from "../helpers/server.js";

const skip = requires({ root: true, commands: ["dbus-daemon"] }) || etcdMissing() || debianPeerMissing(DEBIAN_CTL) || debianPeerMissing(DEBIAN_CLIENT);

const PREFIX = "/mandos-fleet-test/";
const GRACE_S = 3;
const TTL_S = 2;

let dir: ReturnType<typeof tempDir>;
let cluster: EtcdCluster;
let etcd: Etcd3;
let fleet: FleetMember[];
let keys: ClientKeys;
let waiterKeys: ClientKeys;
let runsFile: string;

before(async () => {
  if (skip) return;
  dir = tempDir("mandos-fleet-");
  chmodSync(dir.path, 0o755);
  cluster = await startEtcd(join(dir.path, "etcd"));
  etcd = cluster.client();
  [keys, waiterKeys] = await Promise.all([makeKeys(join(dir.path, "keys"), "pw-one"), makeKeys(join(dir.path, "keys-waiter"), "pw-waiter")]);
  // The checker (run as nobody) appends the process ids of its ancestors.
  runsFile = join(dir.path, "runs");
  writeFileSync(runsFile, "", { mode: 0o666 });
  chmodSync(runsFile, 0o666);
  const checker = join(dir.path, "checker.sh");
  writeFileSync(
    checker,
    `#!/bin/sh\np=$$; chain=""\nwhile [ "$p" -gt 1 ]; do chain="$chain $p"; p=$(sed 's/.*) //' /proc/$p/stat | cut -d' ' -f2); done\necho "$chain" >> ${runsFile}\n`,
    { mode: 0o755 },
  );
  chmodSync(checker, 0o755);
  const clients =
    `[DEFAULT]\nchecker = true\n\n` +
    keys.section("one") +
    `\n` +
    waiterKeys.section("waiter") +
    `approval_delay = PT30S\napproved_by_default = False\n\n` +
    `[checked]\nhost = checked.example\nkey_id = ${fakeKeyId(1)}\nsecret = aGVsbG8=\nchecker = ${checker}\ninterval = PT1S\n\n` +
    `[toggled]\nhost = toggled.example\nkey_id = ${fakeKeyId(2)}\nsecret = aGVsbG8=\n\n` +
    `[acked]\nhost = acked.example\nkey_id = ${fakeKeyId(3)}\nsecret = aGVsbG8=\n\n` +
    `[expiring]\nhost = expiring.example\nkey_id = ${fakeKeyId(4)}\nsecret = aGVsbG8=\nchecker = false\ninterval = PT1S\ntimeout = PT3S\n`;
  fleet = await startFleet({ cluster, dir: join(dir.path, "fleet"), clients, prefix: PREFIX, graceS: GRACE_S, leaseTtlS: TTL_S, extra: "metrics_address = [::1]:0\n" });
});

after(async () => {
  if (skip) return;
  if (fleet) await stopFleet(fleet);
  await cluster?.stop();
  dir?.cleanup();
});

const member = (name: string) => fleet.find((m) => m.name === name)!;

async function stored(client: string): Promise<Record<string, unknown>> {
  const text = await etcd.get(`${PREFIX}clients/${client}`).string();
  assert.ok(text, `etcd holds ${client}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function shown(m: FleetMember): Promise<Record<string, Record<string, unknown>>> {
  const r = await ctl("debian", ["-j"], m.bus.env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as Record<string, Record<string, unknown>>;
}

const count = (text: string, s: string) => text.split(s).length - 1;

interface Seen {
  path: string;
  member: string;
  body: unknown[];
}

/** Every signal `m`'s server sends on its bus from now on, as mandos-monitor would see them. */
async function signalsOf(m: FleetMember): Promise<{ seen: Seen[]; close(): void }> {
  const conn = await connectBus(m.bus);
  await conn.call(
    new Message({ destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "AddMatch", signature: "s", body: ["type='signal'"] }),
  );
  const seen: Seen[] = [];
  conn.on("message", (msg: Message) => {
    if (msg.type === 4 /* SIGNAL */ && msg.sender !== "org.freedesktop.DBus") seen.push({ path: msg.path, member: msg.member, body: msg.body });
  });
  return { seen, close: () => conn.disconnect() };
}

/** A PropertiesChanged of a client's Enabled to `value`. */
const enabledChanged = (seen: Seen[], client: string, value: boolean) =>
  seen.some((s) => {
    if (s.path !== `/clients/${client}` || s.member !== "PropertiesChanged") return false;
    const changed = s.body[1] as Record<string, { value: unknown }>;
    return changed.Enabled?.value === value;
  });

/**
 * A real handshake by Debian's client with `m`, given `ms`: the password,
 * or null when the server refused (it logs why, once per handshake).
 */
async function tryFetch(m: FleetMember, k: ClientKeys, ms = 2500): Promise<string | null> {
  const f = startFetch(k, m.server.port, ms + 5000);
  const timer = setTimeout(() => f.kill(), ms);
  const r = await f.result;
  clearTimeout(timer);
  return r.code === 0 ? r.stdout.toString() : null;
}

/** Whether `m` refused `client` with a handshake made now (checked in its log). */
async function refuses(m: FleetMember, k: ClientKeys, client: string, why: string): Promise<boolean> {
  const before = count(m.server.output(), why);
  const got = await tryFetch(m, k);
  assert.equal(got, null, `${m.name} sent the secret of ${client}`);
  return count(m.server.output(), why) > before;
}

test("a timeout is decided once, by the server running the checker, and every server shows the client disabled", { skip, timeout: 60_000 }, async () => {
  await waitFor("every server to show expiring disabled", async () => {
    for (const m of fleet) if ((await shown(m)).expiring!.Enabled !== false) return false;
    return true;
  }, 20_000);
  const decided = fleet.filter((m) => m.server.output().includes("Disabling client expiring: timeout passed"));
  assert.equal(decided.length, 1, `decided by ${decided.map((m) => m.name).join(", ") || "none"}`);
  assert.equal((await stored("expiring")).enabled, false);
});

test("Debian's server ignores the etcd_* options of mandos.conf", { skip: skip || debianPeerMissing(DEBIAN_SERVER), timeout: 60_000 }, async () => {
  const debian = await startDebianServer({
    clientsConf: keys.section("one"),
    serverConf: { etcd_endpoints: cluster.endpoints.join(" "), etcd_prefix: PREFIX, etcd_grace: "3s", etcd_lease_ttl: "2s", etcd_ca: "/nonexistent.pem" },
  });
  try {
    const r = await fetchSecret(keys, debian.port);
    assert.equal(r.stdout.toString(), "pw-one", r.stderr);
  } finally {
    await debian.stop();
  }
});

test("a disable through Debian's mandos-ctl on A is enforced by B and C within 1 s; an enable on C makes A serve again", { skip, timeout: 120_000 }, async () => {
  const [a, b, c] = [member("A"), member("B"), member("C")];
  assert.equal(await tryFetch(b, keys), "pw-one", "B serves at first");
  const [sb, sc] = await Promise.all([signalsOf(b), signalsOf(c)]);
  const r = await ctl("debian", ["--disable", "one"], a.bus.env);
  assert.equal(r.code, 0, r.stderr);
  const acked = Date.now();
  await sleep(1000 - (Date.now() - acked));
  assert.ok(enabledChanged(sb.seen, "one", false) && enabledChanged(sc.seen, "one", false), "B and C signalled Enabled = false within 1 s");
  sb.close();
  sc.close();
  const [rb, rc] = await Promise.all([refuses(b, keys, "one", "Client one is disabled"), refuses(c, keys, "one", "Client one is disabled")]);
  assert.ok(rb && rc, "B and C turned the handshake away as disabled");
  assert.equal((await ctl("debian", ["-V", "one"], b.bus.env)).code, 1, "Debian's mandos-ctl on B shows it disabled");
  assert.equal((await stored("one")).enabled, false);

  assert.equal((await ctl("debian", ["--enable", "one"], c.bus.env)).code, 0);
  await sleep(1000);
  assert.equal(await tryFetch(a, keys), "pw-one", "A serves again");
});

test("approval across servers: a client waiting on B is released by mandos-ctl --approve on A", { skip, timeout: 60_000 }, async () => {
  const [a, b] = [member("A"), member("B")];
  const f = startFetch(waiterKeys, b.server.port, 30_000);
  try {
    await waitFor("B to wait for approval", () => b.server.output().includes("Client waiter needs approval"), 15_000);
    const r = await ctl("debian", ["--approve", "waiter"], a.bus.env);
    assert.equal(r.code, 0, r.stderr);
    const got = await f.result;
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.toString(), "pw-waiter");
  } finally {
    f.kill();
  }
});

test("200 concurrent disables and enables from two servers: the final state is the last acknowledged one, nothing lost", { skip, timeout: 180_000 }, async () => {
  const [a, b] = [member("A"), member("B")];
  const [ca, cb] = await Promise.all([connectBus(a.bus), connectBus(b.bus)]);
  const path = "/clients/toggled";
  try {
    const op = (conn: MessageBus, enable: boolean) => callServer(conn, path, CLIENT_INTERFACE, enable ? "Enable" : "Disable");
    // Each server also sets a field of its own once, midway, while the other keeps writing:
    // a server that wrote its whole, stale record would undo it.
    const loop = async (conn: MessageBus, at: number, own: () => Promise<unknown>) => {
      for (let i = 0; i < 200; i += 4) {
        if (i === at) await own();
        await Promise.all([0, 1, 2, 3].map(() => op(conn, Math.random() < 0.5)));
      }
    };
    await Promise.all([
      loop(ca, 100, () => setClientProperty(ca, path, "Host", new Variant("s", "set-by-a"))),
      loop(cb, 120, () => setClientProperty(cb, path, "ExtendedTimeout", new Variant("t", 61_000))),
    ]);
    // The last change, acknowledged after every other one.
    const last = Math.random() < 0.5;
    await op(cb, last);
    const s = await stored("toggled");
    assert.equal(s.enabled, last, "etcd holds the last acknowledged change");
    assert.equal(s.host, "set-by-a", "A's host survived B's writes");
    assert.equal(s.extendedTimeoutMs, 61_000, "B's extended timeout survived A's writes");
    await sleep(1000);
    for (const m of fleet) {
      const t = (await shown(m)).toggled!;
      assert.equal(t.Enabled, last, `${m.name} shows the last change`);
      assert.equal(t.Host, "set-by-a");
    }
  } finally {
    ca.disconnect();
    cb.disconnect();
  }
});

test("kill -9 right after a D-Bus change is acknowledged: etcd holds it", { skip, timeout: 60_000 }, async () => {
  const a = member("A");
  const conn = await connectBus(a.bus);
  try {
    await new Promise<void>((resolve, reject) => {
      callServer(conn, "/clients/acked", CLIENT_INTERFACE, "Disable").then(() => {
        a.server.proc.kill("SIGKILL");
        resolve();
      }, reject);
    });
    await a.server.exited;
    assert.equal((await stored("acked")).enabled, false);
  } finally {
    conn.disconnect();
  }
  await a.restart();
  assert.equal((await shown(a)).acked!.Enabled, false, "A comes back with it");
});

/** Which server each checker run since `from` (a line number) came from. */
function runsSince(from: number): { servers: string[]; lines: number } {
  const lines = readFileSync(runsFile, "utf8").split("\n").filter((l) => l.trim() !== "");
  const byPid = new Map(fleet.map((m) => [String(m.server.proc.pid), m.name]));
  const servers = lines.slice(from).map((l) => l.trim().split(/\s+/).map((p) => byPid.get(p)).find((n) => n !== undefined) ?? "?");
  return { servers, lines: lines.length };
}

test("a checker runs on exactly one server; kill -9 that server and another runs it within the lease TTL", { skip, timeout: 90_000 }, async () => {
  const start = runsSince(0).lines;
  await sleep(4000);
  const first = runsSince(start);
  assert.ok(first.servers.length >= 2, `the checker ran (${first.servers.length} runs)`);
  const holders = new Set(first.servers);
  assert.equal(holders.size, 1, `runs by one server only: ${first.servers.join(" ")}`);
  const holder = member([...holders][0]!);
  assert.ok(holder, `runs by one of our servers: ${first.servers.join(" ")}`);

  const mark = runsSince(0).lines;
  const killed = Date.now();
  await holder.server.kill9();
  await waitFor("another server to run the checker", () => runsSince(mark).servers.some((s) => s !== holder.name && s !== "?"), TTL_S * 1000 + 1500);
  const tookOver = Date.now() - killed;
  assert.ok(tookOver <= TTL_S * 1000 + 1500, `taken over after ${tookOver} ms`);
  const mark2 = runsSince(0).lines;
  await sleep(3000);
  const after = new Set(runsSince(mark2).servers);
  assert.equal(after.size, 1, `one server again: ${[...after].join(" ")}`);
  await holder.restart();
});

test("without etcd quorum past the grace period every server stops serving; with it back they serve and no acknowledged change is lost", { skip, timeout: 120_000 }, async () => {
  let conn: MessageBus | undefined;
  let failed = true;
  try {
    await cluster.kill(0);
    conn = await connectBus(member("B").bus);
    for (const m of fleet) assert.equal(await tryFetch(m, keys), "pw-one", `${m.name} serves with one member down`);
    // If the killed member led, the two left elect a leader first: a change
    // made during that election is refused, rightly, and is not what this tests.
    await cluster.ready();
    await setClientProperty(conn, "/clients/toggled", "Host", new Variant("s", "before-outage"));
    const lost = Date.now();
    await Promise.all([cluster.kill(1), cluster.kill(2)]);
    await assert.rejects(
      setClientProperty(conn, "/clients/toggled", "Host", new Variant("s", "during-outage")),
      (err: { text?: string }) => /^etcd did not commit the change to toggled: .* \(undone\)$/.test(err.text ?? ""),
      "not acknowledged without quorum",
    );
    await sleep(GRACE_S * 1000 + 1500 - (Date.now() - lost));
    const watching = await Promise.all(fleet.map(signalsOf));
    const refused = await Promise.all(fleet.map((m) => refuses(m, keys, "one", "Not sending the secret of one")));
    assert.deepEqual(refused, [true, true, true], "every server refused for want of quorum");
    for (const w of watching) {
      w.close();
      const reasons = w.seen.filter((x) => x.path === "/clients/one" && x.member === "Rejected").map((x) => String(x.body[0]));
      assert.ok(reasons.some((t) => /^no etcd quorum for \d+ s/.test(t)), `said over D-Bus: ${reasons.join(" | ")}`);
    }
    for (const m of fleet) assert.match(m.server.output(), /Serving no secrets: no etcd quorum/);
    const scrape = await (await fetch(metricsUrl(member("A").server))).text();
    assert.ok(metricSample(scrape, 'mandos_refusals_total{reason="fleet_unconfirmed"}') >= 1, "the refusal is counted");
    assert.ok(metricSample(scrape, "mandos_state_write_seconds_count") >= 1, "etcd commits are timed");

    await cluster.heal();
    // Each server resynchronises at its own next read of etcd.
    for (const m of fleet) await waitFor(`${m.name} to serve again`, async () => (await tryFetch(m, keys)) === "pw-one", 20_000);
    assert.equal((await stored("toggled")).host, "before-outage", "the acknowledged change is in etcd");
    for (const m of fleet) assert.equal((await shown(m)).toggled!.Host, "before-outage", `${m.name} shows it`);
    failed = false;
  } finally {
    conn?.disconnect();
    // A failure above must not leave the next tests without quorum, nor be hidden by a failure to heal.
    if (failed) await cluster.heal().catch((err: unknown) => console.error(`etcd cluster not healed after the failure: ${String(err)}`));
  }
});

test("migration: the first server seeds etcd from its state file, create-only; a second one takes etcd's state", { skip, timeout: 90_000 }, async () => {
  const prefix = "/mandos-fleet-migration/";
  const clients = `[local]\nhost = local.example\nkey_id = ${fakeKeyId(9)}\nsecret = aGVsbG8=\nchecker = true\n`;
  const bus = startBus(join(dir.path, "migration-bus"));
  const stateX = serverWritableDir(join(dir.path, "migration-state-x"));
  const stateY = serverWritableDir(join(dir.path, "migration-state-y"));
  try {
    // On local state: disabled, and a host set over D-Bus.
    const local = writeConfig(join(dir.path, "migration-local"), { clients, port: 0 });
    let server = await startServer({ configDir: local, stateDir: stateX, env: bus.env });
    const conn = await connectBus(bus);
    await callServer(conn, "/clients/local", CLIENT_INTERFACE, "Disable");
    await setClientProperty(conn, "/clients/local", "Host", new Variant("s", "from-state-file.example"));
    conn.disconnect();
    await server.stop();

    const fleetDir = writeConfig(join(dir.path, "migration-fleet"), { clients, port: 0, extra: fleetConf({ cluster, prefix }) });
    server = await startServer({ configDir: fleetDir, stateDir: stateX, env: bus.env });
    await server.stop();
    const key = `${prefix}clients/local`;
    const seeded = (await etcd.get(key).exec()).kvs[0]!;
    const value = JSON.parse(seeded.value.toString()) as Record<string, unknown>;
    assert.equal(value.enabled, false);
    assert.equal(value.host, "from-state-file.example");

    // A server with a fresh state file (the client enabled) does not overwrite it.
    server = await startServer({ configDir: fleetDir, stateDir: stateY, env: bus.env });
    try {
      const shownY = JSON.parse((await ctl("debian", ["-j"], bus.env)).stdout.toString()) as Record<string, Record<string, unknown>>;
      assert.equal(shownY.local!.Enabled, false, "the second server shows etcd's state");
      assert.equal(shownY.local!.Host, "from-state-file.example");
      const now = (await etcd.get(key).exec()).kvs[0]!;
      assert.equal(now.mod_revision, seeded.mod_revision, "not written again");
      assert.equal(now.create_revision, seeded.create_revision);
    } finally {
      await server.stop();
    }
  } finally {
    bus.stop();
  }
});

/** SIGHUP `m`'s server and wait for its reload to be done. */
async function hangUp(m: FleetMember): Promise<void> {
  const done = () => count(m.server.output(), "Reloaded: ");
  const seen = done();
  m.server.proc.kill("SIGHUP");
  await waitFor(`${m.name} to reload`, () => done() > seen, 15_000);
}

test("a client added by a reload (or replaced: a new key) takes etcd's state: disabled on A, added to B, it stays disabled everywhere", { skip, timeout: 120_000 }, async () => {
  const prefix = "/mandos-fleet-reload/";
  const section = (keyId: string) => `[late]\nhost = late.example\nkey_id = ${keyId}\nsecret = aGVsbG8=\nchecker = true\n`;
  const base = `[early]\nhost = early.example\nkey_id = ${fakeKeyId(20)}\nsecret = aGVsbG8=\nchecker = true\n\n`;
  const pair = await startFleet({ cluster, dir: join(dir.path, "fleet-reload"), clients: base, prefix, count: 2 });
  const [a, b] = pair as [FleetMember, FleetMember];
  const clientsConf = (m: FleetMember, text: string) => writeFileSync(join(m.configDir, "clients.conf"), text, { mode: 0o600 });
  const enabledIn = async (m: FleetMember) => (await shown(m)).late!.Enabled;
  const enabledInEtcd = async () => JSON.parse((await etcd.get(`${prefix}clients/late`).string())!).enabled as boolean;
  try {
    assert.equal(count(a.server.output(), "etcd with unencrypted endpoints"), 1, "one warning at start: etcd is the trust root");
    clientsConf(a, base + section(fakeKeyId(21)));
    await hangUp(a);
    await waitFor("A to seed late", async () => (await etcd.get(`${prefix}clients/late`).string()) !== null, 5000);
    const r = await ctl("debian", ["--disable", "late"], a.bus.env);
    assert.equal(r.code, 0, r.stderr.toString());
    assert.equal(await enabledInEtcd(), false);

    clientsConf(b, base + section(fakeKeyId(21)));
    await hangUp(b);
    assert.equal(await enabledIn(b), false, "B shows etcd's state, not a fresh one");
    // Longer than a beat: nothing B writes later enables it either.
    await sleep(1500);
    assert.equal(await enabledInEtcd(), false, "etcd still has it disabled");
    assert.equal(await enabledIn(a), false, "A still has it disabled");

    clientsConf(b, base + section(fakeKeyId(22)));
    await hangUp(b);
    await sleep(1500);
    assert.equal(await enabledIn(b), false, "the replaced client on B too");
    assert.equal(await enabledInEtcd(), false);
    assert.equal(await enabledIn(a), false);
  } finally {
    await stopFleet(pair);
  }
});

test("a D-Bus change before the server has read etcd is refused, not acknowledged and then lost to etcd's state", { skip, timeout: 120_000 }, async () => {
  const solo = await startEtcd(join(dir.path, "etcd-solo"), 1);
  const prefix = "/mandos-fleet-unread/";
  const clients = `[unread]\nhost = unread.example\nkey_id = ${fakeKeyId(30)}\nsecret = aGVsbG8=\nchecker = true\n`;
  const bus = startBus(join(dir.path, "unread-bus"));
  try {
    const configDir = writeConfig(join(dir.path, "unread-conf"), { clients, port: 0, extra: fleetConf({ cluster: solo, prefix }) });
    // etcd holds the client disabled.
    let server = await startServer({ configDir, stateDir: serverWritableDir(join(dir.path, "unread-state-1")), env: bus.env });
    let conn = await connectBus(bus);
    await callServer(conn, "/clients/unread", CLIENT_INTERFACE, "Disable");
    conn.disconnect();
    await server.stop();

    // Started while etcd is down: a fresh state file, nothing read from etcd.
    await solo.kill(0);
    server = await startServer({ configDir, stateDir: serverWritableDir(join(dir.path, "unread-state-2")), env: bus.env });
    try {
      conn = await connectBus(bus);
      await assert.rejects(
        setClientProperty(conn, "/clients/unread", "Host", new Variant("s", "unread-change")),
        (err: { text?: string }) => /^etcd did not commit the change to unread: .*\(undone\)$/.test(err.text ?? ""),
        "not acknowledged before etcd holds it",
      );
      conn.disconnect();
      await solo.restart(0);
      await solo.ready();
      const view = async () => JSON.parse((await ctl("debian", ["-j"], bus.env)).stdout.toString()) as Record<string, Record<string, unknown>>;
      await waitFor("etcd's state to be read", async () => (await view()).unread!.Enabled === false, 20_000);
      assert.equal((await view()).unread!.Host, "unread.example");
    } finally {
      await server.stop();
    }
  } finally {
    bus.stop();
    await solo.stop();
  }
});

test("a D-Bus change to one client is acknowledged though another client's change in the same round fails", { skip, timeout: 60_000 }, async () => {
  const conn = await connectBus(member("A").bus);
  try {
    // Larger than etcd takes in one request (1.5 MiB): that client's commit fails.
    const huge = new Variant("ay", Buffer.alloc(2 * 1024 * 1024, 7));
    const [big, small] = await Promise.allSettled([
      setClientProperty(conn, "/clients/acked", "Secret", huge),
      setClientProperty(conn, "/clients/toggled", "Host", new Variant("s", "same-round")),
    ]);
    assert.equal(big.status, "rejected", "the oversized secret is not committed");
    assert.match(String((big as PromiseRejectedResult).reason?.text), /^etcd did not commit the change to acked: /);
    assert.equal(small.status, "fulfilled", `the other change is acknowledged: ${String((small as PromiseRejectedResult).reason?.text)}`);
    assert.equal((await stored("toggled")).host, "same-round");
  } finally {
    conn.disconnect();
  }
});
