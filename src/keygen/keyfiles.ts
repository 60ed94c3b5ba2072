// Writing the four key files. Every file is created with mode 0600 from the
// start (never chmod-ed afterwards: a secret must not be readable even
// briefly). An existing file is only replaced with --force, and then kept
// as FILE.~N~, the numbered backup Debian's keygen leaves (cp --backup).
import { closeSync, existsSync, openSync, readdirSync, renameSync, writeSync, fsyncSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { KeyFileError } from "../sys/key-file.js";

export const PUBKEY_FILE = "pubkey.txt";
export const SECKEY_FILE = "seckey.txt";
export const TLS_PUBKEY_FILE = "tls-pubkey.pem";
export const TLS_PRIVKEY_FILE = "tls-privkey.pem";
export const KEY_FILES = [SECKEY_FILE, PUBKEY_FILE, TLS_PRIVKEY_FILE, TLS_PUBKEY_FILE] as const;

/** Key files that already exist in `dir`. */
export function existingKeyFiles(dir: string): string[] {
  return KEY_FILES.filter((f) => existsSync(join(dir, f)));
}

/** Next free numbered backup name, as `cp --backup=numbered` picks it. */
export function backupName(path: string, siblings: string[]): string {
  const base = basename(path);
  let highest = 0;
  for (const name of siblings) {
    if (!name.startsWith(base + ".~") || !name.endsWith("~")) continue;
    const n = Number(name.slice(base.length + 2, -1));
    if (Number.isInteger(n) && n > highest) highest = n;
  }
  return join(dirname(path), `${base}.~${highest + 1}~`);
}

/** Create (or, with `replace`, replace after a backup) one 0600 file. */
export function writeKeyFile(path: string, content: string | Buffer, replace: boolean): void {
  if (existsSync(path)) {
    if (!replace) throw new KeyFileError(`Refusing to overwrite old key file ${path}; use --force`);
    renameSync(path, backupName(path, readdirSync(dirname(path))));
  }
  // "wx": O_CREAT|O_EXCL, so a file (or symlink) appearing meanwhile is an
  // error rather than something we write through.
  const fd = openSync(path, "wx", 0o600);
  try {
    const data = typeof content === "string" ? Buffer.from(content) : content;
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
