// Reload decisions on a fake clock: reconcile() sorts a new clients.conf
// into added / removed / replaced / changed / unchanged, reconcileSettings()
// splits mandos.conf changes into those applied now and those that need a
// restart, and MandosServer.applyConfiguration() keeps the run-time state of
// every client the reload does not touch.
import { test } from "node:test";
import assert from "node:assert/strict";
import { reconcile, reconcileSettings, type RunningConfiguration } from "../../src/server/reconcile.js";
import { MandosServer, type Checkers, type Timers } from "../../src/server/server.js";
import { freshRecord, type ConfiguredClient } from "../../src/server/state.js";
import { parseServerConf } from "../../src/config/index.js";
import type { Logger } from "../../src/cli/log.js";
import type { SecretGrant } from "../../src/server/connection.js";
import { MIN, configuredClient } from "../helpers/server-clients.js";

const NOW = 1_000_000;
const conf = (name: string, over: Partial<ConfiguredClient> = {}) =>
  configuredClient({ name, keyId: name.toUpperCase().padEnd(64, "0").replace(/[^0-9A-F]/g, "0"), ...over });

function running(configured: ConfiguredClient[], removed: string[] = []): RunningConfiguration {
  const records = configured.filter((c) => !removed.includes(c.name)).map((c) => freshRecord(c, 0));
  return { configured, records, removed: new Set(removed) };
}

test("reconcile sorts clients into added, removed, changed and unchanged; new records are dated by the clock", () => {
  const before = [conf("a"), conf("b"), conf("c")];
  const next = [conf("a"), conf("c", { timeoutMs: 7 * MIN, secret: Buffer.from("new") }), conf("d")];
  const plan = reconcile(running(before), next, NOW);
  assert.deepEqual(plan.unchanged, ["a"]);
  assert.deepEqual(plan.removed, ["b"]);
  assert.deepEqual(plan.added.map((r) => r.name), ["d"]);
  assert.equal(plan.added[0]!.created, NOW);
  assert.equal(plan.added[0]!.expires, NOW + 5 * MIN);
  assert.deepEqual(plan.changed, [{ name: "c", settings: { timeoutMs: 7 * MIN }, secret: Buffer.from("new") }]);
  assert.deepEqual(plan.replaced, []);
  assert.deepEqual(plan.configured.map((c) => c.name), ["a", "c", "d"]);
});

test("only settings changed in clients.conf count: a value changed over D-Bus alone is no change", () => {
  const before = [conf("a", { host: "old" })];
  const state = running(before);
  // Over D-Bus, someone set another interval; clients.conf still says the old one.
  (state.records[0] as { intervalMs: number }).intervalMs = 9 * MIN;
  assert.deepEqual(reconcile(state, [conf("a", { host: "old" })], NOW).unchanged, ["a"]);
  const plan = reconcile(state, [conf("a", { host: "new", enabled: false })], NOW);
  assert.deepEqual(plan.changed, [{ name: "a", settings: { host: "new", enabled: false }, secret: null }]);
});

test("another key ID or fingerprint replaces the client with a fresh one", () => {
  const before = [conf("a"), conf("b", { fingerprint: "F".repeat(40) })];
  const plan = reconcile(running(before), [conf("a", { keyId: "1".repeat(64) }), conf("b", { fingerprint: "" })], NOW);
  assert.deepEqual(plan.replaced.map((r) => [r.name, r.created]), [["a", NOW], ["b", NOW]]);
  assert.deepEqual([plan.added, plan.removed, plan.changed, plan.unchanged], [[], [], [], []]);
});

test("a client removed over D-Bus stays removed while its section is unchanged, and is forgotten with it", () => {
  const before = [conf("a"), conf("b")];
  assert.deepEqual(reconcile(running(before, ["b"]), before, NOW).removedOverDbus, ["b"]);
  const changed = reconcile(running(before, ["b"]), [conf("a"), conf("b", { host: "elsewhere" })], NOW);
  assert.deepEqual([changed.removedOverDbus, changed.added.map((r) => r.name)], [[], ["b"]]);
  const gone = reconcile(running(before, ["b"]), [conf("a")], NOW);
  assert.deepEqual([gone.removedOverDbus, gone.removed], [[], []]);
});

