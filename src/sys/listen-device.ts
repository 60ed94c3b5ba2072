// A listening TCP socket bound to one network interface (SO_BINDTODEVICE),
// which Node's net module cannot ask for. Made through libc, then handed to
// net.Server.listen({ fd }); Mandos's --interface means exactly this.
import { isIP } from "node:net";
import { describeErrno, libcFunctions } from "./libc.js";
import { readSysInterface, type SysInterface } from "./interfaces.js";
import { isLinkLocal } from "./addresses.js";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_BINDTODEVICE = 25;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const IFNAMSIZ = 16;

const c = libcFunctions({
  socket: "int socket(int domain, int type, int protocol)",
  setsockopt: "int setsockopt(int fd, int level, int name, const void *value, uint32_t len)",
  bind: "int bind(int fd, const void *addr, uint32_t len)",
  listen: "int listen(int fd, int backlog)",
  close: "int close(int fd)",
});

export class ListenError extends Error {}

/** struct sockaddr_in6 / sockaddr_in for an address, port and (IPv6) scope. */
export function sockaddr(address: string, port: number, scopeId = 0): Buffer {
  const family = isIP(address);
  if (family === 6) {
    const addr = Buffer.alloc(28);
    addr.writeUInt16LE(AF_INET6, 0);
    addr.writeUInt16BE(port, 2);
    ipv6Bytes(address).copy(addr, 8);
    addr.writeUInt32LE(scopeId, 24);
    return addr;
  }
  if (family === 4) {
    const addr = Buffer.alloc(16);
    addr.writeUInt16LE(AF_INET, 0);
    addr.writeUInt16BE(port, 2);
    Buffer.from(address.split(".").map(Number)).copy(addr, 4);
    return addr;
  }
  throw new ListenError(`not an IP address: ${JSON.stringify(address)}`);
}

function ipv6Bytes(address: string): Buffer {
  let text = address;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split(".").map(Number);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    text = text.slice(0, -v4[1]!.length) + "0:0";
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const parse = (s: string | undefined) => (s ? s.split(":").filter((x) => x !== "").map((x) => parseInt(x, 16)) : []);
  const h = parse(head);
  const r = parse(rest);
  const words = rest === undefined ? h : [...h, ...Array(8 - h.length - r.length).fill(0), ...r];
  if (tail.length) words.splice(6, 2, ...tail);
  const buf = Buffer.alloc(16);
  words.forEach((w, i) => buf.writeUInt16BE(w, i * 2));
  return buf;
}

function interfaceIndex(name: string): number {
  let iface: SysInterface | null = null;
  try {
    iface = readSysInterface(name);
  } catch {
    // Unreadable counts as absent here.
  }
  if (iface === null) throw new ListenError(`no network interface ${JSON.stringify(name)}`);
  return iface.index;
}

/**
 * A non-blocking listening socket on `address`:`port` that only serves
 * `device`. Returns the file descriptor. IPv6 sockets are dual-stack.
 */
export function listenOnDevice(address: string, port: number, device: string, backlog = 511): number {
  if (device.length === 0 || device.length >= IFNAMSIZ || device.includes("/")) {
    throw new ListenError(`bad interface name ${JSON.stringify(device)}`);
  }
  const v6 = isIP(address) === 6;
  const scope = v6 && isLinkLocal(address) ? interfaceIndex(device) : 0;
  const addr = sockaddr(address, port, scope);
  const lib = c();
  const fd = lib.socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new ListenError(`socket: ${describeErrno(lib.errno())}`);
  const step = (what: string, rc: number) => {
    if (rc >= 0) return;
    const errno = lib.errno();
    lib.close(fd);
    throw new ListenError(`${what}: ${describeErrno(errno)}`);
  };
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  step("SO_REUSEADDR", lib.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4));
  const name = Buffer.from(`${device}\0`);
  step(`cannot bind to interface ${device}`, lib.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, name.length));
  if (v6) step("IPV6_V6ONLY", lib.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, Buffer.alloc(4), 4));
  step(`cannot bind to [${address}]:${port}`, lib.bind(fd, addr, addr.length));
  step("listen", lib.listen(fd, backlog));
  return fd;
}
