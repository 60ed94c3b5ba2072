// AF_UNIX SOCK_DGRAM through libc (koffi): Node's dgram module only knows
// UDP and net.connect() on a datagram socket fails with EPROTOTYPE, yet
// both systemd's password agent protocol and sd_notify() need datagrams.
// Calls are synchronous and non-blocking (MSG_DONTWAIT): a datagram to a
// local socket either fits in the peer's queue at once or fails with EAGAIN.
import { endianness } from "node:os";
import { describeErrno, errnoCode, libcFunctions } from "./libc.js";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const POLLIN = 0x1;
/** sizeof(struct sockaddr_un.sun_path) on Linux. */
const SUN_PATH_MAX = 108;

const c = libcFunctions({
  socket: "int socket(int domain, int type, int protocol)",
  sendto: "intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)",
  bind: "int bind(int fd, const void *addr, uint32_t addrlen)",
  recv: "intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)",
  poll: "int poll(_Inout_ void *fds, uint64_t nfds, int timeout)",
  close: "int close(int fd)",
});

/**
 * Load koffi and bind the libc calls (10-20 ms), once. Importing this
 * module costs nothing more; callers on a critical path (a password agent
 * waiting for its client) can call this early to take the cost off it.
 */
export function loadUnixDgram(): void {
  c();
}

/** A failed system call, with errno's symbolic name and the socket it concerned. */
export class UnixDgramError extends Error {
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
    readonly path: string,
  ) {
    super(`${syscall} ${path}: ${describeErrno(errno)}`);
    this.code = errnoCode(errno);
    this.name = "UnixDgramError";
  }
}

function fail(syscall: string, path: string, errno = c().errno()): never {
  throw new UnixDgramError(syscall, errno, path);
}

/**
 * struct sockaddr_un for a path; a leading "@" names an abstract socket
 * (as NOTIFY_SOCKET may), which has no terminating NUL.
 */
export function sockaddrUn(socketPath: string): Buffer {
  const abstract = socketPath.startsWith("@");
  const name = Buffer.from(abstract ? socketPath.slice(1) : socketPath, "utf8");
  if (!abstract && (socketPath === "" || name.includes(0))) {
    throw new UnixDgramError("sockaddr", 22 /* EINVAL */, socketPath);
  }
  // Room for the terminating NUL of a path name; none for an abstract name.
  const used = abstract ? 1 + name.length : name.length + 1;
  if (used > SUN_PATH_MAX) throw new UnixDgramError("sockaddr", 36 /* ENAMETOOLONG */, socketPath);
  const addr = Buffer.alloc(2 + used);
  if (endianness() === "LE") addr.writeUInt16LE(AF_UNIX, 0);
  else addr.writeUInt16BE(AF_UNIX, 0);
  name.copy(addr, abstract ? 3 : 2);
  return addr;
}

function openSocket(path: string): number {
  const fd = c().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket", path);
  return fd;
}

/**
 * Send `data` as one datagram to the AF_UNIX socket at `socketPath`.
 * The buffer is handed to the kernel in place (no copy is made here), so a
 * caller holding a secret can wipe it right after. Throws UnixDgramError.
 */
export function sendDatagram(socketPath: string, data: Buffer): void {
  const addr = sockaddrUn(socketPath);
  const fd = openSocket(socketPath);
  try {
    const n = c().sendto(fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL, addr, addr.length);
    if (n < 0) fail("sendto", socketPath);
    // A datagram is all or nothing; a short count would be a kernel oddity.
    if (n !== data.length) throw new UnixDgramError("sendto", 5 /* EIO */, socketPath);
  } finally {
    c().close(fd);
  }
}

/** A bound datagram socket: for tests, benchmarks and tools that wait for one message. */
export interface DatagramReceiver {
  readonly path: string;
  /**
   * Wait up to timeoutMs for one datagram (blocks the calling thread: not
   * for daemons). Returns null on timeout; a longer datagram is truncated.
   */
  receive(timeoutMs: number, maxLength?: number): Buffer | null;
  close(): void;
}

/** Bind a new datagram socket at `socketPath` (the file must not exist). */
export function bindDatagram(socketPath: string): DatagramReceiver {
  const addr = sockaddrUn(socketPath);
  const fd = openSocket(socketPath);
  if ((c().bind(fd, addr, addr.length)) < 0) {
    const errno = c().errno();
    c().close(fd);
    fail("bind", socketPath, errno);
  }
  let open = true;
  return {
    path: socketPath,
    receive(timeoutMs, maxLength = 65536) {
      if (!open) throw new UnixDgramError("recv", 9 /* EBADF */, socketPath);
      // struct pollfd { int fd; short events; short revents; }
      const pfd = Buffer.alloc(8);
      pfd.writeInt32LE(fd, 0);
      pfd.writeInt16LE(POLLIN, 4);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = Math.max(0, deadline - Date.now());
        const r = c().poll(pfd, 1, Math.min(left, 2 ** 31 - 1));
        if (r < 0) {
          if (c().errno() === 4 /* EINTR */) continue;
          fail("poll", socketPath);
        }
        if (r === 0) return null;
        break;
      }
      const buf = Buffer.alloc(maxLength);
      const n = c().recv(fd, buf, buf.length, MSG_DONTWAIT);
      if (n < 0) fail("recv", socketPath);
      return buf.subarray(0, n);
    },
    close() {
      if (open) c().close(fd);
      open = false;
    },
  };
}
