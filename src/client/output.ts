// Writing the password to standard output: synchronously, all of it, no
// newline, then wiping the buffer.
import { writeSync } from "node:fs";

export function writePassword(password: Buffer, fd = 1): void {
  try {
    let off = 0;
    while (off < password.length) {
      try {
        off += writeSync(fd, password, off);
      } catch (err) {
        // A non-blocking pipe may be momentarily full.
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      }
    }
  } finally {
    password.fill(0);
  }
}
