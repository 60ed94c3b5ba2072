// RSA-encrypted session keys, decrypted by OpenSSL. Debian's mandos-keygen
// makes RSA-4096 keys, and Node 20 refuses RSA PKCS#1 v1.5 private
// decryption (CVE-2023-46809), so openpgp.js falls back to BigInt
// arithmetic in JavaScript: 40 ms natively, about 0.5 s in a boot VM under
// emulation, on the way to the disk password. Here OpenSSL does the
// private-key operation without padding (blinded, constant time, 3 ms),
// the EME-PKCS1-v1_5 decoding loop does not branch on the bytes (as in
// openpgp.js), and openpgp.js then decrypts the message with the session
// key it is given. A packet that yields no session key fails at once, as
// openpgp.js fails it, never retried the slow way: a failure must not take
// longer than a success. Other algorithms and version 6 packets are left
// to openpgp.js.
import { constants, createPrivateKey, privateDecrypt, type KeyObject } from "node:crypto";
import type { Config, Message, PrivateKey, SessionKey } from "openpgp";
import type { OpenPGPModule } from "./load.js";

/** The fields of openpgp.js's session key packet read here (not in its typings). */
interface EncryptedSessionKey {
  version: number;
  publicKeyAlgorithm: number;
  publicKeyID: Parameters<PrivateKey["getDecryptionKeys"]>[0];
  encrypted: { c?: Uint8Array } | null;
}

interface SelfSigned {
  getPrimarySelfSignature(date?: Date, userID?: object, config?: Config): Promise<{ preferredSymmetricAlgorithms: number[] | null }>;
}

interface RsaKeyPacket {
  algorithm: number;
  publicParams: { n: Uint8Array; e: Uint8Array };
  privateParams: { d: Uint8Array; p: Uint8Array; q: Uint8Array; u: Uint8Array } | null;
}

// ---- DER (PKCS#1 RSAPrivateKey), so OpenSSL gets the key from a Buffer we wipe ----

