// The OpenPGP core against itself, against gpg 2.2 (both directions), and
// against keys and secrets made by Debian's mandos-keygen.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  decryptSecret,
  encryptSecret,
  fingerprint,
  generateKeys,
  loadDecryptionKeys,
  preload,
  resolveKeySpecs,
  PgpError,
  type GeneratedKeys,
} from "../../src/pgp/index.js";
import { openpgpModule } from "../../src/pgp/load.js";
import { rsaSessionKeys } from "../../src/pgp/rsa.js";
import { requires, tempDir } from "../helpers/index.js";
import { makeGnupg } from "../helpers/pgp.js";
import { DEBIAN_KEYGEN, debianPasswordSection, debianPeerMissing, makeDebianKeys, sectionSecret } from "../helpers/debian-peer.js";

let ecc: GeneratedKeys;
let other: GeneratedKeys;

before(async () => {
  await preload();
  ecc = await generateKeys({ name: "client1", specs: resolveKeySpecs({}), armorComment: "Mandos client key for client1" });
  other = await generateKeys({ name: "someone else", specs: resolveKeySpecs({}) });
});

test("generated key files look like Debian's (armored, commented, unprotected)", async () => {
  assert.match(ecc.publicKeyArmored, /^-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\nComment: Mandos client key for client1\r?\n/);
  assert.match(ecc.privateKeyArmored, /^-----BEGIN PGP PRIVATE KEY BLOCK-----\r?\nComment: Mandos client key for client1\r?\n/);
  assert.match(ecc.fingerprint, /^[0-9A-F]{40}$/);
  assert.equal(await fingerprint(ecc.publicKeyArmored), ecc.fingerprint);
  assert.equal(await fingerprint(ecc.privateKeyArmored), ecc.fingerprint);
  const keys = await loadDecryptionKeys(ecc.publicKeyArmored, ecc.privateKeyArmored);
  assert.equal(keys.fingerprint, ecc.fingerprint);
});

test("round trip: binary and armored messages, binary password bytes", async () => {
  const keys = await loadDecryptionKeys(ecc.publicKeyArmored, ecc.privateKeyArmored);
  const password = Buffer.from([0, 1, 2, 0xff, 0x0a, 0x41]);
  const message = await encryptSecret(password, ecc.publicKeyArmored);
  assert.ok((message[0]! & 0x80) !== 0, "binary OpenPGP");
  const plain = await decryptSecret(message, keys);
  assert.deepEqual(plain, password);
  plain.fill(0);
  // Signed with the client's key, as Debian's keygen does.
  const signed = await encryptSecret(Buffer.from("pw"), ecc.publicKeyArmored, { signingKeyArmored: ecc.privateKeyArmored });
  assert.equal((await decryptSecret(signed, keys)).toString(), "pw");
});

test("clear one-line errors: not OpenPGP, another key, corrupt, wrong key file", async () => {
  const keys = await loadDecryptionKeys(ecc.publicKeyArmored, ecc.privateKeyArmored);
  const oneLine = (re: RegExp) => (err: Error) => err instanceof PgpError && re.test(err.message) && !err.message.includes("\n");
  await assert.rejects(decryptSecret(Buffer.from("hunter2\n"), keys), oneLine(/^not OpenPGP data$/));
  await assert.rejects(decryptSecret(new Uint8Array(0), keys), oneLine(/^not OpenPGP data$/));
  const toOther = await encryptSecret(Buffer.from("pw"), other.publicKeyArmored);
  await assert.rejects(
    decryptSecret(toOther, keys),
    oneLine(new RegExp(`encrypted to another key \\(key ID [0-9A-F]{16}\\), not to this client's key ${ecc.fingerprint}`)),
  );
  const good = await encryptSecret(Buffer.from("pw"), ecc.publicKeyArmored);
  const truncated = good.subarray(0, good.length - 20);
  await assert.rejects(decryptSecret(truncated, keys), oneLine(/corrupt/));
  const flipped = Buffer.from(good);
  flipped[flipped.length - 5]! ^= 0xff;
  await assert.rejects(decryptSecret(flipped, keys), oneLine(/corrupt|cannot decrypt/));
  await assert.rejects(decryptSecret(Buffer.from(ecc.publicKeyArmored), keys), oneLine(/not an OpenPGP message \(armored PUBLIC KEY BLOCK\)/));
  await assert.rejects(loadDecryptionKeys(ecc.publicKeyArmored, ecc.publicKeyArmored), oneLine(/holds a public key, not a secret key/));
  await assert.rejects(loadDecryptionKeys(undefined, "garbage", { seckey: "/x/seckey.txt" }), oneLine(/^\/x\/seckey.txt: not a readable OpenPGP key/));
});

