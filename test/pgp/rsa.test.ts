// RSA session keys by OpenSSL (src/pgp/rsa.ts): the same session key as
// openpgp.js's own decryption, EME-PKCS1-v1_5 decoding, the DER key, and
// what a tampered or foreign session key packet gives.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import type { PrivateKey } from "openpgp";
import { decryptSecret, encryptSecret, generateKeys, loadDecryptionKeys, resolveKeySpecs, type GeneratedKeys } from "../../src/pgp/index.js";
import { openpgpModule, type OpenPGPModule } from "../../src/pgp/load.js";
import { emeDecode, opensslKey, pkcs1PrivateKeyDer, rsaSessionKeys, sessionKeyOf } from "../../src/pgp/rsa.js";
import { libraryReason } from "../../src/pgp/errors.js";

let openpgp: OpenPGPModule;
let rsa: GeneratedKeys;
let ecc: GeneratedKeys;

before(async () => {
  openpgp = await openpgpModule();
  rsa = await generateKeys({ name: "rsa client", specs: resolveKeySpecs({ type: "RSA", length: "2048", sublength: "2048" }) });
  ecc = await generateKeys({ name: "ecc client", specs: resolveKeySpecs({}) });
});

const config = () => ({ ...openpgp.config });

test("EME-PKCS1-v1_5 decoding: the payload's offset, or -1 for bad padding", () => {
  const em = (head: number[], ps: number, payload: number[]) => Uint8Array.from([...head, ...Array(ps).fill(0xaa), 0, ...payload]);
  assert.equal(emeDecode(em([0, 2], 8, [9, 1, 2])), 11);
  assert.equal(emeDecode(em([0, 2], 200, [9])), 203);
  assert.equal(emeDecode(em([0, 2], 7, [9, 1, 2])), -1, "padding shorter than 8 bytes");
  assert.equal(emeDecode(em([1, 2], 8, [9])), -1, "first byte not 0");
  assert.equal(emeDecode(em([0, 1], 8, [9])), -1, "block type 1 (signatures), not 2");
  assert.equal(emeDecode(Uint8Array.from([0, 2, ...Array(20).fill(0xaa)])), -1, "no separator");
  assert.equal(emeDecode(Uint8Array.from([0, 2, 0xaa])), -1, "too short");
  assert.equal(emeDecode(em([0, 2], 8, [])), 11, "an empty payload is still well padded");
});

/** A version 3 session key payload: algorithm byte, key, two-byte sum of the key's bytes. */
function payloadFor(algorithm: number, key: Uint8Array): Uint8Array {
  const sum = key.reduce((s, b) => (s + b) & 0xffff, 0);
  return Uint8Array.from([algorithm, ...key, sum >> 8, sum & 0xff]);
}

test("session key payloads: algorithm, key and checksum are checked", () => {
  const key = randomBytes(32);
  const payload = payloadFor(9, key);
  assert.deepEqual(sessionKeyOf(openpgp, payload), { data: Uint8Array.from(key), algorithm: "aes256" });
  const badSum = Uint8Array.from(payload);
  badSum[badSum.length - 1]! ^= 1;
  assert.equal(sessionKeyOf(openpgp, badSum), null);
  assert.equal(sessionKeyOf(openpgp, Uint8Array.from([200, ...payload.subarray(1)])), null, "unknown algorithm");
  assert.equal(sessionKeyOf(openpgp, Uint8Array.from([9, 0, 0])), null, "too short");
  assert.equal(sessionKeyOf(openpgp, payloadFor(9, key.subarray(0, 16))), null, "a 16-byte key for AES-256");
  assert.deepEqual(sessionKeyOf(openpgp, payloadFor(7, key.subarray(0, 16))), { data: Uint8Array.from(key.subarray(0, 16)), algorithm: "aes128" });
});

test("the DER key OpenSSL reads is the key it was made from, whatever the integers' high bits", () => {
  for (let i = 0; i < 4; i++) {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const jwk = privateKey.export({ format: "jwk" });
    const field = (name: "n" | "e" | "d" | "p" | "q" | "dp" | "dq" | "qi") => Buffer.from(jwk[name]!, "base64url");
    const der = pkcs1PrivateKeyDer([field("n"), field("e"), field("d"), field("p"), field("q"), field("dp"), field("dq"), field("qi")]);
    const fromDer = createPrivateKey({ key: der, format: "der", type: "pkcs1" });
    assert.deepEqual(fromDer.export({ format: "jwk" }), jwk);
    // A leading zero byte in an input is not part of the integer.
    const padded = pkcs1PrivateKeyDer([Buffer.concat([Buffer.alloc(1), field("n")]), field("e"), field("d"), field("p"), field("q"), field("dp"), field("dq"), field("qi")]);
    assert.deepEqual(padded, der);
  }
});

