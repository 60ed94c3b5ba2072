// OpenPGP key generation for mandos-keygen: a primary key that signs and a
// subkey that encrypts (the secret is encrypted to it), unprotected, as
// Debian's keygen makes with gpg's %no-protection.
import type { EllipticCurveName, SubkeyOptions, UserID } from "openpgp";
import { openpgpModule } from "./load.js";
import { PgpError, libraryReason } from "./errors.js";
import type { KeySpecs, PrimaryKeySpec, SubkeySpec } from "./keyspec.js";

export interface GenerateKeysOptions {
  name: string;
  email?: string;
  comment?: string;
  /** Seconds after creation; 0 or absent: never expires. */
  expireSeconds?: number;
  specs: KeySpecs;
  /** Text of the "Comment:" armor header of both files. */
  armorComment?: string;
  date?: Date;
}

export interface GeneratedKeys {
  publicKeyArmored: string;
  privateKeyArmored: string;
  fingerprint: string;
}

type Shape = { type: "rsa"; rsaBits: number } | { type: "ecc"; curve: EllipticCurveName };

function shape(spec: PrimaryKeySpec | SubkeySpec): Shape {
  return spec.algorithm === "rsa" ? { type: "rsa", rsaBits: spec.bits } : { type: "ecc", curve: spec.curve };
}

/** Characters that would break a user ID or an armor header line. */
function checkText(field: string, value: string | undefined): void {
  // eslint-disable-next-line no-control-regex
  if (value !== undefined && /[\x00-\x1f\x7f]/.test(value)) {
    throw new PgpError(`${field} contains control characters`);
  }
}

export async function generateKeys(opts: GenerateKeysOptions): Promise<GeneratedKeys> {
  checkText("key name", opts.name);
  checkText("email address", opts.email);
  checkText("key comment", opts.comment);
  checkText("armor comment", opts.armorComment);
  if (opts.name.trim() === "") throw new PgpError("empty key name");
  const openpgp = await openpgpModule();
  const userID: UserID = { name: opts.name };
  if (opts.email) userID.email = opts.email;
  if (opts.comment) userID.comment = opts.comment;
  const expiry = opts.expireSeconds ? { keyExpirationTime: opts.expireSeconds } : {};
  const subkey: SubkeyOptions = { ...shape(opts.specs.subkey), sign: false, ...expiry };
  const armorConfig = opts.armorComment
    ? { showComment: true, commentString: opts.armorComment }
    : { showComment: false };
  try {
    const { privateKey, publicKey } = await openpgp.generateKey({
      ...shape(opts.specs.primary),
      userIDs: [userID],
      ...expiry,
      subkeys: [subkey],
      ...(opts.date ? { date: opts.date } : {}),
      format: "object",
      // v4 keys and SEIPD v1 only: Debian 12's gpg 2.2 knows nothing newer.
      config: { v6Keys: false, aeadProtect: false },
    });
    return {
      publicKeyArmored: publicKey.armor({ ...openpgp.config, ...armorConfig }),
      privateKeyArmored: privateKey.armor({ ...openpgp.config, ...armorConfig }),
      fingerprint: publicKey.getFingerprint().toUpperCase(),
    };
  } catch (err) {
    throw new PgpError(`OpenPGP key generation failed: ${libraryReason(err)}`);
  }
}
