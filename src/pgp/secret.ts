// The client's secret (the disk password) travels as an OpenPGP message
// encrypted to the client's key. mandos-keygen produces it (Debian's runs
// `gpg --encrypt --sign --armor` and keeps only the base64 body), the
// server base64-decodes clients.conf's `secret` and sends the raw bytes,
// and the client decrypts them.
import type { Message, PartialConfig } from "openpgp";
import { openpgpModule } from "./load.js";
import { PgpError, libraryReason } from "./errors.js";
import { armoredText, armorType, looksLikePacket, type PgpInput } from "./data.js";
import type { DecryptionKeys } from "./keys.js";
import { rsaSessionKeys } from "./rsa.js";

// A password or LUKS key file is small (cryptsetup caps key files at
// 8 MiB); refuse to inflate a compressed message past this, so a hostile
// server cannot exhaust the client's memory at boot.
const MAX_SECRET_BYTES = 16 * 1024 * 1024;

const decryptConfig: PartialConfig = { maxDecompressedMessageSize: MAX_SECRET_BYTES };

async function readSecretMessage(message: Uint8Array): Promise<Message<Uint8Array | string>> {
  const openpgp = await openpgpModule();
  const text = armoredText(message);
  if (text !== undefined) {
    const type = armorType(text);
    if (type !== "MESSAGE") throw new PgpError(`not an OpenPGP message (armored ${type ?? "data"})`);
    try {
      return await openpgp.readMessage({ armoredMessage: text, config: decryptConfig });
    } catch (err) {
      throw new PgpError(`corrupt OpenPGP message: ${libraryReason(err)}`);
    }
  }
  if (!looksLikePacket(message)) throw new PgpError("not OpenPGP data");
  try {
    return await openpgp.readMessage({ binaryMessage: message, config: decryptConfig });
  } catch (err) {
    throw new PgpError(`corrupt OpenPGP data: ${libraryReason(err)}`);
  }
}

/** Key IDs (hex, uppercase) of every key and subkey we hold. */
function ourKeyIDs(keys: DecryptionKeys): Set<string> {
  const ids = new Set<string>();
  for (const key of keys.privateKeys) for (const id of key.getKeyIDs()) ids.add(id.toHex().toUpperCase());
  return ids;
}

const WILDCARD_KEY_ID = "0000000000000000";

/**
 * Decrypt a secret (binary or armored OpenPGP message). Returns the
 * plaintext in a Buffer the caller owns and must wipe.
 */
export async function decryptSecret(message: Uint8Array, keys: DecryptionKeys): Promise<Buffer> {
  const openpgp = await openpgpModule();
  const parsed = await readSecretMessage(message);
  const recipients = parsed.getEncryptionKeyIDs().map((id) => id.toHex().toUpperCase());
  if (recipients.length === 0) {
    const passphraseOnly = parsed.packets.some((p) => p instanceof openpgp.SymEncryptedSessionKeyPacket);
    throw new PgpError(
      passphraseOnly
        ? "OpenPGP message is encrypted with a passphrase, not to a key"
        : "OpenPGP data is not an encrypted message",
    );
  }
  const ours = ourKeyIDs(keys);
  if (!recipients.some((id) => id === WILDCARD_KEY_ID || ours.has(id))) {
    throw new PgpError(
      `OpenPGP message is encrypted to another key (key ID ${recipients.join(", ")}), not to this client's key ${keys.fingerprint}`,
    );
  }
  // RSA session keys by OpenSSL (./rsa.ts), the rest by openpgp.js.
  const rsa = await rsaSessionKeys(openpgp, parsed, keys.privateKeys, { ...openpgp.config, ...decryptConfig });
  let data: Uint8Array;
  try {
    // openpgp.js's own words for a session key that does not decrypt.
    if (rsa.tried && rsa.sessionKeys.length === 0) throw new Error("Error decrypting message: Decryption error");
    ({ data } = await openpgp.decrypt({
      message: parsed,
      ...(rsa.tried ? { sessionKeys: rsa.sessionKeys } : { decryptionKeys: keys.privateKeys }),
      format: "binary",
      config: decryptConfig,
    }));
  } catch (err) {
    throw new PgpError(`cannot decrypt OpenPGP message (corrupt data?): ${libraryReason(err)}`);
  } finally {
    for (const key of rsa.sessionKeys) key.data.fill(0);
  }
  // Share the memory rather than copy it, so wiping the Buffer wipes it.
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Encrypt a password to a client's public key, as a binary OpenPGP message
 * (what the server sends; mandos-keygen puts its base64 in clients.conf).
 * With the client's secret key it is also signed, as Debian's keygen does;
 * clients do not check that signature.
 */
export async function encryptSecret(
  password: Uint8Array,
  publicKeyArmored: PgpInput,
  opts: { signingKeyArmored?: PgpInput } = {},
): Promise<Buffer> {
  const openpgp = await openpgpModule();
  const readKey = async (data: PgpInput, what: string) => {
    const text = armoredText(data);
    try {
      if (text !== undefined) return await openpgp.readKey({ armoredKey: text });
      if (typeof data === "string") throw new Error("not OpenPGP data");
      return await openpgp.readKey({ binaryKey: data });
    } catch (err) {
      throw new PgpError(`${what}: not a readable OpenPGP key (${libraryReason(err)})`);
    }
  };
  const encryptionKey = await readKey(publicKeyArmored, "public key");
  let signingKeys;
  if (opts.signingKeyArmored !== undefined) {
    const key = await readKey(opts.signingKeyArmored, "secret key");
    if (!key.isPrivate()) throw new PgpError("secret key: holds a public key, not a secret key");
    signingKeys = key;
  }
  let encrypted: Uint8Array;
  try {
    encrypted = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: password }),
      encryptionKeys: encryptionKey,
      ...(signingKeys ? { signingKeys } : {}),
      format: "binary",
      // gpg 2.2 (Debian's client) only reads SEIPD version 1.
      config: { aeadProtect: false },
    });
  } catch (err) {
    throw new PgpError(`cannot encrypt to key ${encryptionKey.getFingerprint().toUpperCase()}: ${libraryReason(err)}`);
  }
  return Buffer.from(encrypted.buffer, encrypted.byteOffset, encrypted.byteLength);
}
