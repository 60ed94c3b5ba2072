// The pure rules of fleet state (src/server/fleet/shared.ts, view.ts) and
// the client model's fleet operations (adopt, setChecking), with a fake
// clock: merging concurrent changes field by field, batching timeout bumps,
// undoing what etcd did not commit, failing closed after the grace period.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ClientModel, type Effect } from "../../src/server/client-model.js";
import { encodeShared, mergeShared, onlyExpiryBump, parseShared, revertShared, serializeShared, type SharedState } from "../../src/server/fleet/shared.js";
import { checkerKey, parseKey, prefixEnd, refusalAt, stateKey } from "../../src/server/fleet/view.js";
import { parseServerConf } from "../../src/config/server.js";
import { clientRecord } from "../helpers/server-clients.js";

const CONFIG_SECRET = { source: "config" } as const;

function shared(over: Partial<SharedState> = {}): SharedState {
  return { ...encodeShared(new ClientModel(clientRecord()), CONFIG_SECRET), ...over };
}

const granted = (effects: Effect[]) => effects.filter((e) => e.type === "requestDone").map((e) => (e as { granted: boolean }).granted);

test("merge: fields changed here win, every other field comes from the newer committed value", () => {
  const base = shared();
  const local = shared({ host: "changed-here.example" });
  const remote = shared({ enabled: false, expires: null, timeoutMs: 1234 });
  const m = mergeShared(base, local, remote);
  assert.equal(m.host, "changed-here.example");
  assert.equal(m.enabled, false);
  assert.equal(m.timeoutMs, 1234);
});

test("merge: a client disabled elsewhere keeps no expiry bumped here", () => {
  const base = shared({ expires: 1000 });
  const m = mergeShared(base, shared({ expires: 5000 }), shared({ enabled: false, expires: null }));
  assert.equal(m.enabled, false);
  assert.equal(m.expires, null);
});

test("a later expiry alone is a batchable bump; anything else is not", () => {
  const base = shared({ expires: 1000 });
  assert.equal(onlyExpiryBump(base, shared({ expires: 2000 })), true);
  assert.equal(onlyExpiryBump(base, shared({ expires: 500 })), false);
  assert.equal(onlyExpiryBump(base, shared({ expires: 2000, enabled: false })), false);
  assert.equal(onlyExpiryBump(base, shared({ expires: 2000, host: "x" })), false);
});

test("undo: back to the committed state, but a disable made here stays", () => {
  const committed = shared({ enabled: true, expires: 9000, host: "committed.example" });
  assert.deepEqual(revertShared(committed, shared({ host: "uncommitted.example" })), committed);
  const r = revertShared(committed, shared({ enabled: false, expires: null, host: "uncommitted.example" }));
  assert.equal(r.enabled, false);
  assert.equal(r.expires, null);
  assert.equal(r.host, "committed.example");
});

test("stored values are read back field by field; a bad one is named", () => {
  const s = shared({ approval: { value: true, until: 5 } });
  assert.deepEqual(parseShared(serializeShared(s), "k"), s);
  assert.throws(() => parseShared("{", "/m/clients/foo"), { message: "/m/clients/foo: not JSON" });
  const bad = JSON.parse(serializeShared(s)) as Record<string, unknown>;
  bad.enabled = "yes";
  assert.throws(() => parseShared(JSON.stringify(bad), "/m/clients/foo"), { message: '/m/clients/foo: bad or missing "enabled"' });
});

test("fail closed: serve within the grace period of the last confirmed view, not after, nor before the first", () => {
  assert.equal(refusalAt(10_000, 5_000, 5_000), null);
  assert.match(refusalAt(10_001, 5_000, 5_000)!, /^no etcd quorum for 5 s \(grace 5 s\)/);
  assert.match(refusalAt(0, null, 5_000)!, /not yet read/);
});

test("keys: one per client and one checker lock per client under the prefix", () => {
  assert.equal(stateKey("/m/", "foo"), "/m/clients/foo");
  assert.equal(checkerKey("/m/", "foo"), "/m/checkers/foo");
  assert.deepEqual(parseKey("/m/", "/m/clients/a b"), { kind: "state", name: "a b" });
  assert.deepEqual(parseKey("/m/", "/m/checkers/x"), { kind: "checker", name: "x" });
  assert.equal(parseKey("/m/", "/other/clients/x"), null);
  assert.deepEqual(prefixEnd("/m/"), Buffer.from("/m0"));
});

