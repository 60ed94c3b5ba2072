// Saved state: Mandos's restore rules (which of clients.conf and the saved
// state wins), secrets changed at run time, atomic writes, bad files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  buildStateFile,
  parseStateFile,
  readStateFile,
  restoreClients,
  serializeState,
  StateFileError,
  type ConfiguredClient,
  type StateFile,
} from "../../src/server/state.js";
import type { ClientRecord, LogLevel } from "../../src/server/client-model.js";
import { tempDir } from "../helpers/index.js";
import { MIN, configuredClient as conf } from "../helpers/server-clients.js";
import { StateSaveError, StateWriter } from "../../src/server/state-writer.js";

function logs() {
  const lines: [LogLevel, string][] = [];
  return { lines, log: (l: LogLevel, m: string) => void lines.push([l, m]) };
}

/** The state a server would save after running with `c` and applying `change`. */
function savedAfter(c: ConfiguredClient, change: (r: ClientRecord) => void, removed: string[] = []): StateFile {
  const { records } = restoreClients([c], null, 0, () => {});
  for (const r of records) change(r);
  // Round trip through text, as on disk.
  return parseStateFile(serializeState(buildStateFile([c], removed.length ? [] : records, removed)));
}

test("without saved state, clients come from clients.conf", () => {
  const { records } = restoreClients([conf(), conf({ name: "bar", enabled: false })], null, 1000, () => {});
  assert.equal(records.length, 2);
  assert.equal(records[0]!.created, 1000);
  assert.equal(records[0]!.lastEnabled, 1000);
  assert.equal(records[0]!.expires, 1000 + 5 * MIN);
  assert.equal(records[0]!.lastCheckerStatus, -2);
  assert.equal(records[1]!.lastEnabled, null);
  assert.equal(records[1]!.expires, null);
});

test("run-time changes survive a restart while clients.conf is unchanged", () => {
  const saved = savedAfter(conf(), (r) => {
    r.timeoutMs = 60 * MIN;
    r.host = "changed.example";
    r.lastCheckedOK = 500;
    r.lastCheckerStatus = 0;
    r.expires = 10 * MIN;
  });
  const { records } = restoreClients([conf()], saved, 2 * MIN, () => {});
  const r = records[0]!;
  assert.equal(r.timeoutMs, 60 * MIN);
  assert.equal(r.host, "changed.example");
  assert.equal(r.lastCheckedOK, 500);
  assert.equal(r.created, 0, "creation time is kept");
});

test("a setting changed in clients.conf since the save wins over the saved value", () => {
  const saved = savedAfter(conf(), (r) => {
    r.timeoutMs = 60 * MIN;
    r.host = "changed.example";
  });
  const { records } = restoreClients([conf({ timeoutMs: 7 * MIN })], saved, 0, () => {});
  assert.equal(records[0]!.timeoutMs, 7 * MIN, "clients.conf changed: it wins");
  assert.equal(records[0]!.host, "changed.example", "clients.conf unchanged: saved value");
});

test("disabled at run time stays disabled; enabling it in clients.conf re-enables it", () => {
  const saved = savedAfter(conf(), (r) => {
    r.enabled = false;
    r.expires = null;
  });
  assert.equal(restoreClients([conf()], saved, 0, () => {}).records[0]!.enabled, false);
  const savedOff = savedAfter(conf({ enabled: false }), () => {});
  const r = restoreClients([conf({ enabled: true })], savedOff, 5000, () => {}).records[0]!;
  assert.equal(r.enabled, true);
  assert.equal(r.expires, 5000 + 5 * MIN);
});

test("expired while down: kept only if its last checker succeeded", () => {
  const never = savedAfter(conf(), (r) => (r.expires = 1000));
  const l1 = logs();
  assert.equal(restoreClients([conf()], never, 2000, l1.log).records[0]!.enabled, false);
  assert.ok(l1.lines.some(([lvl, m]) => lvl === "warning" && m.includes("never performed a successful checker")));

  const failed = savedAfter(conf(), (r) => {
    r.expires = 1000;
    r.lastCheckedOK = 10;
    r.lastCheckerStatus = 2;
  });
  const l2 = logs();
  assert.equal(restoreClients([conf()], failed, 2000, l2.log).records[0]!.enabled, false);
  assert.ok(l2.lines.some(([, m]) => m.includes("last checker failed with error code 2")));

  const ok = savedAfter(conf(), (r) => {
    r.expires = 1000;
    r.lastCheckedOK = 10;
    r.lastCheckerStatus = 0;
  });
  const r = restoreClients([conf()], ok, 2000, () => {}).records[0]!;
  assert.equal(r.enabled, true);
  assert.equal(r.expires, 2000 + 5 * MIN);
});

