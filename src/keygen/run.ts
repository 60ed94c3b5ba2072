// What mandos-keygen does once its command line is understood: make the
// four key files, or print a clients.conf section with an encrypted
// password. Effects (files, terminal, ssh-keyscan) live here; the
// decisions are in options.ts, section.ts and src/pgp/keyspec.ts.
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ReadStream } from "node:tty";
import { encryptSecret, fingerprint, generateKeys, parseExpire, resolveKeySpecs } from "../pgp/index.js";
import { keyIdFromPem } from "../tls/keyid.js";
import type { KeygenPlan, PasswordPlan } from "./options.js";
import { generateTlsKey, resolveTlsKeyType } from "./tlskey.js";
import { KeyFileError, readKeyFile } from "../sys/key-file.js";
import {
  PUBKEY_FILE,
  SECKEY_FILE,
  TLS_PRIVKEY_FILE,
  TLS_PUBKEY_FILE,
  existingKeyFiles,
  writeKeyFile,
} from "./keyfiles.js";
import { formatClientSection, type SshHostKey } from "./section.js";
import { splitPassword } from "../shares/shamir.js";
import { askPasswordOnTerminal, readPassfile, readPasswordTwice } from "./passphrase.js";

export interface Io {
  stdin: NodeJS.ReadStream;
  stdout: { write(text: string): unknown; isTTY?: boolean };
  warn(msg: string): void;
  now(): Date;
  findSshHostKey(): Promise<SshHostKey | undefined>;
}

function checkDirectory(dir: string, writable: boolean): void {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new KeyFileError(`${dir} not a directory`);
  try {
    accessSync(dir, constants.R_OK | constants.X_OK);
  } catch {
    throw new KeyFileError(`Directory ${dir} not readable`);
  }
  if (writable) {
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      throw new KeyFileError(`Directory ${dir} not writeable`);
    }
  }
}

/** "Comment:" armor header of the key files, as Debian's keygen writes it. */
export function armorComment(plan: Pick<KeygenPlan, "name" | "comment" | "email">): string {
  let text = `Mandos client key for ${plan.name}`;
  if (plan.comment) text += ` (${plan.comment})`;
  if (plan.email) text += ` <${plan.email}>`;
  return text;
}

export async function makeKeys(plan: KeygenPlan, io: Io): Promise<void> {
  // Check everything before generating anything or touching a file.
  const specs = resolveKeySpecs(plan);
  const expireSeconds = parseExpire(plan.expire, io.now());
  const tlsType = resolveTlsKeyType(plan.tlsKeyType);
  checkDirectory(plan.dir, true);
  const existing = existingKeyFiles(plan.dir);
  if (existing.length > 0 && !plan.force) {
    throw new KeyFileError(`Refusing to overwrite old key files in ${plan.dir} (${existing.join(", ")}); use --force`);
  }
  const [tls, pgp] = await Promise.all([
    generateTlsKey(tlsType),
    generateKeys({
      name: plan.name,
      ...(plan.email ? { email: plan.email } : {}),
      ...(plan.comment ? { comment: plan.comment } : {}),
      expireSeconds,
      specs,
      armorComment: armorComment(plan),
      date: io.now(),
    }),
  ]);
  writeKeyFile(join(plan.dir, SECKEY_FILE), pgp.privateKeyArmored, plan.force);
  writeKeyFile(join(plan.dir, PUBKEY_FILE), pgp.publicKeyArmored, plan.force);
  writeKeyFile(join(plan.dir, TLS_PRIVKEY_FILE), tls.privatePem, plan.force);
  writeKeyFile(join(plan.dir, TLS_PUBKEY_FILE), tls.publicPem, plan.force);
  if (io.stdout.isTTY) {
    io.stdout.write(
      `Wrote keys to ${plan.dir}\n  OpenPGP fingerprint: ${pgp.fingerprint}\n  TLS key ID: ${keyIdFromPem(tls.publicPem)}\n`,
    );
  }
}

export async function makePasswordSection(plan: PasswordPlan, io: Io): Promise<void> {
  checkDirectory(plan.dir, false);
  const keyFile = (name: string) => readKeyFile(join(plan.dir, name), "key file", "make keys first");
  const pubkey = keyFile(PUBKEY_FILE);
  const seckey = keyFile(SECKEY_FILE);
  const fpr = await fingerprint(pubkey);
  let keyId: string | undefined;
  const tlsPath = join(plan.dir, TLS_PUBKEY_FILE);
  let tlsPem: Buffer | undefined;
  try {
    tlsPem = readFileSync(tlsPath);
  } catch {
    tlsPem = undefined; // no TLS key: a section without key_id, as Debian's
  }
  if (tlsPem) {
    try {
      keyId = keyIdFromPem(tlsPem);
    } catch {
      throw new KeyFileError(`${tlsPath}: not a PEM public key`);
    }
  }
  const ssh = plan.ssh ? await io.findSshHostKey() : undefined;
  const password =
    plan.passfile !== undefined
      ? readPassfile(plan.passfile)
      : io.stdin.isTTY
        ? await askPasswordOnTerminal(io.stdin as ReadStream, io.warn)
        : await readPasswordTwice(io.stdin);
  // One secret, or one per share: each the OpenPGP encryption of its share.
  const secrets: Buffer[] = [];
  try {
    const plaintexts = plan.split ? await splitPassword(password, plan.split.threshold, plan.split.shares) : [password];
    try {
      for (const p of plaintexts) secrets.push(await encryptSecret(p, pubkey, { signingKeyArmored: seckey }));
    } finally {
      for (const p of plaintexts) p.fill(0);
    }
  } finally {
    password.fill(0);
  }
  const sections = secrets.map((secret) =>
    formatClientSection({
      name: plan.name,
      ...(keyId ? { keyId } : {}),
      fingerprint: fpr,
      secret,
      ...(ssh ? { ssh } : {}),
    }),
  );
  if (!plan.split) {
    io.stdout.write(sections[0]!);
    return;
  }
  const { threshold, shares } = plan.split;
  io.stdout.write(
    sections
      .map((s, i) => `# Share ${i + 1} of ${shares} (any ${threshold} unlock): for the clients.conf of server ${i + 1} only\n${s}`)
      .join("\n"),
  );
}
