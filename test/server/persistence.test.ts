// State across restarts of the real server: kill -9 right after a change
// loses nothing; clients.conf changes win over saved ones; a bad state
// file is reported in one line and the server starts from clients.conf.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requires, tempDir } from "../helpers/index.js";
import { ctl, fakeKeyId, serverWritableDir, startBus, startServer, writeConfig, DEBIAN_CTL, type PrivateBus } from "../helpers/server.js";

const skip = requires({ commands: ["dbus-daemon"], files: [DEBIAN_CTL] });

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

async function json(): Promise<Record<string, Record<string, unknown>>> {
  const r = await ctl("ours", ["-j"], bus.env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as Record<string, Record<string, unknown>>;
}

test("kill -9 right after a change loses nothing that was acknowledged", { skip, timeout: 60_000 }, async () => {
  let server = await startServer({ configDir, stateDir, env: bus.env });
  try {
    const before = await json();
    let r = await ctl("debian", ["-H", "changed.example", "-t", "PT1H", "alpha"], bus.env);
    assert.equal(r.code, 0, r.stderr);
    r = await ctl("ours", ["-d", "beta"], bus.env);
    assert.equal(r.code, 0, r.stderr);
    r = await ctl("ours", ["-b", "alpha"], bus.env);
    assert.equal(r.code, 0, r.stderr);
    const acknowledged = await json();
    await server.kill9();

    server = await startServer({ configDir, stateDir, env: bus.env });
    const after = await json();
    assert.equal(after.alpha!.Host, "changed.example");
    assert.equal(after.alpha!.Timeout, 3_600_000);
    assert.equal(after.alpha!.LastCheckedOK, acknowledged.alpha!.LastCheckedOK);
    assert.equal(after.alpha!.Created, before.alpha!.Created, "same client, not a new one");
    assert.equal(after.beta!.Enabled, false);
    assert.equal(after.beta!.LastEnabled, "", "as Mandos: a disabled client forgets when it was enabled");
    assert.equal(after.beta!.Created, before.beta!.Created);
    const mode = statSync(join(stateDir, "clients.json")).mode & 0o777;
    assert.equal(mode, 0o600);
  } finally {
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
