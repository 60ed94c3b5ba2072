// Our client facing bad key files and misbehaving servers: one clear line
// each, retries where Mandos retries, a non-zero exit where it gives up,
// never a stack trace for an expected failure.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { startListener, type Listener, type SecretGrant } from "../../src/server/listener.js";
import { encryptSecret } from "../../src/pgp/index.js";
import { keyIdFromPem } from "../../src/tls/keyid.js";
import { makeLogger } from "../../src/cli/log.js";
import { tempDir } from "../helpers/index.js";
import { OUR_CLIENT, keyArgs, makeKeys, runOurClient } from "../helpers/client.js";
import { tlsKeyPair } from "../helpers/tls-keys.js";

const dir = tempDir();
let keys: string;
let other: string;
let behaviour: (keyId: string) => Promise<SecretGrant | null>;
let listener: Listener;

before(async () => {
  keys = makeKeys(join(dir.path, "keys"), "ours");
  other = makeKeys(join(dir.path, "other"), "ours");
  listener = await startListener({
    address: "127.0.0.1",
    useIpv6: false,
    log: makeLogger("server", { level: "error", write: () => {} }),
    handler: { requestSecret: (req) => behaviour(req.keyId) },
  });
});
after(async () => {
  await listener.close();
  dir.cleanup();
});

// The connection wipes what it is given: hand it a copy.
const grant = (secret: Buffer): SecretGrant => ({ secret: Buffer.from(secret), sent() {} });
const encryptFor = async (keysDir: string, password: string) =>
  encryptSecret(Buffer.from(password), readFileSync(join(keysDir, "pubkey.txt"), "utf8"));

function noStackTrace(stderr: string) {
  assert.ok(!/\n\s+at /.test(stderr), `no stack trace in: ${stderr}`);
}

/** Run the client until `count` lines match `pattern`, then SIGTERM it. */
function runUntil(args: string[], pattern: RegExp, count: number, timeoutMs = 20_000) {
  return new Promise<{ stderr: string; code: number | null; lines: number }>((resolve, reject) => {
    const child = spawn(OUR_CLIENT, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let seen = 0;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`only ${seen} of ${count} ${pattern} in: ${stderr}`));
    }, timeoutMs);
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
      seen = stderr.split("\n").filter((l) => pattern.test(l)).length;
      if (seen >= count) child.kill("SIGTERM");
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ stderr, code, lines: seen });
    });
  });
}

test("a well-behaved server: the password, exit 0", async () => {
  const myId = keyIdFromPem(readFileSync(join(keys, "tls-pubkey.pem")));
  const secret = await encryptFor(keys, "s3cret");
  behaviour = async (keyId) => (keyId === myId ? grant(secret) : null);
  const r = await runOurClient(keys, "127.0.0.1", listener.port);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), "s3cret");
});

test("missing, unreadable and malformed key files are fatal, named, one line", async () => {
  const bad = join(dir.path, "bad");
  mkdirSync(bad);
  for (const f of ["pubkey.txt", "seckey.txt", "tls-pubkey.pem", "tls-privkey.pem"]) copyFileSync(join(keys, f), join(bad, f));
  const args = keyArgs(bad);
  const withFile = (option: string, path: string) => {
    const a = [...args];
    a[a.indexOf(option) + 1] = path;
    return a;
  };
  writeFileSync(join(dir.path, "garbage.pem"), "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n");
  writeFileSync(join(dir.path, "garbage.txt"), "this is not an OpenPGP key\n");
  const cases: [string[], RegExp][] = [
    [withFile("--seckey", join(dir.path, "nope.txt")), /cannot read --seckey file .*nope\.txt: no such file/],
    [withFile("--pubkey", dir.path), /cannot read --pubkey file .*: EISDIR/],
    [withFile("--tls-pubkey", join(dir.path, "garbage.pem")), /--tls-pubkey file .*garbage\.pem is not a PEM public key/],
    [withFile("--tls-privkey", join(dir.path, "garbage.txt")), /--tls-privkey file .*garbage\.txt is not an unencrypted PEM private key/],
    [withFile("--tls-pubkey", join(other, "tls-pubkey.pem")), /are not one key pair/],
    [withFile("--seckey", join(dir.path, "garbage.txt")), /OpenPGP keys/],
    [withFile("--pubkey", join(keys, "tls-pubkey.pem")), /OpenPGP keys/],
  ];
  behaviour = async () => null;
  for (const [a, reason] of cases) {
    const r = await runOurClient(keys, "127.0.0.1", listener.port, [...a, "--retry", "0.2"], 15_000);
    assert.notEqual(r.code, 0, `fails: ${reason}`);
    assert.equal(r.signal, null, `exits by itself: ${reason}`);
    assert.match(r.stderr, reason);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
    noStackTrace(r.stderr);
  }
});

const misbehaving: [string, () => Promise<SecretGrant | null>, RegExp][] = [
  ["garbage instead of a secret", async () => grant(randomBytes(300)), /OpenPGP|not.*message|decrypt/i],
  ["closing without a secret", async () => null, /sent no secret/],
  ["a secret for another key", async () => grant(await encryptFor(other, "not yours")), /another key|no.*key|decrypt/i],
];

for (const [what, answer, reason] of misbehaving) {
  test(`a server ${what}: logged, retried, never fatal`, async () => {
    behaviour = answer;
    const r = await runUntil(["--connect", `127.0.0.1:${listener.port}`, "--interface", "none", "--retry", "0.2", ...keyArgs(keys)], /retrying in/, 3);
    assert.ok(r.lines >= 3, "retried");
    assert.match(r.stderr, reason);
    noStackTrace(r.stderr);
    assert.equal(r.code, 1, "SIGTERM ends it with a failure status");
  });
}

test("a server that stalls after the handshake times out and is retried", async () => {
  behaviour = () => new Promise(() => {});
  const r = await runUntil(
    ["--connect", `127.0.0.1:${listener.port}`, "--interface", "none", "--retry", "0.2", "--timeout", "0.5", ...keyArgs(keys)],
    /reading timed out after 500 ms/,
    2,
  );
  assert.equal(r.lines, 2);
  noStackTrace(r.stderr);
});

test("a server that is not there is retried every --retry seconds", async () => {
  const r = await runUntil(["--connect", "127.0.0.1:9", "--interface", "none", "--retry", "0.2", ...keyArgs(keys)], /cannot connect: connect ECONNREFUSED/, 3);
  assert.equal(r.lines, 3);
});

test("bad options are usage errors", async () => {
  for (const [args, reason] of [
    [["--connect", "nocolon"], /--connect: expected ADDRESS:PORT/],
    [["--connect", "::1:99999"], /--connect: bad port/],
    [["--retry", "soon"], /--retry: not a number/],
    [["--timeout", "3000000"], /--timeout must be at most 2147483 seconds/],
    [["--retry", "1e10"], /--retry must be at most 2147483 seconds/],
    [["--no-such-option"], /Unknown option/],
  ] as [string[], RegExp][]) {
    const r = await runOurClient(keys, "127.0.0.1", 9, args, 10_000);
    assert.equal(r.code, 64, r.stderr);
    assert.match(r.stderr, reason);
    noStackTrace(r.stderr);
  }
  void tlsKeyPair;
});