test("adopt: a disable decided elsewhere refuses a waiting request here", () => {
  const m = new ClientModel(clientRecord({ approvalDelayMs: 60_000, approvedByDefault: false }));
  m.beginRequest(0, 1);
  m.takeEffects();
  m.adopt(10, { ...shared({ enabled: false, expires: null }), approval: null, secret: null });
  assert.deepEqual(granted(m.takeEffects()), [false]);
  assert.equal(m.record.enabled, false);
});

test("adopt: an approval given on another server releases a request waiting here, until it runs out", () => {
  const m = new ClientModel(clientRecord({ approvalDelayMs: 60_000, approvedByDefault: false }));
  m.beginRequest(0, 1);
  m.takeEffects();
  m.adopt(100, { ...shared({ approvalDelayMs: 60_000, approvedByDefault: false }), approval: { value: true, until: 1100 }, secret: null });
  assert.deepEqual(granted(m.takeEffects()), [true]);
  // An approval already over when it arrives decides nothing.
  const late = new ClientModel(clientRecord({ approvalDelayMs: 60_000, approvedByDefault: false }));
  late.beginRequest(0, 1);
  late.takeEffects();
  late.adopt(2000, { ...shared({ approvalDelayMs: 60_000, approvedByDefault: false }), approval: { value: true, until: 1100 }, secret: null });
  assert.deepEqual(granted(late.takeEffects()), []);
});

test("setChecking: without the lock no checker runs and no timeout disables; taking it over checks within a second and keeps the expiry", () => {
  const m = new ClientModel(clientRecord({ expires: 5000, intervalMs: 60_000 }), { random: () => 0.5 });
  m.setChecking(0, false);
  m.startup(0);
  assert.equal(m.nextDeadline(), null, "nothing to do without the lock");
  m.tick(10_000);
  assert.equal(m.record.enabled, true, "past its expiry, but the holder decides");
  assert.deepEqual(m.takeEffects().filter((e) => e.type === "spawnChecker"), []);
  m.setChecking(10_000, true);
  assert.equal(m.record.expires, 5000, "the expiry the previous holder set");
  assert.equal(m.nextCheckerTime, 10_500);
  m.tick(10_500);
  assert.equal(m.record.enabled, false, "the holder disables a client past its expiry");
});

test("mandos.conf: etcd_* options make a fleet; none keeps the local state file", () => {
  assert.equal(parseServerConf("[DEFAULT]\n", "m.conf").fleet, null);
  const c = parseServerConf("[DEFAULT]\netcd_endpoints = http://127.0.0.1:2379, http://[::1]:2380\netcd_grace = 30s\n", "m.conf");
  assert.deepEqual(c.fleet, {
    endpoints: ["http://127.0.0.1:2379", "http://[::1]:2380"],
    prefix: "/mandos/",
    ca: null,
    cert: null,
    key: null,
    graceMs: 30_000,
    leaseTtlMs: 5_000,
  });
  assert.throws(() => parseServerConf("[DEFAULT]\netcd_endpoints = 127.0.0.1:2379\n", "m.conf"), {
    message: 'm.conf:2: [DEFAULT] etcd_endpoints: not an http:// or https:// URL: "127.0.0.1:2379"',
  });
  assert.throws(() => parseServerConf("[DEFAULT]\netcd_endpoints = http://e:1\netcd_prefix = /m\n", "m.conf"), /etcd_prefix: must end with "\/"/);
  assert.throws(() => parseServerConf("[DEFAULT]\netcd_endpoints = http://e:1\netcd_cert = /c.pem\n", "m.conf"), /etcd_cert and etcd_key go together/);
});

test("the checker command is never shared: not stored in etcd's value, and one found there is not adopted", () => {
  const m = new ClientModel(clientRecord({ checker: "fping -q -- %%(host)s" }));
  const value = shared();
  assert.equal("checker" in JSON.parse(serializeShared(value)), false, "not written to etcd");
  const planted = parseShared(JSON.stringify({ ...JSON.parse(serializeShared(value)), checker: "touch /tmp/owned" }), "/m/clients/x");
  m.adopt(10, { ...planted, approval: null, secret: null });
  assert.equal(m.record.checker, "fping -q -- %%(host)s");
});
