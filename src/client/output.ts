// Writing the password to standard output: synchronously, all of it, no
// newline, then wiping the buffer. Standard output may be a non-blocking
// pipe (its flags belong to whoever made it); when it is full, we sleep in
// poll() until the reader makes room instead of retrying at once.
import { writeSync } from "node:fs";
import { describeErrno, libcFunctions } from "../sys/libc.js";

const POLLOUT = 4;
const EINTR = 4;
const libc = libcFunctions({ poll: "int poll(void *fds, unsigned long nfds, int timeout)" });

/** Block until `fd` is writable, or has an error or hang-up the next write reports. */
function waitWritable(fd: number): void {
  // struct pollfd { int fd; short events; short revents; }
  const pollfd = Buffer.alloc(8);
  pollfd.writeInt32LE(fd, 0);
  pollfd.writeInt16LE(POLLOUT, 4);
  const c = libc();
  while (c.poll(pollfd, 1, -1) < 0) {
    const errno = c.errno();
    if (errno !== EINTR) throw new Error(`cannot wait for standard output: ${describeErrno(errno)}`);
  }
}

export function writePassword(password: Buffer, fd = 1): void {
  try {
    let off = 0;
    while (off < password.length) {
      try {
        off += writeSync(fd, password, off);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
        waitWritable(fd);
      }
    }
  } finally {
    password.fill(0);
  }
}
