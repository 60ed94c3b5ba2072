// mandos-keygen --threshold K --shares N: N clients.conf sections, each an
// ordinary OpenPGP message (Debian's gpg decrypts it) of one share, served
// as any secret by Debian's mandos 1.8; any K shares give the password.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { BIN, requires, run, tempDir } from "../helpers/index.js";
import { makeGnupg } from "../helpers/pgp.js";
import { debianInteropMissing, runDebianClient, sectionSecret, sectionValue, startDebianServer } from "../helpers/debian-peer.js";
import { parseKeygenArgs } from "../../src/keygen/options.js";
import { UsageError } from "../../src/cli/args.js";
import { combineShares, isShare, parseShare, type Share } from "../../src/shares/index.js";
import { keysAndShares } from "../helpers/shares.js";

const KEYGEN = join(BIN, "mandos-keygen");
const defaults = { dir: "/k", name: () => "host" };

test("--threshold/--shares: parsed together, 2 <= K <= 32, K <= N <= 255, only when making a password", () => {
  const plan = parseKeygenArgs(["-F", "f", "--threshold", "2", "--shares", "3"], defaults);
  assert.deepEqual(plan.mode === "password" && plan.split, { threshold: 2, shares: 3 });
  const bad: [string[], RegExp][] = [
    [["-F", "f", "--threshold", "2"], /--threshold needs --shares/],
    [["-F", "f", "--shares", "3"], /--shares needs --threshold/],
    [["-F", "f", "--threshold", "1", "--shares", "3"], /--threshold: 1 is not from 2 to the number of shares \(3\)/],
    [["-F", "f", "--threshold", "4", "--shares", "3"], /--threshold: 4 is not/],
    [["-F", "f", "--threshold", "2", "--shares", "256"], /--shares: 256 is not from 2 to 255/],
    [["-F", "f", "--threshold", "33", "--shares", "40"], /--threshold: 33 is above 32, the most a client combines/],
    [["-F", "f", "--threshold", "2", "--shares", "1"], /--shares: 1 is not/],
    [["-F", "f", "--threshold", "two", "--shares", "3"], /--threshold: expected a whole number, got "two"/],
    [["-F", "f", "--threshold", "2", "--shares", "3.0"], /--shares: expected a whole number/],
    [["--threshold", "2", "--shares", "3"], /need --password or --passfile/],
  ];
  for (const [argv, why] of bad) assert.throws(() => parseKeygenArgs(argv, defaults), (e: Error) => e instanceof UsageError && why.test(e.message));
});

test("a bad --threshold is a one-line error from the program", async () => {
  const r = await run(process.execPath, [KEYGEN, "-F", "-", "--threshold", "3", "--shares", "2"], { timeoutMs: 30_000, input: "pw" });
  assert.notEqual(r.code, 0);
  assert.equal(r.stdout.length, 0);
  assert.match(r.stderr, /^mandos-keygen: error: --threshold: 3 is not from 2 to the number of shares \(2\)\n$/);
});

test("N sections with the same key ids; gpg decrypts each to a share; any K combine to the password", { skip: requires({ commands: ["gpg"] }), timeout: 120_000 }, async () => {
  using dir = tempDir();
  const password = "k-of-n password\n";
  const { keys, sections, text } = await keysAndShares(dir.path, password, 2, 3);
  assert.equal(sections.length, 3);
  assert.ok(!text.includes("k-of-n password"));
  assert.equal((text.match(/^# Share \d of 3 \(any 2 unlock\)/gm) ?? []).length, 3);
  for (const key of ["key_id", "fingerprint", "host"]) {
    assert.equal(new Set(sections.map((s) => sectionValue(s, key))).size, 1, `same ${key}`);
  }
  assert.match(sectionValue(sections[0]!, "key_id")!, /^[0-9A-F]{64}$/);
  const secrets = sections.map(sectionSecret);
  assert.equal(new Set(secrets.map((s) => s.toString("hex"))).size, 3, "a different secret each");
  await using g = makeGnupg();
  await g.gpg(["--import", join(keys, "seckey.txt")]);
  const shares: Share[] = [];
  for (const secret of secrets) {
    const plain = (await g.gpg(["--decrypt"], { input: secret })).stdout;
    assert.ok(isShare(plain), "a share, not the password");
    shares.push(parseShare(plain));
  }
  assert.equal(new Set(shares.map((s) => s.setId.toString("hex"))).size, 1, "one set");
  for (const pair of [[0, 1], [0, 2], [1, 2]]) {
    assert.equal(String(await combineShares(pair.map((i) => shares[i]!))), password);
  }
});

test("Debian's mandos 1.8 serves each share section as it is", { skip: debianInteropMissing() || requires({ root: true }), timeout: 180_000 }, async () => {
  using dir = tempDir();
  const { keys, sections } = await keysAndShares(dir.path, "served by Debian", 2, 2);
  const served: Share[] = [];
  for (const section of sections) {
    await using server = await startDebianServer({ clientsConf: section });
    const r = await runDebianClient(keys, server.port);
    assert.equal(r.code, 0, `client: ${r.stderr}\nserver: ${server.log().slice(-2000)}`);
    assert.match(server.log(), /Sending secret to kofn/);
    assert.ok(isShare(r.stdout), "Debian's client prints the share it decrypted");
    served.push(parseShare(r.stdout));
  }
  assert.equal(String(await combineShares(served)), "served by Debian");
});