test("OpenSSL's key from an OpenPGP key packet: p and q swapped, the CRT values right", async () => {
  const key = await openpgp.readPrivateKey({ armoredKey: rsa.privateKeyArmored });
  for (const packet of [key.keyPacket, ...key.subkeys.map((s) => s.keyPacket)]) {
    const jwk = opensslKey(packet as unknown as Parameters<typeof opensslKey>[0]).export({ format: "jwk" });
    const [n, d, p, q, dp, dq, qi] = (["n", "d", "p", "q", "dp", "dq", "qi"] as const).map((f) => BigInt(`0x${Buffer.from(jwk[f]!, "base64url").toString("hex")}`));
    assert.equal(p! * q!, n);
    assert.equal(dp, d! % (p! - 1n));
    assert.equal(dq, d! % (q! - 1n));
    assert.equal((qi! * q!) % p!, 1n);
  }
});

test("an RSA-encrypted session key: OpenSSL finds the one openpgp.js finds", async () => {
  const keys = await loadDecryptionKeys(rsa.publicKeyArmored, rsa.privateKeyArmored);
  for (let i = 0; i < 3; i++) {
    const encrypted = await encryptSecret(Buffer.from(`pw ${i}`), rsa.publicKeyArmored, { signingKeyArmored: rsa.privateKeyArmored });
    const message = await openpgp.readMessage({ binaryMessage: encrypted });
    const ours = await rsaSessionKeys(openpgp, message, keys.privateKeys, config());
    const theirs = await openpgp.decryptSessionKeys({ message, decryptionKeys: keys.privateKeys });
    assert.equal(ours.tried, true);
    assert.equal(ours.sessionKeys.length, 1);
    assert.deepEqual(ours.sessionKeys, theirs.map(({ data, algorithm }) => ({ data, algorithm })));
    assert.equal((await decryptSecret(encrypted, keys)).toString(), `pw ${i}`);
  }
});

test("a message to an ECC key is left to openpgp.js; a tampered RSA session key fails at once, as openpgp.js fails it", async () => {
  const eccKeys = await loadDecryptionKeys(ecc.publicKeyArmored, ecc.privateKeyArmored);
  const toEcc = await openpgp.readMessage({ binaryMessage: await encryptSecret(Buffer.from("pw"), ecc.publicKeyArmored) });
  assert.deepEqual(await rsaSessionKeys(openpgp, toEcc, eccKeys.privateKeys, config()), { tried: false, sessionKeys: [] });

  const keys = await loadDecryptionKeys(rsa.publicKeyArmored, rsa.privateKeyArmored);
  const good = await encryptSecret(Buffer.from("pw"), rsa.publicKeyArmored);
  const pkesk = (await openpgp.readMessage({ binaryMessage: good })).packets.find(
    (p) => p instanceof openpgp.PublicKeyEncryptedSessionKeyPacket,
  ) as unknown as { encrypted: { c: Uint8Array } };
  const at = good.indexOf(pkesk.encrypted.c);
  assert.ok(at > 0 && pkesk.encrypted.c.length === 256);
  const one = Buffer.alloc(256);
  one[255] = 1;
  // Random: bad padding; all ones: not below n; 1: decrypts to 1.
  for (const c of [randomBytes(256), Buffer.alloc(256, 0xff), one]) {
    const tampered = Buffer.concat([good.subarray(0, at), c, good.subarray(at + 256)]);
    const message = await openpgp.readMessage({ binaryMessage: tampered });
    assert.deepEqual(await rsaSessionKeys(openpgp, message, keys.privateKeys, config()), { tried: true, sessionKeys: [] });
    // The error openpgp.js gives for a bad padding (it says "Data too large"
    // for c ≥ n), without trying the packet again the slow way.
    const theirs = await openpgp.decrypt({ message: await openpgp.readMessage({ binaryMessage: tampered }), decryptionKeys: keys.privateKeys }).then(
      () => assert.fail("openpgp.js decrypted a tampered message"),
      (err: unknown) => libraryReason(err),
    );
    assert.match(theirs, /^(Decryption error|Data too large)$/);
    await assert.rejects(decryptSecret(tampered, keys), { message: "cannot decrypt OpenPGP message (corrupt data?): Decryption error" });
  }
});

test("a key that does not decrypt (signing only) finds nothing", async () => {
  const message = await openpgp.readMessage({ binaryMessage: await encryptSecret(Buffer.from("pw"), rsa.publicKeyArmored) });
  // Only the primary (signing) key: getDecryptionKeys finds no key for the subkey's ID.
  const primaryOnly = (await openpgp.readPrivateKey({ armoredKey: rsa.privateKeyArmored })) as PrivateKey;
  primaryOnly.subkeys = [];
  assert.deepEqual(await rsaSessionKeys(openpgp, message, [primaryOnly], config()), { tried: false, sessionKeys: [] });
});
