// State across restarts of the real server: kill -9 the moment a change
// is acknowledged loses nothing; a change that could not be saved is not
// acknowledged; clients.conf changes win over saved ones; a bad state file
// is reported in one line and the server starts from clients.conf; what an
// interrupted save left behind is removed at start.
import { readProcStatus } from "../../src/sys/proc-status.js";
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Variant, type MessageBus } from "dbus-next";
import { requires, tempDir } from "../helpers/index.js";
import { debianPeerMissing } from "../helpers/debian-peer.js";
import {
  callServer,
  connectBus,
  ctlJson,
  fakeKeyId,
  serverWritableDir,
  setClientProperty,
  startBus,
  startServer,
  writeConfig,
  CLIENT_INTERFACE,
  DEBIAN_CTL,
  type PrivateBus,
  type RunningServer,
} from "../helpers/server.js";

const skip = requires({ commands: ["dbus-daemon"] }) || debianPeerMissing(DEBIAN_CTL);

let dir: ReturnType<typeof tempDir>;
let bus: PrivateBus;
let configDir: string;
let stateDir: string;

const clientsConf = (timeout = "PT5M", host = "alpha.example") => `[DEFAULT]
checker = true

[alpha]
host = ${host}
key_id = ${fakeKeyId(1)}
secret = aGVsbG8=
timeout = ${timeout}

[beta]
host = beta.example
key_id = ${fakeKeyId(2)}
secret = aGVsbG8=
`;

before(() => {
  if (skip) return;
  dir = tempDir("mandos-state-");
  chmodSync(dir.path, 0o755);
  bus = startBus(join(dir.path, "bus"));
  configDir = writeConfig(join(dir.path, "conf"), { clients: clientsConf(), port: 0 });
  stateDir = serverWritableDir(join(dir.path, "state"));
});

after(() => {
  if (skip) return;
  bus?.stop();
  dir?.cleanup();
});

const json = () => ctlJson("ours", bus.env);

/** Runs `then` inside the callback of the last reply to arrive; rejects if any call fails. */
function allReplied(calls: Promise<unknown>[], then: () => void): Promise<void> {
  let left = calls.length;
  return new Promise((resolve, reject) => {
    for (const c of calls) {
      c.then(() => {
        if (--left > 0) return;
        then();
        resolve();
      }, reject);
    }
  });
}

const fromIso = (t: unknown) => Date.parse(`${String(t)}Z`);

test("kill -9 the moment a change is acknowledged loses nothing", { skip, timeout: 60_000 }, async () => {
  let server = await startServer({ configDir, stateDir, env: bus.env });
  const conn = await connectBus(bus);
  try {
    const before = await json();
    const sent = Date.now();
    // SIGKILL from inside the callback of the last reply, before the server can do anything more.
    await allReplied(
      [
        setClientProperty(conn, "/clients/alpha", "Host", new Variant("s", "changed.example")),
        setClientProperty(conn, "/clients/alpha", "Timeout", new Variant("i", 3_600_000)),
        callServer(conn, "/clients/beta", CLIENT_INTERFACE, "Disable"),
        callServer(conn, "/clients/alpha", CLIENT_INTERFACE, "CheckedOK"),
      ],
      () => server.proc.kill("SIGKILL"),
    );
    const acknowledged = Date.now();
    await server.exited;

    server = await startServer({ configDir, stateDir, env: bus.env });
    const after = await json();
    assert.equal(after.alpha!.Host, "changed.example");
    assert.equal(after.alpha!.Timeout, 3_600_000);
    const checked = fromIso(after.alpha!.LastCheckedOK);
    assert.ok(checked >= sent - 5 && checked <= acknowledged + 5, `LastCheckedOK ${String(after.alpha!.LastCheckedOK)} is from the acknowledged call`);
    assert.equal(after.alpha!.Created, before.alpha!.Created, "same client, not a new one");
    assert.equal(after.beta!.Enabled, false);
    assert.equal(after.beta!.LastEnabled, "", "as Mandos: a disabled client forgets when it was enabled");
    assert.equal(after.beta!.Created, before.beta!.Created);
    const mode = statSync(join(stateDir, "clients.json")).mode & 0o777;
    assert.equal(mode, 0o600);
  } finally {
    conn.disconnect();
    await server.stop();
  }
});

test("a setting changed in clients.conf wins; unchanged ones keep their run-time value", { skip, timeout: 60_000 }, async () => {
  writeConfig(configDir, { clients: clientsConf("PT7M"), port: 0 });
  const server = await startServer({ configDir, stateDir, env: bus.env });
  try {
    const data = await json();
    assert.equal(data.alpha!.Timeout, 420_000, "timeout changed in clients.conf: clients.conf wins");
    assert.equal(data.alpha!.Host, "changed.example", "host unchanged in clients.conf: run-time value kept");
    assert.equal(data.beta!.Enabled, false, "disabled at run time, enabled unchanged in clients.conf");
  } finally {
    await server.stop();
  }
});

