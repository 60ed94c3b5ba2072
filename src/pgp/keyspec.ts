// Mapping Debian mandos-keygen's key options (gpg batch-file values for
// Key-Type/Key-Length/Subkey-Type/Subkey-Length) to what openpgp.js can
// generate. Pure: no I/O. Our default differs from Debian's (RSA-4096):
// an Ed25519 primary key with a Curve25519 (ECDH) encryption subkey, which
// decrypts far faster at boot and which gpg 2.2 fully supports.

export type PrimaryKeySpec =
  | { algorithm: "rsa"; bits: number }
  | { algorithm: "ecdsa"; curve: "nistP256" | "nistP384" | "nistP521" }
  | { algorithm: "eddsa"; curve: "ed25519Legacy" };

export type SubkeySpec =
  | { algorithm: "rsa"; bits: number }
  | { algorithm: "ecdh"; curve: "curve25519Legacy" | "nistP256" | "nistP384" | "nistP521" };

export interface KeyTypeOptions {
  type?: string;
  length?: string;
  subtype?: string;
  sublength?: string;
}

export interface KeySpecs {
  primary: PrimaryKeySpec;
  subkey: SubkeySpec;
}

export class KeySpecError extends Error {}

const RSA_MIN = 2048; // openpgp.js refuses shorter RSA keys
const RSA_MAX = 8192;
const RSA_DEFAULT = 4096; // Debian's default length

type Family = "rsa" | "ecdsa" | "eddsa" | "ecdh";

// gpg accepts algorithm names or RFC 4880 numbers; these are the ones gpg
// knows, with what we can do about each.
const PRIMARY_NAMES: Record<string, Family | string> = {
  rsa: "rsa", "1": "rsa",
  ecdsa: "ecdsa", "19": "ecdsa",
  eddsa: "eddsa", ed25519: "eddsa", "22": "eddsa",
  default: "eddsa",
  dsa: "DSA keys cannot be generated with openpgp.js",
  "17": "DSA keys cannot be generated with openpgp.js",
  elg: "ElGamal cannot sign, so cannot be a primary key",
  "elg-e": "ElGamal cannot sign, so cannot be a primary key",
  "16": "ElGamal cannot sign, so cannot be a primary key",
  "20": "ElGamal cannot sign, so cannot be a primary key",
  ecdh: "ECDH cannot sign, so cannot be a primary key",
  "18": "ECDH cannot sign, so cannot be a primary key",
};

const SUBKEY_NAMES: Record<string, Family | string> = {
  rsa: "rsa", "1": "rsa", "2": "rsa",
  ecdh: "ecdh", cv25519: "ecdh", "18": "ecdh",
  default: "ecdh",
  elg: "ElGamal keys cannot be generated with openpgp.js",
  "elg-e": "ElGamal keys cannot be generated with openpgp.js",
  "16": "ElGamal keys cannot be generated with openpgp.js",
  "20": "ElGamal keys cannot be generated with openpgp.js",
  dsa: "DSA cannot encrypt, so cannot be the encryption subkey",
  "17": "DSA cannot encrypt, so cannot be the encryption subkey",
  ecdsa: "ECDSA cannot encrypt, so cannot be the encryption subkey (use ECDH)",
  "19": "ECDSA cannot encrypt, so cannot be the encryption subkey (use ECDH)",
  eddsa: "EdDSA cannot encrypt, so cannot be the encryption subkey (use ECDH)",
  "22": "EdDSA cannot encrypt, so cannot be the encryption subkey (use ECDH)",
};

function parseBits(option: string, value: string): number {
  if (!/^\s*\d+\s*$/.test(value)) throw new KeySpecError(`--${option}: not a number: ${JSON.stringify(value)}`);
  return Number(value);
}

