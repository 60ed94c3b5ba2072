// Full peer check using only Debian's programs on the wire: keys and a
// clients.conf section from OUR mandos-keygen, served by Debian's mandos
// on ::1 and fetched and decrypted by Debian's mandos-client. Also the
// reverse mix: Debian's keys with our --passfile section.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, requires, run, tempDir } from "../helpers/index.js";
import { debianInteropMissing, makeDebianKeys, runDebianClient, startDebianServer } from "../helpers/debian-peer.js";

const SKIP = debianInteropMissing() || requires({ root: true });

async function ourSection(keysDir: string, password: string, name: string): Promise<string> {
  const passfile = join(keysDir, "..", "pass");
  writeFileSync(passfile, password, { mode: 0o600 });
  const r = await run(process.execPath, [join(BIN, "mandos-keygen"), "--dir", keysDir, "--passfile", passfile, "--name", name, "--no-ssh"], {
    timeoutMs: 60_000,
  });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.toString();
}

test("our keygen's keys and section: Debian's server serves, Debian's client prints the password", { skip: SKIP, timeout: 120_000 }, async (t) => {
  using dir = tempDir();
  const keys = join(dir.path, "keys");
  mkdirSync(keys);
  const made = await run(process.execPath, [join(BIN, "mandos-keygen"), "--dir", keys], { timeoutMs: 60_000 });
  assert.equal(made.code, 0, made.stderr);
  const password = "peer-check password\n";
  const section = await ourSection(keys, password, "ts-client");
  await using server = await startDebianServer({ clientsConf: section });
  const start = performance.now();
  const r = await runDebianClient(keys, server.port);
  t.diagnostic(`Debian mandos-client with our Ed25519/Curve25519 keys: ${(performance.now() - start).toFixed(0)} ms`);
  assert.equal(r.code, 0, `client: ${r.stderr}\nserver: ${server.log().slice(-2000)}`);
  assert.equal(r.stdout.toString(), password);
  assert.match(server.log(), /Sending secret to ts-client/);
});

test("Debian's keys with our --passfile section work with Debian's server and client", { skip: SKIP, timeout: 180_000 }, async () => {
  using dir = tempDir();
  const keys = join(dir.path, "keys");
  mkdirSync(keys);
  await makeDebianKeys(keys);
  const section = await ourSection(keys, "for an RSA-4096 client", "debian-keys");
  await using server = await startDebianServer({ clientsConf: section });
  const r = await runDebianClient(keys, server.port);
  assert.equal(r.code, 0, `client: ${r.stderr}\nserver: ${server.log().slice(-2000)}`);
  assert.equal(r.stdout.toString(), "for an RSA-4096 client");
});

test("a client not in clients.conf gets nothing (the rig can fail)", { skip: SKIP, timeout: 120_000 }, async () => {
  using dir = tempDir();
  const keys = join(dir.path, "keys");
  const stranger = join(dir.path, "stranger");
  mkdirSync(keys);
  mkdirSync(stranger);
  for (const d of [keys, stranger]) {
    const made = await run(process.execPath, [join(BIN, "mandos-keygen"), "--dir", d], { timeoutMs: 60_000 });
    assert.equal(made.code, 0, made.stderr);
  }
  const section = await ourSection(keys, "not for strangers", "known");
  await using server = await startDebianServer({ clientsConf: section });
  const r = await runDebianClient(stranger, server.port, { timeoutMs: 20_000 });
  assert.notEqual(r.code, 0);
  assert.equal(r.stdout.length, 0);
});
