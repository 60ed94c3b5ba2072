// The avahi announcer's state machine against a stand-in for avahi-daemon's
// D-Bus API (replies as avahi gives them, every call recorded): adding the
// service, renaming on collisions, the rename limit, avahi-daemon's states,
// leaving and coming back, and stopping. The real daemon is in avahi.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import dbus from "dbus-next";
import { AvahiAnnouncer, decodeSignal, type AvahiSettings } from "../../src/zeroconf/avahi.js";
import { alternativeServiceName } from "../../src/zeroconf/names.js";
import { recordingLog } from "./fakes.js";

// avahi-common/defs.h: AvahiServerState and AvahiEntryGroupState values.
const [SERVER_REGISTERING, SERVER_RUNNING, SERVER_COLLISION] = [1, 2, 3];
const [GROUP_ESTABLISHED, GROUP_COLLISION, GROUP_FAILURE] = [2, 3, 4];

/** avahi-daemon as its D-Bus API answers; names in `taken` collide locally. */
function rig(settings: Partial<AvahiSettings> = {}, taken: string[] = []) {
  const calls: string[] = [];
  let groups = 0;
  const avahi = { state: SERVER_RUNNING, closed: false };
  const conn = {
    async call(path: string, _iface: string, member: string, _signature?: string, body: unknown[] = []): Promise<unknown[]> {
      calls.push(member === "AddService" ? `AddService ${path} ${String(body[3])}` : `${member} ${path}`);
      if (member === "EntryGroupNew") return [`/g${++groups}`];
      if (member === "GetAlternativeServiceName") return [alternativeServiceName(String(body[0]))];
      if (member === "GetState") return [avahi.state];
      if (member === "AddService" && taken.includes(String(body[3]))) {
        throw Object.assign(new Error("Local name collision"), { type: "org.freedesktop.Avahi.CollisionError" });
      }
      return [];
    },
    close() {
      avahi.closed = true;
    },
  };
  const log = recordingLog();
  const events: string[] = [];
  const announcer = new AvahiAnnouncer(
    conn,
    { name: "Mandos", serviceType: "_mandos._tcp", port: 4711, ifIndex: -1, protocol: 1, maxRenames: 5, log, ...settings },
    {
      established: () => void events.push("established"),
      renamed: (n) => void events.push(`renamed ${n}`),
      failed: (err) => void events.push(`failed ${err.message}`),
    },
  );
  const group = (path: string, state: number, error: unknown = "") => announcer.signal({ kind: "group", path, state, error });
  const settle = async () => {
    await announcer.idle();
    await announcer.idle();
  };
  return { calls, avahi, log, events, announcer, group, settle };
}

test("avahi running: a new entry group with the service, committed; established on the group's signal alone", async () => {
  const r = rig();
  r.announcer.serverState(SERVER_RUNNING);
  await r.settle();
  assert.deepEqual(r.calls, ["EntryGroupNew /", "AddService /g1 Mandos", "Commit /g1"]);
  r.group("/g9", GROUP_ESTABLISHED);
  assert.deepEqual(r.events, [], "another group's signal");
  r.group("/g1", GROUP_ESTABLISHED);
  assert.deepEqual(r.events, ["established"]);
  assert.ok(r.log.lines.includes('test: Zeroconf: announcing service "Mandos" (_mandos._tcp) on port 4711 through avahi-daemon'));
});

test("a collision: avahi's alternative name, the same group reset, the service added again", async () => {
  const r = rig();
  r.announcer.serverState(SERVER_RUNNING);
  await r.settle();
  r.calls.length = 0;
  r.group("/g1", GROUP_COLLISION);
  await r.settle();
  assert.deepEqual(r.calls, ["GetAlternativeServiceName /", "Reset /g1", "AddService /g1 Mandos #2", "Commit /g1"]);
  assert.equal(r.announcer.name, "Mandos #2");
  r.group("/g1", GROUP_ESTABLISHED);
  assert.deepEqual(r.events, ["renamed Mandos #2", "established"]);
});

test("a local collision when adding renames at once, as often as needed", async () => {
  const r = rig({}, ["Mandos", "Mandos #2"]);
  r.announcer.serverState(SERVER_RUNNING);
  await r.settle();
  assert.deepEqual(r.calls, [
    "EntryGroupNew /",
    "AddService /g1 Mandos",
    "GetAlternativeServiceName /",
    "Reset /g1",
    "AddService /g1 Mandos #2",
    "GetAlternativeServiceName /",
    "Reset /g1",
    "AddService /g1 Mandos #3",
    "Commit /g1",
  ]);
  assert.deepEqual(r.events, ["renamed Mandos #2", "renamed Mandos #3"]);
  assert.ok(r.log.lines.includes('test: Zeroconf: local service name collision for "Mandos"'));
});