test("a secret set at run time is restored, and lost when the clients.conf secret changes", () => {
  const saved = savedAfter(conf(), (r) => (r.secret = Buffer.from("run-time secret")));
  const text = serializeState(saved);
  assert.ok(!text.includes("run-time secret") && !text.includes(Buffer.from("run-time secret").toString("base64")), "not in clear");
  assert.equal(restoreClients([conf()], saved, 0, () => {}).records[0]!.secret.toString(), "run-time secret");
  const newSecret = Buffer.from("new config secret");
  const r = restoreClients([conf({ secret: newSecret })], saved, 0, () => {}).records[0]!;
  assert.equal(r.secret.toString(), "new config secret");
});

test("the state file never holds the clients.conf secret", () => {
  const text = serializeState(savedAfter(conf(), () => {}));
  assert.ok(!text.includes("config secret"));
  assert.ok(!text.includes(Buffer.from("config secret").toString("base64")));
});

test("clients added to or removed from clients.conf are added or dropped", () => {
  const saved = savedAfter(conf(), (r) => (r.host = "kept"));
  const { records } = restoreClients([conf({ name: "new" })], saved, 0, () => {});
  assert.deepEqual(records.map((r) => r.name), ["new"]);
  assert.equal(records[0]!.host, "foo.example");
});

test("a client removed over D-Bus stays removed until its clients.conf section changes", () => {
  const saved = savedAfter(conf(), () => {}, ["foo"]);
  const same = restoreClients([conf()], saved, 0, () => {});
  assert.deepEqual(same.records, []);
  assert.deepEqual(same.removed, ["foo"]);
  const changed = restoreClients([conf({ host: "other" })], saved, 0, () => {});
  assert.deepEqual(changed.records.map((r) => r.name), ["foo"]);
});

test("the state writer writes 0600 atomically, folds bursts into few writes, and flushed() means durable", async () => {
  using dir = tempDir();
  const path = join(dir.path, "clients.json");
  let version = 0;
  let snapshots = 0;
  const errors: unknown[] = [];
  const writer = new StateWriter(path, () => (snapshots++, `state ${version}\n`), (err) => err && errors.push(err));
  await writer.flushed(); // nothing asked for: resolves at once
  for (let i = 1; i <= 1000; i++) {
    version = i;
    writer.request();
  }
  await writer.flushed();
  assert.equal(readFileSync(path, "utf8"), "state 1000\n", "the last change is on disk once flushed() resolves");
  assert.ok(snapshots <= 2, `a burst of 1000 changes cost ${snapshots} writes`);
  version = 1001;
  writer.request();
  const during = writer.flushed();
  version = 1002; // a change while a write may be in progress
  writer.request();
  await Promise.all([during, writer.flushed()]);
  assert.equal(readFileSync(path, "utf8"), "state 1002\n");
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir.path), ["clients.json"], "no temporary file left");
  assert.deepEqual(errors, []);
});

test("a failed write is reported and fails flushed() with the file and errno, never the contents", async () => {
  using dir = tempDir();
  const reports: (StateSaveError | null)[] = [];
  const path = join(dir.path, "missing", "clients.json");
  const writer = new StateWriter(path, () => "secret contents", (err) => reports.push(err));
  writer.request();
  await assert.rejects(writer.flushed(), (err: unknown) => err instanceof StateSaveError && err.message === `cannot save ${path}: ENOENT`);
  assert.equal(reports.length, 1);
  assert.equal(reports[0]?.message, `cannot save ${path}: ENOENT`);
  // Nothing new asked for since: nothing to wait for.
  await writer.flushed();
});

test("bad state files are rejected with a one-line reason naming the file", () => {
  using dir = tempDir();
  const path = join(dir.path, "clients.json");
  assert.equal(readStateFile(path), null, "no file: nothing to restore");
  for (const [content, reason] of [
    ["{not json", /not JSON/],
    ["[]", /not a mandos-ts state file/],
    [JSON.stringify({ format: "mandos-ts state", version: 99, config: [], clients: [], removed: [] }), /unsupported version/],
    [JSON.stringify({ format: "mandos-ts state", version: 1, config: [{ name: 3 }], clients: [], removed: [] }), /config\[0\]: bad or missing "name"/],
  ] as const) {
    writeFileSync(path, content);
    assert.throws(
      () => readStateFile(path),
      (err: unknown) => err instanceof StateFileError && reason.test(err.message) && err.message.startsWith(path) && !err.message.includes("\n"),
    );
  }
});
