// mandos-keygen as a program: the files it makes, their modes, refusing to
// overwrite, option errors, and the clients.conf section it prints.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { BIN, requires, run, tempDir, isRoot } from "../helpers/index.js";
import { makeGnupg } from "../helpers/pgp.js";
import { sectionSecret, sectionValue } from "../helpers/debian-peer.js";
import { keyIdFromPem } from "../../src/tls/keyid.js";
import { decryptSecret, fingerprint, loadDecryptionKeys } from "../../src/pgp/index.js";

const KEYGEN = join(BIN, "mandos-keygen");
const FILES = ["pubkey.txt", "seckey.txt", "tls-privkey.pem", "tls-pubkey.pem"];

function keygen(args: string[], opts: { input?: string | Buffer; timeoutMs?: number } = {}) {
  return run(process.execPath, [KEYGEN, ...args], { timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input ?? "" });
}

/** An expected failure: non-zero exit, one line on stderr, no stack trace. */
function assertOneLineError(r: Awaited<ReturnType<typeof keygen>>, pattern: RegExp) {
  assert.notEqual(r.code, 0, "exit code");
  assert.equal(r.stdout.length, 0, "nothing on stdout");
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, /^mandos-keygen: error: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

test("makes the four key files, all mode 0600, with the right contents", async (t) => {
  using dir = tempDir();
  const start = performance.now();
  const r = await keygen(["--dir", dir.path, "--name", "client.example", "--email", "root@client.example", "--comment", "test"]);
  t.diagnostic(`mandos-keygen (Ed25519/Curve25519 + Ed25519 TLS): ${(performance.now() - start).toFixed(0)} ms`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.deepEqual(readdirSync(dir.path).sort(), [...FILES].sort());
  for (const f of FILES) assert.equal(statSync(join(dir.path, f)).mode & 0o777, 0o600, f);
  const pub = readFileSync(join(dir.path, "pubkey.txt"), "utf8");
  const sec = readFileSync(join(dir.path, "seckey.txt"), "utf8");
  assert.match(pub, /^-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\nComment: Mandos client key for client.example \(test\) <root@client.example>\r?\n/);
  assert.match(sec, /^-----BEGIN PGP PRIVATE KEY BLOCK-----\r?\n/);
  const keys = await loadDecryptionKeys(pub, sec);
  assert.equal(keys.fingerprint, await fingerprint(pub));
  const tlsPub = readFileSync(join(dir.path, "tls-pubkey.pem"), "utf8");
  const tlsPriv = readFileSync(join(dir.path, "tls-privkey.pem"), "utf8");
  assert.match(tlsPub, /^-----BEGIN PUBLIC KEY-----\n/);
  assert.match(tlsPriv, /^-----BEGIN PRIVATE KEY-----\n/); // PKCS#8, unencrypted
  assert.equal(createPublicKey(tlsPub).asymmetricKeyType, "ed25519");
  assert.equal(keyIdFromPem(tlsPriv), keyIdFromPem(tlsPub), "the two TLS files are one key pair");
});

test("refuses to overwrite without --force; --force keeps numbered backups", async () => {
  using dir = tempDir();
  assert.equal((await keygen(["--dir", dir.path, "--name", "a"])).code, 0);
  const before = readFileSync(join(dir.path, "seckey.txt"));
  const refused = await keygen(["--dir", dir.path, "--name", "a"]);
  assertOneLineError(refused, /Refusing to overwrite old key files .*use --force/);
  assert.deepEqual(readFileSync(join(dir.path, "seckey.txt")), before, "untouched");
  // One existing file is enough to refuse.
  using dir2 = tempDir();
  writeFileSync(join(dir2.path, "tls-pubkey.pem"), "x");
  assertOneLineError(await keygen(["--dir", dir2.path]), /Refusing to overwrite .*tls-pubkey.pem/);

  assert.equal((await keygen(["--dir", dir.path, "--name", "a", "--force"])).code, 0);
  assert.notDeepEqual(readFileSync(join(dir.path, "seckey.txt")), before, "replaced");
  assert.deepEqual(readFileSync(join(dir.path, "seckey.txt.~1~")), before, "old key kept as backup");
  assert.equal(statSync(join(dir.path, "seckey.txt.~1~")).mode & 0o777, 0o600);
  assert.equal((await keygen(["-d", dir.path, "-n", "a", "-f"])).code, 0);
  assert.ok(existsSync(join(dir.path, "pubkey.txt.~2~")));
  for (const f of FILES) assert.equal(statSync(join(dir.path, f)).mode & 0o777, 0o600, f);
});

test("bad options and values are one-line errors with non-zero exit", async () => {
  using dir = tempDir();
  const cases: [string[], RegExp][] = [
    [["--bogus"], /Unknown option '--bogus'/],
    [["--dir", dir.path, "extra"], /Unexpected argument 'extra'/],
    [["--dir", join(dir.path, "missing")], /missing not a directory/],
    [["--dir", dir.path, "--type", "DSA"], /--type DSA: DSA keys cannot be generated/],
    [["--dir", dir.path, "--type", "RSA", "--length", "512"], /RSA keys must be 2048 to 8192 bits/],
    [["--dir", dir.path, "--length", "4096"], /does not apply to EDDSA keys \(the default type\)/],
    [["--dir", dir.path, "--subtype", "ELG-E"], /ElGamal keys cannot be generated/],
    [["--dir", dir.path, "--tls-keytype", "dsa"], /--tls-keytype dsa: DSA keys cannot be used with TLS 1.3/],
    [["--dir", dir.path, "--tls-keytype", "gost12-256"], /unsupported TLS key type "gost12-256"/],
    [["--dir", dir.path, "--expire", "soon"], /--expire: not a gpg expiry time/],
    [["--dir", dir.path, "--name", ""], /Empty key name/],
    [["--dir", dir.path, "--passfile", join(dir.path, "nope")], /cannot read key file .*pubkey\.txt: no such file \(make keys first\)/],
  ];
  for (const [args, pattern] of cases) assertOneLineError(await keygen(args), pattern);
  assert.deepEqual(readdirSync(dir.path), [], "nothing written on errors");
  if (isRoot) return; // root can write anywhere: the permission case below needs a user
  const ro = join(dir.path, "ro");
  mkdirSync(ro);
  chmodSync(ro, 0o500);
  assertOneLineError(await keygen(["--dir", ro]), /not writeable/);
});

test("--help and --version (also -h, -v) exit 0", async () => {
  for (const arg of ["--help", "-h"]) {
    const r = await keygen([arg]);
    assert.equal(r.code, 0);
    assert.match(r.stdout.toString(), /--tls-keytype/);
  }
  for (const arg of ["--version", "-v"]) {
    const r = await keygen([arg]);
    assert.equal(r.code, 0);
    assert.match(r.stdout.toString(), /^mandos-keygen \S+\n$/);
  }
});

test("other key types: RSA OpenPGP with gpg, ECDSA, Ed448 and ECDSA TLS keys", { timeout: 120_000 }, async () => {
  using dir = tempDir();
  let r = await keygen(["--dir", dir.path, "-t", "RSA", "-l", "2048", "-s", "RSA", "-L", "2048", "-x", "1y", "-T", "ecdsa"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(createPublicKey(readFileSync(join(dir.path, "tls-pubkey.pem"))).asymmetricKeyDetails?.namedCurve, "secp384r1");
  if (!requires({ commands: ["gpg", "gpgconf"] })) {
    await using gnupg = makeGnupg();
    await gnupg.gpg(["--import", join(dir.path, "pubkey.txt"), join(dir.path, "seckey.txt")]);
    const listed = (await gnupg.gpg(["--with-colons", "--list-keys"])).stdout.toString();
    const pub = listed.split("\n").find((l) => l.startsWith("pub:"))!.split(":");
    assert.equal(pub[2], "2048");
    assert.equal(pub[3], "1", "RSA");
    assert.ok(Number(pub[6]) - Number(pub[5]) === 365 * 86400, "expires after one year");
  }
  r = await keygen(["--dir", dir.path, "--force", "--type", "ECDSA", "--length", "384", "--tls-keytype", "ed448"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(createPublicKey(readFileSync(join(dir.path, "tls-pubkey.pem"))).asymmetricKeyType, "ed448");
});

test("key id of tls-pubkey.pem matches certtool and openssl", { skip: requires({ commands: ["certtool", "openssl", "sha256sum"] }) }, async () => {
  using dir = tempDir();
  assert.equal((await keygen(["--dir", dir.path])).code, 0);
  const pem = join(dir.path, "tls-pubkey.pem");
  const ours = keyIdFromPem(readFileSync(pem));
  const certtool = await run("certtool", ["--key-id", "--hash=sha256", "--load-pubkey", pem]);
  assert.equal(certtool.code, 0, certtool.stderr);
  assert.equal(certtool.stdout.toString().trim().toUpperCase(), ours);
  const der = await run("openssl", ["pkey", "-pubin", "-in", pem, "-outform", "DER"]);
  const sum = await run("sha256sum", [], { input: der.stdout });
  assert.equal(sum.stdout.toString().split(" ")[0]!.toUpperCase(), ours);
});

test("--passfile prints a clients.conf section whose secret decrypts to the file's exact bytes", async () => {
  using dir = tempDir();
  assert.equal((await keygen(["--dir", dir.path, "--name", "client1"])).code, 0);
  const password = "Un1que-Pa55word with spaces\n";
  const passfile = join(dir.path, "..", `${dir.path.split("/").pop()}-pass`);
  writeFileSync(passfile, password, { mode: 0o600 });
  try {
    const r = await keygen(["--dir", dir.path, "--passfile", passfile, "--name", "client1", "--no-ssh"]);
    assert.equal(r.code, 0, r.stderr);
    const section = r.stdout.toString();
    assert.ok(!section.includes("Un1que") && !r.stderr.includes("Un1que"), "password never printed");
    const lines = section.trimEnd().split("\n");
    assert.equal(lines[0], "[client1]");
    assert.equal(lines[1], "host = client1");
    assert.equal(lines[2], `key_id = ${keyIdFromPem(readFileSync(join(dir.path, "tls-pubkey.pem")))}`);
    assert.equal(lines[3], `fingerprint = ${await fingerprint(readFileSync(join(dir.path, "pubkey.txt")))}`);
    assert.equal(lines[4], "secret =");
    const body = lines.slice(5);
    assert.ok(body.length > 0);
    body.forEach((l, i) => {
      assert.match(l, /^ {4}[A-Za-z0-9+/=]+$/);
      if (i < body.length - 1) assert.equal(l.length, 4 + 64, "64 base64 characters a line, like gpg's armor");
    });
    assert.equal(sectionValue(section, "checker"), undefined, "--no-ssh: no checker");
    const keys = await loadDecryptionKeys(
      readFileSync(join(dir.path, "pubkey.txt")),
      readFileSync(join(dir.path, "seckey.txt")),
    );
    assert.equal((await decryptSecret(sectionSecret(section), keys)).toString(), password);
    // -F from standard input, short options
    const r2 = await keygen(["-d", dir.path, "-F", "-", "-n", "client2", "-S"], { input: "pw from stdin" });
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal((await decryptSecret(sectionSecret(r2.stdout.toString()), keys)).toString(), "pw from stdin");
  } finally {
    rmSync(passfile, { force: true });
  }
});

test("--password reads two matching lines from a pipe", async () => {
  using dir = tempDir();
  assert.equal((await keygen(["--dir", dir.path])).code, 0);
  const keys = await loadDecryptionKeys(readFileSync(join(dir.path, "pubkey.txt")), readFileSync(join(dir.path, "seckey.txt")));
  const ok = await keygen(["--dir", dir.path, "--password", "--no-ssh", "--name", "c"], { input: "s3cret pw\ns3cret pw\n" });
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(!ok.stdout.toString().includes("s3cret"));
  assert.equal((await decryptSecret(sectionSecret(ok.stdout.toString()), keys)).toString(), "s3cret pw");
  assertOneLineError(await keygen(["--dir", dir.path, "-p", "-S"], { input: "one\ntwo\n" }), /Passphrase mismatch/);
  assertOneLineError(await keygen(["--dir", dir.path, "-p", "-S"], { input: "only once\n" }), /not given twice/);
  assertOneLineError(await keygen(["--dir", dir.path, "-p", "-S"], { input: "\n\n" }), /Empty passphrase/);
});

test("--password on a terminal: prompts twice, echoes nothing", { skip: requires({ commands: ["script"] }), timeout: 60_000 }, async () => {
  using dir = tempDir();
  assert.equal((await keygen(["--dir", dir.path])).code, 0);
  // script(1) gives the program a real pseudo-terminal; we type into it
  // only after each prompt appears, as a person would.
  const out = join(dir.path, "..", `${dir.path.split("/").pop()}-section`);
  const cmd = `${process.execPath} ${KEYGEN} --dir ${dir.path} --password --no-ssh --name tty-client > ${out}`;
  const child = spawn("script", ["--quiet", "--return", "--command", cmd, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"] });
  const timer = setTimeout(() => child.kill("SIGKILL"), 50_000);
  let screen = "";
  const count = (text: string) => screen.split(text).length - 1;
  /** Wait until `text` has appeared `n` times on the terminal. */
  const waitFor = (text: string, n: number) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (count(text) >= n) {
          child.stdout.off("data", check);
          resolve();
        }
      };
      child.stdout.on("data", check);
      child.once("close", () => reject(new Error(`exited before "${text}": ${screen}`)));
      check();
    });
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d: string) => (screen += d));
  const closed = new Promise<number | null>((r) => child.once("close", (code) => r(code)));
  try {
    await waitFor("Enter passphrase: ", 1);
    child.stdin.write("first\r");
    await waitFor("Repeat passphrase: ", 1);
    child.stdin.write("fist\r");
    // A mismatch on a terminal asks again, like Debian's keygen.
    await waitFor("Enter passphrase: ", 2);
    assert.match(screen, /Passphrase mismatch/);
    child.stdin.write("typo\x7f\x7f\x7f\x7fTerminal-pw\r");
    await waitFor("Repeat passphrase: ", 2);
    child.stdin.write("Terminal-pw\r");
    assert.equal(await closed, 0, screen);
    assert.ok(!/Terminal-pw|typo|first|fist/.test(screen), `no echo: ${JSON.stringify(screen)}`);
    const keys = await loadDecryptionKeys(readFileSync(join(dir.path, "pubkey.txt")), readFileSync(join(dir.path, "seckey.txt")));
    const section = readFileSync(out, "utf8");
    assert.equal((await decryptSecret(sectionSecret(section), keys)).toString(), "Terminal-pw");
  } finally {
    clearTimeout(timer);
    child.kill("SIGKILL");
    rmSync(out, { force: true });
  }
});