test("past the rename limit: failed, the group freed, the connection closed", async () => {
  const r = rig({ maxRenames: 1 }, ["Mandos", "Mandos #2"]);
  r.announcer.serverState(SERVER_RUNNING);
  await r.settle();
  await r.announcer.stop();
  assert.deepEqual(r.events, ["renamed Mandos #2", "failed Zeroconf: avahi AddService failed: no suitable service name found after 1 renames"]);
  assert.equal(r.calls.at(-1), "Free /g1");
  assert.ok(r.avahi.closed);
  assert.ok(r.announcer.stopped);
});

test("avahi reporting failure for the group ends the announcement", async () => {
  const r = rig();
  r.announcer.serverState(SERVER_RUNNING);
  await r.settle();
  r.group("/g1", GROUP_FAILURE, "Not permitted");
  await r.announcer.stop();
  assert.deepEqual(r.events, ['failed Zeroconf: avahi reports failure for service "Mandos": Not permitted']);
  assert.ok(r.log.lines.includes('test: error: Zeroconf: avahi reports failure for service "Mandos": Not permitted'));
  assert.equal(r.calls.at(-1), "Free /g1");
  assert.ok(r.avahi.closed);
});

test("avahi-daemon's states: withdrawn while not running, added again when it runs, and after it comes back", async () => {
  const r = rig();
  r.announcer.serverState(SERVER_REGISTERING);
  await r.settle();
  assert.deepEqual(r.calls, [], "nothing to withdraw yet");
  r.announcer.signal({ kind: "server", state: SERVER_RUNNING });
  await r.settle();
  r.announcer.signal({ kind: "server", state: SERVER_COLLISION });
  await r.settle();
  r.announcer.signal({ kind: "server", state: SERVER_RUNNING });
  await r.settle();
  assert.deepEqual(r.calls.splice(0), ["EntryGroupNew /", "AddService /g1 Mandos", "Commit /g1", "Free /g1", "EntryGroupNew /", "AddService /g2 Mandos", "Commit /g2"]);
  r.announcer.signal({ kind: "daemon-left" });
  r.group("/g2", GROUP_ESTABLISHED);
  assert.deepEqual(r.events, [], "its old group is forgotten");
  r.announcer.signal({ kind: "daemon-back" });
  await r.settle();
  assert.deepEqual(r.calls, ["GetState /", "EntryGroupNew /", "AddService /g3 Mandos", "Commit /g3"]);
  assert.ok(r.log.lines.includes("test: warning: Zeroconf: avahi-daemon left the system D-Bus; the service is not announced until it returns"));
});

test("stop frees the group after the sequence under way, closes the connection, and ignores later signals", async () => {
  const r = rig();
  r.announcer.serverState(SERVER_RUNNING);
  await r.announcer.stop();
  assert.deepEqual(r.calls, ["EntryGroupNew /", "AddService /g1 Mandos", "Commit /g1", "Free /g1"]);
  assert.ok(r.avahi.closed);
  r.announcer.signal({ kind: "server", state: SERVER_RUNNING });
  r.group("/g1", GROUP_COLLISION);
  await r.settle();
  assert.equal(r.calls.length, 4);
  assert.deepEqual(r.events, []);
});

test("decodeSignal: the three signals that matter, nothing else", () => {
  const signal = (m: Partial<dbus.Message>) => new dbus.Message({ type: dbus.MessageType.SIGNAL, ...m });
  const group = { path: "/Client1/EntryGroup1", interface: "org.freedesktop.Avahi.EntryGroup", member: "StateChanged", signature: "is" };
  assert.deepEqual(decodeSignal(signal({ ...group, body: [3, ""] })), { kind: "group", path: "/Client1/EntryGroup1", state: 3, error: "" });
  const server = { path: "/", interface: "org.freedesktop.Avahi.Server", member: "StateChanged", signature: "is" };
  assert.deepEqual(decodeSignal(signal({ ...server, body: [2, ""] })), { kind: "server", state: 2 });
  const owner = { path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "NameOwnerChanged", signature: "sss" };
  assert.deepEqual(decodeSignal(signal({ ...owner, body: ["org.freedesktop.Avahi", ":1.5", ""] })), { kind: "daemon-left" });
  assert.deepEqual(decodeSignal(signal({ ...owner, body: ["org.freedesktop.Avahi", "", ":1.9"] })), { kind: "daemon-back" });
  assert.equal(decodeSignal(signal({ ...owner, body: ["org.example.Other", "", ":1.9"] })), null);
  assert.equal(decodeSignal(signal({ ...group, body: ["3"] })), null, "a state that is no number");
  assert.equal(decodeSignal(signal({ ...server, path: "/x", body: [2, ""] })), null);
  assert.equal(decodeSignal(new dbus.Message({ ...server, body: [2, ""] })), null, "a method call, not a signal");
});