function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let x = n; x > 0; x >>= 8) bytes.unshift(x & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

/** Total size of a DER element whose content is `n` bytes long. */
const derSize = (n: number) => 1 + derLength(n).length + n;

/** Unsigned big-endian bytes as DER INTEGER content, in a new array: no leading zeros, a zero byte before a high bit. */
function integerContent(bytes: Uint8Array): Uint8Array {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const pad = bytes.length === 0 || (bytes[start]! & 0x80) !== 0 ? 1 : 0;
  const out = new Uint8Array(bytes.length - start + pad);
  out.set(bytes.subarray(start), pad);
  return out;
}

/** RSAPrivateKey (RFC 8017, A.1.2) from unsigned big-endian integers, in one Buffer. */
export function pkcs1PrivateKeyDer(fields: readonly Uint8Array[]): Buffer {
  const contents = [new Uint8Array([0]), ...fields.map(integerContent)];
  const body = contents.reduce((sum, c) => sum + derSize(c.length), 0);
  const der = Buffer.alloc(derSize(body));
  let at = 0;
  const put = (bytes: ArrayLike<number>) => {
    der.set(bytes, at);
    at += bytes.length;
  };
  put([0x30, ...derLength(body)]);
  for (const c of contents) {
    put([0x02, ...derLength(c.length)]);
    put(c);
    c.fill(0); // our copies of private key material
  }
  return der;
}

const bigint = (bytes: Uint8Array) => BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex") || "0"}`);

function bigintBytes(x: bigint): Uint8Array {
  const hex = x.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex");
}

/**
 * OpenSSL's key for an OpenPGP RSA key packet. OpenPGP's u is p⁻¹ mod q;
 * PKCS#1 wants qInv = q⁻¹ mod p, so p and q swap places. The CRT
 * exponents are computed with BigInt, as openpgp.js itself does for every
 * RSA decryption; the DER copy is wiped once OpenSSL holds the key, which
 * OpenSSL clears when the KeyObject is collected.
 */
export function opensslKey(packet: RsaKeyPacket): KeyObject {
  const { n, e } = packet.publicParams;
  const { d, p, q, u } = packet.privateParams!;
  const dNum = bigint(d);
  const dp = bigintBytes(dNum % (bigint(q) - 1n));
  const dq = bigintBytes(dNum % (bigint(p) - 1n));
  const der = pkcs1PrivateKeyDer([n, e, d, q, p, dp, dq, u]);
  dp.fill(0);
  dq.fill(0);
  try {
    return createPrivateKey({ key: der, format: "der", type: "pkcs1" });
  } finally {
    der.fill(0);
  }
}

/**
 * EME-PKCS1-v1_5 decoding (RFC 8017, 7.2.2): 0x00 0x02, at least 8 nonzero
 * padding bytes, 0x00, the payload. The loop reads every byte whatever
 * they hold; the result is the payload's offset, or -1 if the padding is bad.
 */
export function emeDecode(em: Uint8Array): number {
  let offset = 2;
  let notFound = 1;
  for (let i = 2; i < em.length; i++) {
    notFound &= em[i] !== 0 ? 1 : 0;
    offset += notFound;
  }
  const valid = (em[0] === 0 ? 1 : 0) & (em[1] === 2 ? 1 : 0) & (offset - 2 >= 8 ? 1 : 0) & (notFound ^ 1);
  return valid ? offset + 1 : -1;
}

/** Key sizes of the ciphers a session key may name (openpgp.js checks them too). */
const KEY_BYTES: Partial<Record<SessionKey["algorithm"], number>> = {
  tripledes: 24, cast5: 16, idea: 16, blowfish: 16, aes128: 16, aes192: 24, aes256: 32, twofish: 32,
};

/**
 * The session key in a decrypted version 3 payload (algorithm byte, key,
 * two-byte checksum of the key), or null if the checksum, algorithm or size is wrong.
 */
export function sessionKeyOf(openpgp: OpenPGPModule, payload: Uint8Array): SessionKey | null {
  if (payload.length < 4) return null;
  const key = payload.subarray(1, payload.length - 2);
  let sum = 0;
  for (const byte of key) sum = (sum + byte) & 0xffff;
  const checksum = (payload[payload.length - 2]! << 8) | payload[payload.length - 1]!;
  let algorithm: SessionKey["algorithm"];
  try {
    algorithm = openpgp.enums.read(openpgp.enums.symmetric, payload[0]!) as SessionKey["algorithm"];
  } catch {
    return null;
  }
  if (sum !== checksum || !algorithm || KEY_BYTES[algorithm] !== key.length) return null;
  return { data: Uint8Array.from(key), algorithm };
}

/** RSA decryption of one session key packet with one key packet: the session key, or null. */
function decryptWith(openpgp: OpenPGPModule, c: Uint8Array, key: RsaKeyPacket): SessionKey | null {
  let em: Buffer;
  try {
    const k = opensslKey(key);
    const size = Math.ceil(k.asymmetricKeyDetails!.modulusLength! / 8);
    let start = 0;
    while (start < c.length && c[start] === 0) start++; // an MPI with leading zeros
    if (c.length - start > size) return null;
    const input = Buffer.alloc(size);
    input.set(c.subarray(start), size - (c.length - start));
    em = privateDecrypt({ key: k, padding: constants.RSA_NO_PADDING }, input);
  } catch {
    return null; // c ≥ n, or a key OpenSSL refuses (p or q of 1…)
  }
  try {
    const at = emeDecode(em);
    return at < 0 ? null : sessionKeyOf(openpgp, em.subarray(at));
  } finally {
    em.fill(0);
  }
}

const isRsa = (openpgp: OpenPGPModule, algorithm: number) =>
  algorithm === openpgp.enums.publicKey.rsaEncrypt || algorithm === openpgp.enums.publicKey.rsaEncryptSign;

/** The symmetric algorithms openpgp.js accepts from a key's holder: its defaults and the key's preferences. */
async function acceptedAlgorithms(openpgp: OpenPGPModule, key: PrivateKey, config: Config): Promise<Set<string>> {
  const { symmetric } = openpgp.enums;
  const accepted = new Set<number>([symmetric.aes256, symmetric.aes128, symmetric.tripledes, symmetric.cast5]);
  try {
    // Not in openpgp.js's typings; decrypt() calls it for the same check.
    const self = await (key as unknown as SelfSigned).getPrimarySelfSignature(undefined, undefined, config);
    for (const a of self.preferredSymmetricAlgorithms ?? []) accepted.add(a);
  } catch {
    // no valid self-signature: the defaults only
  }
  return new Set([...accepted].map((a) => openpgp.enums.read(symmetric, a) as string));
}

/**
 * What our RSA keys make of the message's version 3 session key packets
 * addressed to them (or to anyone), found as openpgp.js would find them:
 * `tried` is false if there is none (openpgp.js should decrypt the message
 * with the keys instead); else the session keys they gave, perhaps none,
 * in which case the message does not decrypt. The caller wipes the keys' data.
 */
export async function rsaSessionKeys(
  openpgp: OpenPGPModule,
  message: Message<Uint8Array | string>,
  privateKeys: readonly PrivateKey[],
  config: Config,
): Promise<{ tried: boolean; sessionKeys: SessionKey[] }> {
  const packets = message.packets.filter((p) => p instanceof openpgp.PublicKeyEncryptedSessionKeyPacket) as unknown as EncryptedSessionKey[];
  const sessionKeys: SessionKey[] = [];
  let tried = false;
  for (const packet of packets) {
    const c = packet.encrypted?.c;
    if (packet.version !== 3 || !isRsa(openpgp, packet.publicKeyAlgorithm) || !c) continue;
    for (const privateKey of privateKeys) {
      let found: Awaited<ReturnType<PrivateKey["getDecryptionKeys"]>>;
      try {
        found = await privateKey.getDecryptionKeys(packet.publicKeyID, null, undefined, config);
      } catch {
        continue; // no valid key of this one for the packet
      }
      for (const { keyPacket } of found) {
        const rsa = keyPacket as unknown as RsaKeyPacket;
        if (rsa.algorithm !== packet.publicKeyAlgorithm || !rsa.privateParams) continue;
        tried = true;
        const sessionKey = decryptWith(openpgp, c, rsa);
        if (!sessionKey) continue;
        if ((await acceptedAlgorithms(openpgp, privateKey, config)).has(sessionKey.algorithm)) sessionKeys.push(sessionKey);
        else sessionKey.data.fill(0);
      }
    }
  }
  return { tried, sessionKeys };
}
