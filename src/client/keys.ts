// Reading and checking the client's four key files, before any privilege is
// dropped and before the network is touched, so that a bad file is reported
// at once and by name.
import { readFile } from "node:fs/promises";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { spkiDer } from "../tls/keyid.js";

export interface KeyMaterial {
  tlsPublicPem: string;
  tlsPrivatePem: string;
  pgpPublic: string;
  pgpSecret: string;
}

export class KeyFileError extends Error {}

async function readKeyFile(option: string, path: string, maxBytes = 1 << 20): Promise<string> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code;
    throw new KeyFileError(`cannot read ${option} file ${path}: ${why}`);
  }
  if (data.length === 0) throw new KeyFileError(`${option} file ${path} is empty`);
  if (data.length > maxBytes) throw new KeyFileError(`${option} file ${path} is too large`);
  return data.toString("utf8");
}

/** The TLS key pair must parse and its halves must belong together. */
export function checkTlsKeys(publicPem: string, privatePem: string, names: { pub: string; priv: string }): void {
  let pub: Buffer;
  let fromPriv: Buffer;
  try {
    pub = spkiDer(createPublicKey(publicPem));
  } catch {
    throw new KeyFileError(`--tls-pubkey file ${names.pub} is not a PEM public key`);
  }
  try {
    const priv = createPrivateKey(privatePem);
    fromPriv = spkiDer(createPublicKey(priv));
  } catch {
    throw new KeyFileError(`--tls-privkey file ${names.priv} is not an unencrypted PEM private key`);
  }
  if (!pub.equals(fromPriv)) {
    throw new KeyFileError(`--tls-pubkey ${names.pub} and --tls-privkey ${names.priv} are not one key pair`);
  }
}

export async function readKeys(paths: {
  pubkey: string;
  seckey: string;
  tlsPubkey: string;
  tlsPrivkey: string;
}): Promise<KeyMaterial> {
  const [pgpPublic, pgpSecret, tlsPublicPem, tlsPrivatePem] = await Promise.all([
    readKeyFile("--pubkey", paths.pubkey),
    readKeyFile("--seckey", paths.seckey),
    readKeyFile("--tls-pubkey", paths.tlsPubkey),
    readKeyFile("--tls-privkey", paths.tlsPrivkey),
  ]);
  checkTlsKeys(tlsPublicPem, tlsPrivatePem, { pub: paths.tlsPubkey, priv: paths.tlsPrivkey });
  return { pgpPublic, pgpSecret, tlsPublicPem, tlsPrivatePem };
}
