// Reading one key file (the client's four, mandos-keygen's when it makes a
// password section): all of it, bounded, with a one-line error that names
// the file and never its content.
import { closeSync, openSync, readSync } from "node:fs";

export class KeyFileError extends Error {}

/** Far more than any key Mandos makes (an armored RSA-4096 secret key is about 7 KiB). */
export const MAX_KEY_FILE_BYTES = 1 << 20;

const reasons: Record<string, string> = { ENOENT: "no such file", EACCES: "permission denied" };

/**
 * The whole file at `path`; `what` names it in errors ("--pubkey file",
 * "key file"), `missingHint` is added when it does not exist.
 */
export function readKeyFile(path: string, what: string, missingHint?: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    const hint = code === "ENOENT" && missingHint ? ` (${missingHint})` : "";
    throw new KeyFileError(`cannot read ${what} ${path}: ${reasons[code] ?? code}${hint}`);
  }
  // Read up to one byte past the limit: the size of a special file proves nothing.
  const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
  try {
    let length = 0;
    while (length < buf.length) {
      const n = readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length === 0) throw new KeyFileError(`${what} ${path} is empty`);
    if (length > MAX_KEY_FILE_BYTES) throw new KeyFileError(`${what} ${path} is too large (over ${MAX_KEY_FILE_BYTES} bytes)`);
    return Buffer.from(buf.subarray(0, length));
  } catch (err) {
    if (err instanceof KeyFileError) throw err;
    throw new KeyFileError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  } finally {
    buf.fill(0); // it may hold a secret key
    closeSync(fd);
  }
}
