// Mandos identifies a client by the SHA-256 of its TLS public key in DER
// SubjectPublicKeyInfo form, as hex (what `certtool --key-id --hash=sha256`
// prints). Uses Node's crypto only, so importing it never loads GnuTLS.
import { createHash, createPublicKey, type KeyObject } from "node:crypto";

/** Uppercase hex SHA-256 of a DER SubjectPublicKeyInfo. */
export function keyIdFromSpki(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex").toUpperCase();
}

/** DER SubjectPublicKeyInfo of a PEM public key (or of the public half of a private key). */
export function spkiDer(pem: string | Buffer | KeyObject): Buffer {
  const key = typeof pem === "object" && "type" in pem && !Buffer.isBuffer(pem) ? pem : createPublicKey(pem);
  return key.export({ type: "spki", format: "der" });
}

export function keyIdFromPem(pem: string | Buffer): string {
  return keyIdFromSpki(spkiDer(pem));
}