function rsaBits(option: string, value: string | undefined): number {
  if (value === undefined) return RSA_DEFAULT;
  const bits = parseBits(option, value);
  if (bits < RSA_MIN || bits > RSA_MAX) {
    throw new KeySpecError(`--${option} ${bits}: RSA keys must be ${RSA_MIN} to ${RSA_MAX} bits`);
  }
  return bits;
}

const NIST: Record<number, "nistP256" | "nistP384" | "nistP521"> = { 256: "nistP256", 384: "nistP384", 521: "nistP521" };

function lookup(table: Record<string, Family | string>, option: string, value: string): Family {
  const found = table[value.trim().toLowerCase()];
  if (found === undefined) throw new KeySpecError(`--${option}: unknown OpenPGP key type ${JSON.stringify(value)}`);
  if (!["rsa", "ecdsa", "eddsa", "ecdh"].includes(found)) throw new KeySpecError(`--${option} ${value}: ${found}`);
  return found as Family;
}

/** Resolve the four key options (any may be absent) to concrete key specs. */
export function resolveKeySpecs(opts: KeyTypeOptions): KeySpecs {
  const family = opts.type === undefined ? "eddsa" : lookup(PRIMARY_NAMES, "type", opts.type);
  const typeWord = opts.type === undefined ? "EDDSA keys (the default type); add --type RSA for RSA" : `${opts.type} keys`;
  let primary: PrimaryKeySpec;
  if (family === "rsa") {
    primary = { algorithm: "rsa", bits: rsaBits("length", opts.length) };
  } else if (family === "ecdsa") {
    const bits = opts.length === undefined ? 256 : parseBits("length", opts.length);
    const curve = NIST[bits];
    if (!curve) throw new KeySpecError(`--length ${bits}: ECDSA keys are 256, 384 or 521 bits`);
    primary = { algorithm: "ecdsa", curve };
  } else {
    if (opts.length !== undefined) {
      const bits = parseBits("length", opts.length);
      if (bits !== 255 && bits !== 256) throw new KeySpecError(`--length ${bits}: does not apply to ${typeWord}`);
    }
    primary = { algorithm: "eddsa", curve: "ed25519Legacy" };
  }

  const subFamily = opts.subtype === undefined
    ? (family === "rsa" ? "rsa" : "ecdh")
    : lookup(SUBKEY_NAMES, "subtype", opts.subtype);
  let subkey: SubkeySpec;
  if (subFamily === "rsa") {
    subkey = { algorithm: "rsa", bits: rsaBits("sublength", opts.sublength) };
  } else {
    // Without a length, ECDH follows the primary key's curve family.
    const fallback = primary.algorithm === "ecdsa" ? primary.curve : "curve25519Legacy";
    if (opts.sublength === undefined) {
      subkey = { algorithm: "ecdh", curve: fallback };
    } else {
      const bits = parseBits("sublength", opts.sublength);
      const curve = bits === 255 ? "curve25519Legacy" : NIST[bits];
      if (!curve) {
        const which = opts.subtype === undefined ? "ECDH subkeys (the default subtype); add --subtype RSA for RSA" : "ECDH subkeys";
        throw new KeySpecError(`--sublength ${bits}: does not apply to ${which}; ECDH subkeys are 255, 256, 384 or 521 bits`);
      }
      subkey = { algorithm: "ecdh", curve };
    }
  }
  return { primary, subkey };
}

/** Short human description, e.g. "EdDSA (Ed25519) + ECDH (Curve25519)". */
export function describeKeySpecs(specs: KeySpecs): string {
  const name = (s: PrimaryKeySpec | SubkeySpec): string => {
    if (s.algorithm === "rsa") return `RSA-${s.bits}`;
    const curve = { ed25519Legacy: "Ed25519", curve25519Legacy: "Curve25519", nistP256: "P-256", nistP384: "P-384", nistP521: "P-521" }[s.curve];
    return `${s.algorithm.toUpperCase()} (${curve})`;
  };
  return `${name(specs.primary)} + ${name(specs.subkey)}`;
}