test("mandos.conf: debuglevel, priority and max_connections_per_address apply now; the rest need a restart", () => {
  const old = parseServerConf("[DEFAULT]\nport = 1\n", "mandos.conf");
  const next = parseServerConf(
    "[DEFAULT]\nport = 2\naddress = ::1\ndebuglevel = DEBUG\npriority = NORMAL\nmax_connections_per_address = 3\nuse_dbus = no\n",
    "mandos.conf",
  );
  const change = reconcileSettings(old, next);
  assert.deepEqual(change.applied, ["priority", "debuglevel", "max_connections_per_address"]);
  assert.deepEqual(change.needRestart.sort(), ["address", "port", "use_dbus"]);
  assert.equal(change.settings.port, 1);
  assert.equal(change.settings.address, null);
  assert.equal(change.settings.priority, "NORMAL");
  assert.equal(change.settings.maxConnectionsPerAddress, 3);
  assert.deepEqual(reconcileSettings(old, old), { settings: old, applied: [], needRestart: [] });
});

test("mandos.conf read twice from the same text is unchanged; a real change is named by its mandos.conf option", () => {
  const text = "[DEFAULT]\nmetrics_address = [::1]:9797\netcd_endpoints = http://[::1]:2379\netcd_prefix = /mandos/\n";
  const read = (t: string) => parseServerConf(t, "mandos.conf");
  assert.deepEqual(reconcileSettings(read(text), read(text)), { settings: read(text), applied: [], needRestart: [] });
  const changed = reconcileSettings(
    read(text),
    read("[DEFAULT]\nmetrics_address = [::1]:9798\netcd_endpoints = http://[::1]:2379\netcd_prefix = /other/\netcd_grace = 30s\n"),
  );
  assert.deepEqual(changed.needRestart.sort(), ["etcd_grace", "etcd_prefix", "metrics_address"]);
  assert.deepEqual(reconcileSettings(read("[DEFAULT]\n"), read(text)).needRestart.sort(), ["etcd_endpoints", "metrics_address"]);
});

// ---- The server applying a reload, with fake timers and checkers ----------

function fakeServer(configured: ConfiguredClient[]) {
  let now = NOW;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let seq = 0;
  const fakeTimers: Timers = {
    set: (fn, ms) => (timers.set(++seq, { at: now + ms, fn }), seq),
    clear: (h) => void timers.delete(h as number),
  };
  const spawned: string[] = [];
  const killed: string[] = [];
  const checkers: Checkers = {
    spawn: (key) => void spawned.push(key),
    kill: (key) => void killed.push(key),
    killAll: () => {},
  };
  const lines: string[] = [];
  const log: Logger = { error: (m) => lines.push(m), warning: (m) => lines.push(m), info: (m) => lines.push(m), debug: () => {}, debugEnabled: false };
  const records = configured.map((c) => freshRecord(c, now));
  const server = new MandosServer(configured, records, [], { log, checkers, statePath: null, now: () => now, random: () => 0, timers: fakeTimers });
  const advance = (ms: number) => {
    now += ms;
    for (const [id, t] of [...timers].sort(([, a], [, b]) => a.at - b.at)) {
      if (t.at > now || !timers.has(id)) continue;
      timers.delete(id);
      t.fn();
    }
  };
  const reloadWith = (next: ConfiguredClient[]) => server.applyConfiguration(reconcile(server.configuration(), next, now));
  return { server, advance, spawned, killed, lines, reloadWith, now: () => now };
}

function request(server: MandosServer, keyId: string): Promise<SecretGrant | null> {
  return server.requestSecret({ keyId, address: "::1", signal: new AbortController().signal });
}

