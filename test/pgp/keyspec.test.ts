// Mapping Debian's --type/--length/--subtype/--sublength values, and gpg's
// expiry syntax, to what we generate. Pure functions, no I/O.
import { test } from "node:test";
import assert from "node:assert/strict";
import { resolveKeySpecs, describeKeySpecs, KeySpecError } from "../../src/pgp/keyspec.js";
import { parseExpire, ExpireError } from "../../src/pgp/expire.js";

test("default is Ed25519 with a Curve25519 encryption subkey", () => {
  const specs = resolveKeySpecs({});
  assert.deepEqual(specs, {
    primary: { algorithm: "eddsa", curve: "ed25519Legacy" },
    subkey: { algorithm: "ecdh", curve: "curve25519Legacy" },
  });
  assert.equal(describeKeySpecs(specs), "EDDSA (Ed25519) + ECDH (Curve25519)");
});

test("--type RSA gives Debian's RSA-4096 pair, lengths apply", () => {
  assert.deepEqual(resolveKeySpecs({ type: "RSA" }), {
    primary: { algorithm: "rsa", bits: 4096 },
    subkey: { algorithm: "rsa", bits: 4096 },
  });
  assert.deepEqual(resolveKeySpecs({ type: "rsa", length: "3072", sublength: "2048" }), {
    primary: { algorithm: "rsa", bits: 3072 },
    subkey: { algorithm: "rsa", bits: 2048 },
  });
  // gpg's numeric algorithm ids work too.
  assert.equal(resolveKeySpecs({ type: "1" }).primary.algorithm, "rsa");
});

test("ECDSA lengths pick NIST curves, ECDH follows the primary curve", () => {
  assert.deepEqual(resolveKeySpecs({ type: "ECDSA", length: "384" }), {
    primary: { algorithm: "ecdsa", curve: "nistP384" },
    subkey: { algorithm: "ecdh", curve: "nistP384" },
  });
  assert.deepEqual(resolveKeySpecs({ type: "ecdsa" }).subkey, { algorithm: "ecdh", curve: "nistP256" });
  assert.deepEqual(resolveKeySpecs({ subtype: "ECDH", sublength: "521" }).subkey, { algorithm: "ecdh", curve: "nistP521" });
  assert.deepEqual(resolveKeySpecs({ type: "EDDSA", subtype: "RSA" }).subkey, { algorithm: "rsa", bits: 4096 });
});

test("types and lengths openpgp.js cannot make are clear errors", () => {
  const cases: [Parameters<typeof resolveKeySpecs>[0], RegExp][] = [
    [{ type: "DSA" }, /--type DSA: DSA keys cannot be generated/],
    [{ type: "ELG-E" }, /cannot sign/],
    [{ type: "FOO" }, /unknown OpenPGP key type "FOO"/],
    [{ type: "RSA", subtype: "ELG-E" }, /ElGamal keys cannot be generated/],
    [{ subtype: "DSA" }, /DSA cannot encrypt/],
    [{ type: "RSA", length: "1024" }, /RSA keys must be 2048 to 8192 bits/],
    [{ type: "RSA", length: "lots" }, /--length: not a number/],
    [{ length: "4096" }, /--length 4096: does not apply to EDDSA keys \(the default type\); add --type RSA/],
    [{ sublength: "4096" }, /--sublength 4096: does not apply to ECDH subkeys \(the default subtype\); add --subtype RSA/],
    [{ type: "ECDSA", length: "300" }, /ECDSA keys are 256, 384 or 521 bits/],
  ];
  for (const [opts, message] of cases) {
    assert.throws(() => resolveKeySpecs(opts), (err: Error) => err instanceof KeySpecError && message.test(err.message), JSON.stringify(opts));
  }
});

test("gpg expiry syntax", () => {
  const now = new Date("2030-01-01T00:00:00Z");
  assert.equal(parseExpire("0", now), 0);
  assert.equal(parseExpire("10", now), 10 * 86400);
  assert.equal(parseExpire("2w", now), 14 * 86400);
  assert.equal(parseExpire("1m", now), 30 * 86400);
  assert.equal(parseExpire("1y", now), 365 * 86400);
  assert.equal(parseExpire("seconds=90", now), 90);
  assert.equal(parseExpire("2030-01-02", now), 86400);
  assert.equal(parseExpire("20300101T000100", now), 60);
  for (const bad of ["", "soon", "2029-12-31", "2030-02-30", "0d"]) {
    assert.throws(() => parseExpire(bad, now), ExpireError, bad);
  }
});
