// A fresh Ed25519 TLS key pair in the PEM forms Mandos uses (SPKI, PKCS#8).
import { generateKeyPairSync } from "node:crypto";

export function tlsKeyPair(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return {
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}
