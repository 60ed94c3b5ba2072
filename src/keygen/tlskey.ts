// The client's TLS key pair (raw public key, RFC 7250). Debian's keygen
// asks certtool for `--sec-param ultra` keys of the requested type; we make
// the same kinds with node:crypto: Ed25519 (default), Ed448, ECDSA P-384
// and RSA/RSA-PSS 8192 bits (certtool's "ultra" sizes).
import { generateKeyPair, type KeyObject } from "node:crypto";
import { UsageError } from "../cli/args.js";

export type TlsKeyType = "ed25519" | "ed448" | "ecdsa" | "rsa" | "rsa-pss";

const ULTRA_RSA_BITS = 8192;

const ALIASES: Record<string, TlsKeyType | string> = {
  ed25519: "ed25519",
  ed448: "ed448",
  ecdsa: "ecdsa",
  ecc: "ecdsa",
  rsa: "rsa",
  "rsa-pss": "rsa-pss",
  dsa: "DSA keys cannot be used with TLS 1.3, which Mandos requires",
  x25519: "X25519 keys can only agree on keys, not sign, so cannot identify a TLS peer",
  x448: "X448 keys can only agree on keys, not sign, so cannot identify a TLS peer",
};

/** The TLS key type named by --tls-keytype (certtool's names). */
export function resolveTlsKeyType(value: string): TlsKeyType {
  const found = ALIASES[value.trim().toLowerCase()];
  if (found === undefined) {
    throw new UsageError(
      `--tls-keytype: unsupported TLS key type ${JSON.stringify(value)} (use ed25519, ed448, ecdsa, rsa or rsa-pss)`,
    );
  }
  if (!(["ed25519", "ed448", "ecdsa", "rsa", "rsa-pss"] as string[]).includes(found)) {
    throw new UsageError(`--tls-keytype ${value}: ${found}`);
  }
  return found as TlsKeyType;
}

export interface TlsKeyPair {
  /** SubjectPublicKeyInfo, PEM ("PUBLIC KEY"). */
  publicPem: string;
  /** Unencrypted PKCS#8, PEM ("PRIVATE KEY"). */
  privatePem: string;
}

function generate(type: TlsKeyType): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject) =>
      err ? reject(err) : resolve({ publicKey, privateKey });
    switch (type) {
      case "ed25519":
        return generateKeyPair("ed25519", {}, done);
      case "ed448":
        return generateKeyPair("ed448", {}, done);
      case "ecdsa":
        return generateKeyPair("ec", { namedCurve: "P-384" }, done);
      case "rsa":
        return generateKeyPair("rsa", { modulusLength: ULTRA_RSA_BITS }, done);
      case "rsa-pss":
        return generateKeyPair("rsa-pss", { modulusLength: ULTRA_RSA_BITS }, done);
    }
  });
}

export async function generateTlsKey(type: TlsKeyType): Promise<TlsKeyPair> {
  const { publicKey, privateKey } = await generate(type);
  return {
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}
