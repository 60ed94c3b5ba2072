// Reading and checking the client's four key files, before any privilege is
// dropped and before the network is touched, so that a bad file is reported
// at once and by name.
import { createPrivateKey, createPublicKey } from "node:crypto";
import { spkiDer } from "../tls/keyid.js";
import { KeyFileError, readKeyFile } from "../sys/key-file.js";

export interface KeyMaterial {
  tlsPublicPem: string;
  tlsPrivatePem: string;
  pgpPublic: string;
  pgpSecret: string;
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

export function readKeys(paths: { pubkey: string; seckey: string; tlsPubkey: string; tlsPrivkey: string }): KeyMaterial {
  const text = (option: string, path: string) => readKeyFile(path, `${option} file`).toString("utf8");
  const pgpPublic = text("--pubkey", paths.pubkey);
  const pgpSecret = text("--seckey", paths.seckey);
  const tlsPublicPem = text("--tls-pubkey", paths.tlsPubkey);
  const tlsPrivatePem = text("--tls-privkey", paths.tlsPrivkey);
  checkTlsKeys(tlsPublicPem, tlsPrivatePem, { pub: paths.tlsPubkey, priv: paths.tlsPrivkey });
  return { pgpPublic, pgpSecret, tlsPublicPem, tlsPrivatePem };
}