test("--no-restore starts from clients.conf", { skip, timeout: 60_000 }, async () => {
  const server = await startServer({ configDir, stateDir, env: bus.env, args: ["--no-restore"] });
  try {
    const data = await json();
    assert.equal(data.alpha!.Host, "alpha.example");
    assert.equal(data.beta!.Enabled, true);
  } finally {
    await server.stop();
  }
});

test("a corrupt state file: one-line error, start from clients.conf, bad file set aside", { skip, timeout: 60_000 }, async () => {
  const path = join(stateDir, "clients.json");
  writeFileSync(path, '{"format": "mandos-ts state", "version": 1, "config": [');
  const server = await startServer({ configDir, stateDir, env: bus.env });
  try {
    const lines = server.output().split("\n").filter((l) => l.includes("Ignoring saved state"));
    assert.equal(lines.length, 1, server.output());
    assert.match(lines[0]!, /clients\.json: not JSON/);
    assert.ok(!server.output().includes("    at "), "no stack trace");
    assert.ok(existsSync(`${path}.bad`));
    const data = await json();
    assert.equal(data.alpha!.Host, "alpha.example");
    assert.equal(data.alpha!.Timeout, 420_000);
    // And a good state file was written again.
    assert.match(readFileSync(path, "utf8"), /"format": "mandos-ts state"/);
  } finally {
    await server.stop();
  }
});

/** A server of its own on a fresh state directory, and a bus connection to drive it. */
async function freshServer(name: string): Promise<{ server: RunningServer; conn: MessageBus; state: string }> {
  const state = serverWritableDir(join(dir.path, name));
  return { server: await startServer({ configDir, stateDir: state, env: bus.env }), conn: await connectBus(bus), state };
}

test("a change that cannot be saved is answered with an error naming the file and errno, and is gone after a restart", { skip, timeout: 60_000 }, async () => {
  let { server, conn, state } = await freshServer("state-unwritable");
  try {
    await setClientProperty(conn, "/clients/alpha", "Host", new Variant("s", "acknowledged.example"));
    // The server runs unprivileged, so the directory's mode really stops it.
    assert.notEqual(readProcStatus(server.proc.pid!).uids[0], 0);
    chmodSync(state, 0o555);
    const file = join(state, "clients.json");
    const notSaved = (err: unknown) => {
      const e = err as { type?: string; text?: string };
      assert.equal(e.type, "org.freedesktop.DBus.Error.Failed");
      assert.equal(e.text, `cannot save ${file}: EACCES (the change is in effect but not saved)`);
      return true;
    };
    const disable = callServer(conn, "/clients/beta", CLIENT_INTERFACE, "Disable");
    // A read sent meanwhile changes nothing and is answered.
    const managed = callServer(conn, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects");
    await assert.rejects(disable, notSaved);
    await managed;
    await assert.rejects(setClientProperty(conn, "/clients/alpha", "Host", new Variant("s", "unacknowledged.example")), notSaved);
    await assert.rejects(callServer(conn, "/clients/beta", CLIENT_INTERFACE, "Enable"), notSaved, "still failing: not acknowledged either");
    assert.equal((server.output().match(/Could not save persistent state/g) ?? []).length, 1, "logged once");
    await server.kill9();

    chmodSync(state, 0o755);
    server = await startServer({ configDir, stateDir: state, env: bus.env });
    const data = await json();
    assert.equal(data.alpha!.Host, "acknowledged.example", "the acknowledged change is kept");
    assert.equal(data.beta!.Enabled, true, "the refused Disable is not there");
  } finally {
    chmodSync(state, 0o755);
    conn.disconnect();
    await server.stop();
  }
});

test("temporary files left by a save cut short are removed at start; the saved state is intact", { skip, timeout: 60_000 }, async () => {
  let { server, conn, state } = await freshServer("state-leftovers");
  try {
    await setClientProperty(conn, "/clients/alpha", "Host", new Variant("s", "saved.example"));
    await server.kill9();
    // What a kill -9 between writing and renaming leaves, and a file that is not ours.
    const leftover = join(state, ".clients.json.4242.7.tmp");
    writeFileSync(leftover, '{"format": "mandos-ts state", "vers');
    const unrelated = join(state, ".clients.json.backup.tmp");
    writeFileSync(unrelated, "kept");

    server = await startServer({ configDir, stateDir: state, env: bus.env });
    assert.equal(existsSync(leftover), false, "the leftover is gone");
    assert.equal(existsSync(unrelated), true, "files of other names are left alone");
    assert.match(server.output(), /Removed \.clients\.json\.4242\.7\.tmp, left by an interrupted save/);
    assert.equal((await json()).alpha!.Host, "saved.example");
  } finally {
    conn.disconnect();
    await server.stop();
  }
});