test("applyConfiguration: unchanged clients keep enabled state, LastCheckedOK, running checker and pending approval", async () => {
  const waits = conf("waits", { approvalDelayMs: 10 * MIN, approvedByDefault: false });
  const goes = conf("goes", { approvalDelayMs: 10 * MIN });
  const f = fakeServer([conf("off"), conf("checked"), waits, goes, conf("edited")]);
  f.server.start();
  f.advance(1); // every first checker runs at once (random = 0; timers wait at least 1 ms)
  const entry = (n: string) => f.server.client(n)!;
  entry("off").change((m, now) => m.disable(now));
  entry("checked").change((m, now) => m.checkedOK(now));
  const lastOK = entry("checked").model.record.lastCheckedOK;
  const pending = request(f.server, waits.keyId);
  const removedPending = request(f.server, goes.keyId);
  assert.equal(entry("waits").model.approvalPending, true);
  const running = entry("checked").model.checkerRunning;
  const nextCheck = entry("checked").model.nextCheckerTime;
  const killedBefore = f.killed.length;

  f.advance(1000);
  f.reloadWith([conf("off"), conf("checked"), waits, conf("edited", { timeoutMs: 20 * MIN }), conf("new")]);

  assert.equal(entry("off").model.record.enabled, false);
  assert.equal(entry("checked").model.record.lastCheckedOK, lastOK);
  assert.equal(entry("checked").model.checkerRunning, running);
  assert.equal(entry("checked").model.nextCheckerTime, nextCheck);
  assert.equal(entry("waits").model.approvalPending, true);
  // The removed client: its checker killed, its waiting request refused.
  assert.equal(f.server.client("goes"), undefined);
  assert.equal(await removedPending, null);
  // A connection that reaches the lookup only now finds no such client.
  assert.equal(await request(f.server, goes.keyId), null);
  assert.equal(f.killed.length, killedBefore + 1);
  assert.match(f.killed.at(-1)!, /^\/clients\/goes#/);
  // The changed one: the new timeout moved its expiry.
  assert.equal(entry("edited").model.record.timeoutMs, 20 * MIN);
  // (It expired one interval after its first checker at NOW + 1; now 15 minutes later.)
  assert.equal(entry("edited").model.record.expires, NOW + 1 + 2 * MIN + 15 * MIN);
  // The new one: created now, first checker scheduled.
  assert.equal(entry("new").model.record.created, f.now());
  assert.notEqual(entry("new").model.nextCheckerTime, null);
  assert.deepEqual(f.server.clients().map((c) => c.model.name), ["off", "checked", "waits", "edited", "new"]);
  // The approval still pending is still answered.
  entry("waits").change((m, now) => m.approve(now, true));
  const grant = await pending;
  assert.equal(grant?.secret.toString(), "config secret");
});

test("applyConfiguration: a replaced client's old checker is never taken for its successor's", () => {
  const f = fakeServer([conf("a")]);
  f.server.start();
  f.advance(1);
  const old = f.spawned.at(-1)!;
  f.reloadWith([conf("a", { keyId: "2".repeat(64) })]);
  assert.ok(f.killed.includes(old));
  f.advance(1);
  const successor = f.spawned.at(-1)!;
  assert.notEqual(successor, old);
  assert.equal(f.server.client("a")!.model.record.keyId, "2".repeat(64));
});

test("applyConfiguration: a request waiting for approval through a reload gets the new secret", async () => {
  const waits = conf("waits", { approvalDelayMs: 10 * MIN });
  const f = fakeServer([waits]);
  f.server.start();
  const pending = request(f.server, waits.keyId);
  f.reloadWith([{ ...waits, secret: Buffer.from("new secret") }]);
  f.server.client("waits")!.change((m, now) => m.approve(now, true));
  assert.equal((await pending)?.secret.toString(), "new secret");
});
