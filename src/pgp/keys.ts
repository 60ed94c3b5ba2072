// Reading the client's OpenPGP key pair (pubkey.txt, seckey.txt) as written
// by Debian's mandos-keygen (gpg --armor --export[-secret-keys], with a
// "Comment:" armor header, unprotected) or by ours.
import type { Key, PrivateKey } from "openpgp";
import { openpgpModule } from "./load.js";
import { PgpError, libraryReason } from "./errors.js";
import { armoredText, armorType, type PgpInput } from "./data.js";

export interface DecryptionKeys {
  /** Unprotected secret keys, ready for decryption. */
  readonly privateKeys: PrivateKey[];
  /** Uppercase fingerprint of the first secret key (for messages). */
  readonly fingerprint: string;
}

async function readAnyKeys(data: PgpInput, what: string): Promise<Key[]> {
  const openpgp = await openpgpModule();
  const text = armoredText(data);
  try {
    if (text !== undefined) return await openpgp.readKeys({ armoredKeys: text });
    if (typeof data === "string") throw new Error("not OpenPGP data");
    return await openpgp.readKeys({ binaryKeys: data });
  } catch (err) {
    throw new PgpError(`${what}: not a readable OpenPGP key (${libraryReason(err)})`);
  }
}

/**
 * Load the keys a client decrypts its secret with. The public key file is
 * checked to be readable (Debian's client imports both files), but only the
 * secret keys matter for decryption.
 */
export async function loadDecryptionKeys(
  pubkeyArmored: PgpInput | undefined,
  seckeyArmored: PgpInput,
  names: { pubkey?: string; seckey?: string } = {},
): Promise<DecryptionKeys> {
  const seckeyName = names.seckey ?? "secret key";
  if (pubkeyArmored !== undefined && pubkeyArmored.length > 0) {
    await readAnyKeys(pubkeyArmored, names.pubkey ?? "public key");
  }
  const text = armoredText(seckeyArmored);
  if (text !== undefined && armorType(text) === "PUBLIC KEY BLOCK") {
    throw new PgpError(`${seckeyName}: holds a public key, not a secret key`);
  }
  const keys = await readAnyKeys(seckeyArmored, seckeyName);
  const privateKeys = keys.filter((k): k is PrivateKey => k.isPrivate());
  if (privateKeys.length === 0) throw new PgpError(`${seckeyName}: holds no secret key`);
  for (const key of privateKeys) {
    if (!key.isDecrypted()) {
      throw new PgpError(
        `${seckeyName}: secret key ${key.getFingerprint().toUpperCase()} is protected by a passphrase; Mandos keys must be unprotected`,
      );
    }
  }
  return { privateKeys, fingerprint: privateKeys[0]!.getFingerprint().toUpperCase() };
}

/** Uppercase hex fingerprint of the (first) key, as Mandos prints it. */
export async function fingerprint(publicKeyArmored: PgpInput): Promise<string> {
  const keys = await readAnyKeys(publicKeyArmored, "public key");
  return keys[0]!.getFingerprint().toUpperCase();
}