test("gpg imports our keys, decrypts our secret; we decrypt gpg's", { skip: requires({ commands: ["gpg", "gpgconf"] }) }, async () => {
  await using gnupg = makeGnupg();
  using dir = tempDir();
  writeFileSync(join(dir.path, "pubkey.txt"), ecc.publicKeyArmored);
  writeFileSync(join(dir.path, "seckey.txt"), ecc.privateKeyArmored);
  await gnupg.gpg(["--import", join(dir.path, "pubkey.txt"), join(dir.path, "seckey.txt")]);
  const listed = await gnupg.gpg(["--with-colons", "--fingerprint"]);
  assert.match(listed.stdout.toString(), new RegExp(`^fpr:+${ecc.fingerprint}:$`, "m"));

  const password = Buffer.from("correct horse battery staple\n");
  const ours = await encryptSecret(password, ecc.publicKeyArmored, { signingKeyArmored: ecc.privateKeyArmored });
  const byGpg = await gnupg.gpg(["--decrypt"], { input: ours });
  assert.deepEqual(byGpg.stdout, password);

  const keys = await loadDecryptionKeys(ecc.publicKeyArmored, ecc.privateKeyArmored);
  for (const extra of [[], ["--armor"], ["--sign", "--local-user", ecc.fingerprint]]) {
    const enc = await gnupg.gpg(["--encrypt", "--recipient", ecc.fingerprint, ...extra], { input: password });
    assert.deepEqual(await decryptSecret(enc.stdout, keys), password, extra.join(" "));
  }
  // Binary (unarmored) key files, as `gpg --export` writes them, load too.
  const binPub = (await gnupg.gpg(["--export", ecc.fingerprint])).stdout;
  const binSec = (await gnupg.gpg(["--export-secret-keys", ecc.fingerprint])).stdout;
  const fromBinary = await loadDecryptionKeys(binPub, binSec);
  assert.equal(fromBinary.fingerprint, ecc.fingerprint);
  assert.deepEqual(await decryptSecret(ours, fromBinary), password);
  // Encrypted by gpg to a key we do not hold.
  const stranger = await generateKeys({ name: "stranger", specs: resolveKeySpecs({ type: "RSA", length: "2048", sublength: "2048" }) });
  writeFileSync(join(dir.path, "stranger.txt"), stranger.publicKeyArmored);
  await gnupg.gpg(["--import", join(dir.path, "stranger.txt")]);
  const toStranger = await gnupg.gpg(["--encrypt", "--recipient", stranger.fingerprint], { input: password });
  await assert.rejects(decryptSecret(toStranger.stdout, keys), /encrypted to another key/);
  // Passphrase-only message.
  const symmetric = await gnupg.gpg(["--symmetric", "--passphrase", "x", "--pinentry-mode", "loopback"], { input: password });
  await assert.rejects(decryptSecret(symmetric.stdout, keys), /encrypted with a passphrase, not to a key/);
});

test("RSA keys from openpgp.js interoperate with gpg too", { skip: requires({ commands: ["gpg", "gpgconf"] }) }, async () => {
  await using gnupg = makeGnupg();
  const rsa = await generateKeys({ name: "rsa client", specs: resolveKeySpecs({ type: "RSA", length: "2048", sublength: "2048" }) });
  await gnupg.gpg(["--import"], { input: rsa.privateKeyArmored });
  const message = await encryptSecret(Buffer.from("pw"), rsa.publicKeyArmored);
  assert.equal((await gnupg.gpg(["--decrypt"], { input: message })).stdout.toString(), "pw");
});

test(
  "Debian's keys: we decrypt the secret Debian's mandos-keygen put in its clients.conf section",
  { skip: requires({ commands: ["gpg", "certtool"] }) || debianPeerMissing(DEBIAN_KEYGEN), timeout: 180_000 },
  async (t) => {
    using dir = tempDir();
    let start = performance.now();
    await makeDebianKeys(dir.path);
    t.diagnostic(`Debian mandos-keygen (RSA-4096): ${(performance.now() - start).toFixed(0)} ms`);
    const pubkey = readFileSync(join(dir.path, "pubkey.txt"));
    const seckey = readFileSync(join(dir.path, "seckey.txt"));
    assert.match(pubkey.toString(), /^Comment: Mandos client key for /m);
    const password = "Debian's password\n";
    const section = await debianPasswordSection(dir.path, password, "debian-client");
    const keys = await loadDecryptionKeys(pubkey, seckey);
    assert.equal(`fingerprint = ${keys.fingerprint}`, /^fingerprint = .*$/m.exec(section)?.[0]);
    const secret = sectionSecret(section);
    // Debian's RSA-4096 session key is OpenSSL's to decrypt (src/pgp/rsa.ts), not openpgp.js's.
    const openpgp = await openpgpModule();
    const fast = await rsaSessionKeys(openpgp, await openpgp.readMessage({ binaryMessage: secret }), keys.privateKeys, { ...openpgp.config });
    assert.deepEqual([fast.tried, fast.sessionKeys.length], [true, 1]);
    start = performance.now();
    const plain = await decryptSecret(secret, keys);
    t.diagnostic(`decryptSecret, Debian RSA-4096 key: ${(performance.now() - start).toFixed(1)} ms`);
    assert.equal(plain.toString(), password);
    plain.fill(0);
    // And our encryption to Debian's key decrypts with gpg from Debian's files.
    await using gnupg = makeGnupg();
    await gnupg.gpg(["--import", join(dir.path, "pubkey.txt"), join(dir.path, "seckey.txt")]);
    const ours = await encryptSecret(Buffer.from("to debian"), pubkey);
    assert.equal((await gnupg.gpg(["--decrypt"], { input: ours })).stdout.toString(), "to debian");
  },
);
