// The FFI boundary: the only module that names GnuTLS functions. Everything
// here is synchronous and pointer-level; session.ts turns it into an
// event-loop-driven TLS connection. Facts that shaped this file (persistent
// callbacks, errno for EAGAIN, exceptions in callbacks) are in RIGS.md.
import { loadKoffi, type Koffi } from "../sys/koffi.js";

export const GNUTLS_SERVER = 1;
export const GNUTLS_CLIENT = 1 << 1;
export const GNUTLS_NONBLOCK = 1 << 3;
export const GNUTLS_NO_SIGNAL = 1 << 6;
export const GNUTLS_ENABLE_RAWPK = 1 << 18;
export const GNUTLS_CRD_CERTIFICATE = 1;
export const GNUTLS_CERT_IGNORE = 0;
export const GNUTLS_SHUT_WR = 1;
export const GNUTLS_X509_FMT_PEM = 1;
export const GNUTLS_CRT_X509 = 1;
export const GNUTLS_CRT_RAWPK = 3;
export const GNUTLS_CTYPE_PEERS = 3;

export const E_AGAIN = -28;
export const E_INTERRUPTED = -52;
export const E_PREMATURE_TERMINATION = -110;

const EAGAIN = 11;
const EIO = 5;
const EPIPE = 32;
const MIN_VERSION = "3.6.6";

/** An opaque C pointer that only this module dereferences. */
export type Pointer = bigint & { readonly __brand: "gnutls pointer" };

/** Transport callbacks, routed by the integer each session registers as its transport pointer. */
export interface Transport {
  /** Bytes GnuTLS wants sent; return false if the transport is gone. */
  push(data: Buffer): boolean;
  /** Fill `into`; return bytes copied, 0 for end of stream, or null when nothing is buffered yet. */
  pull(into: Uint8Array): number | null;
}

interface Api {
  strerror(code: number): string;
  errorIsFatal(code: number): boolean;
  certAllocate(out: [Pointer | null]): number;
  certFree(cred: Pointer): void;
  setRawpkKeyMem(cred: Pointer, spki: Datum, pkey: Datum): number;
  init(out: [Pointer | null], flags: number): number;
  deinit(session: Pointer): void;
  prioritySetDirect(session: Pointer, priority: string, errPos: [unknown]): number;
  priorityInit(cache: [Pointer | null], priority: string, errPos: [unknown]): number;
  priorityDeinit(cache: Pointer): void;
  credentialsSet(session: Pointer, type: number, cred: Pointer): number;
  serverSetRequest(session: Pointer, req: number): void;
  setPtr(session: Pointer, ptr: bigint): void;
  setPush(session: Pointer, fn: bigint): void;
  setPull(session: Pointer, fn: bigint): void;
  setPullTimeout(session: Pointer, fn: bigint): void;
  setErrno(session: Pointer, err: number): void;
  handshake(session: Pointer): number;
  recordSend(session: Pointer, data: Buffer, size: number): number;
  recordRecv(session: Pointer, data: Buffer, size: number): number;
  bye(session: Pointer, how: number): number;
  certTypeGet2(session: Pointer, target: number): number;
  getPeers(session: Pointer, size: [number]): Pointer | null;
  push: bigint;
  pull: bigint;
  pullTimeout: bigint;
}

interface Datum {
  data: Buffer;
  size: number;
}

const transports = new Map<number, Transport>();
// Counted for leak tests (see tlsResources): sessions between gnutls_init
// and gnutls_deinit, and callbacks registered with koffi.
let liveSessions = 0;
let registeredCallbacks = 0;
// The session currently inside a GnuTLS call; callbacks set errno on it.
let current: Pointer | null = null;
let api: Api | null = null;

export class GnuTlsUnavailable extends Error {}

/** Load libgnutls once; throws GnuTlsUnavailable with a one-line reason. */
export function gnutls(): Api {
  if (api) return api;
  const koffi = loadKoffi();
  let lib: ReturnType<Koffi["load"]>;
  try {
    lib = koffi.load("libgnutls.so.30");
  } catch (err) {
    throw new GnuTlsUnavailable(
      `cannot load libgnutls.so.30 (GnuTLS >= ${MIN_VERSION} is required; Debian package libgnutls30): ${(err as Error).message}`,
    );
  }
  const checkVersion = lib.func("const char *gnutls_check_version(const char *req)");
  if (checkVersion(MIN_VERSION) === null) {
    throw new GnuTlsUnavailable(
      `GnuTLS ${String(checkVersion(null))} is too old: raw public keys need ${MIN_VERSION} or later`,
    );
  }
  const DatumT = koffi.struct("gnutls_datum_t", { data: "uint8_t *", size: "unsigned int" });
  const PushFn = koffi.proto("intptr_t gnutls_push_func(void *ptr, const void *data, size_t len)");
  const PullFn = koffi.proto("intptr_t gnutls_pull_func(void *ptr, void *data, size_t len)");
  const PullTimeoutFn = koffi.proto("int gnutls_pull_timeout_func(void *ptr, unsigned int ms)");
  const strerror = lib.func("const char *gnutls_strerror(int error)");
  const isFatal = lib.func("int gnutls_error_is_fatal(int error)");
  const setErrno = lib.func("void gnutls_transport_set_errno(void *session, int err)");

  // Callbacks are registered once per process (registrations are a scarce,
  // persistent resource) and find their session through the transport pointer.
  const register = (callback: Function, type: ReturnType<typeof koffi.pointer>): bigint => {
    registeredCallbacks++;
    return koffi.register(callback, type);
  };
  const push = register((ptr: bigint | null, data: bigint, len: number | bigint) => {
    const n = Number(len);
    try {
      const t = transports.get(Number(ptr ?? 0));
      // GnuTLS reuses its buffer: copy before handing it to the socket.
      if (t && t.push(Buffer.from(new Uint8Array(koffi.view(data, n))))) return n;
      if (current !== null) setErrno(current, EPIPE);
      return -1;
    } catch {
      if (current !== null) setErrno(current, EIO);
      return -1;
    }
  }, koffi.pointer(PushFn));
  const pull = register((ptr: bigint | null, data: bigint, len: number | bigint) => {
    try {
      const t = transports.get(Number(ptr ?? 0));
      if (!t) {
        if (current !== null) setErrno(current, EIO);
        return -1;
      }
      const got = t.pull(new Uint8Array(koffi.view(data, Number(len))));
      if (got !== null) return got;
      if (current !== null) setErrno(current, EAGAIN);
      return -1;
    } catch {
      if (current !== null) setErrno(current, EIO);
      return -1;
    }
  }, koffi.pointer(PullFn));
  // Never called for non-blocking sessions, but the default would select()
  // on our transport pointer as if it were a file descriptor.
  const pullTimeout = register(() => 0, koffi.pointer(PullTimeoutFn));

  const getPeers = lib.func("const gnutls_datum_t *gnutls_certificate_get_peers(void *session, _Out_ unsigned int *size)");
  const init = lib.func("int gnutls_init(_Out_ void **session, unsigned int flags)");
  const deinit = lib.func("void gnutls_deinit(void *session)");
  const rawpkMem = lib.func(
    "int gnutls_certificate_set_rawpk_key_mem(void *cred, const gnutls_datum_t *spki, const gnutls_datum_t *pkey, int format, const char *pass, unsigned int key_usage, const char **names, unsigned int names_length, unsigned int flags)",
  );
  api = {
    strerror: (code) => String(strerror(code)),
    errorIsFatal: (code) => isFatal(code) !== 0,
    certAllocate: lib.func("int gnutls_certificate_allocate_credentials(_Out_ void **cred)"),
    certFree: lib.func("void gnutls_certificate_free_credentials(void *cred)"),
    setRawpkKeyMem: (cred, spki, pkey) => rawpkMem(cred, spki, pkey, GNUTLS_X509_FMT_PEM, null, 0, null, 0, 0),
    init: (out, flags) => {
      const rc = init(out, flags) as number;
      if (rc >= 0) liveSessions++;
      return rc;
    },
    deinit: (session) => {
      deinit(session);
      liveSessions--;
    },
    prioritySetDirect: lib.func("int gnutls_priority_set_direct(void *session, const char *priorities, _Out_ const char **err_pos)"),
    priorityInit: lib.func("int gnutls_priority_init(_Out_ void **cache, const char *priorities, _Out_ const char **err_pos)"),
    priorityDeinit: lib.func("void gnutls_priority_deinit(void *cache)"),
    credentialsSet: lib.func("int gnutls_credentials_set(void *session, int type, void *cred)"),
    serverSetRequest: lib.func("void gnutls_certificate_server_set_request(void *session, int req)"),
    setPtr: lib.func("void gnutls_transport_set_ptr(void *session, void *ptr)"),
    setPush: lib.func("void gnutls_transport_set_push_function(void *session, gnutls_push_func *fn)"),
    setPull: lib.func("void gnutls_transport_set_pull_function(void *session, gnutls_pull_func *fn)"),
    setPullTimeout: lib.func("void gnutls_transport_set_pull_timeout_function(void *session, gnutls_pull_timeout_func *fn)"),
    setErrno,
    handshake: lib.func("int gnutls_handshake(void *session)"),
    recordSend: lib.func("intptr_t gnutls_record_send(void *session, const void *data, size_t size)"),
    recordRecv: lib.func("intptr_t gnutls_record_recv(void *session, void *data, size_t size)"),
    bye: lib.func("int gnutls_bye(void *session, int how)"),
    certTypeGet2: lib.func("int gnutls_certificate_type_get2(void *session, int target)"),
    getPeers: (session, size) => {
      const out: [number] = [0];
      const ptr = getPeers(session, out) as Pointer | null;
      size[0] = out[0];
      return ptr;
    },
    push,
    pull,
    pullTimeout,
  };
  decodeDatum = (ptr) => {
    const d = koffi.decode(ptr, DatumT) as { data: bigint; size: number };
    return Buffer.from(new Uint8Array(koffi.view(d.data, d.size)));
  };
  return api;
}

let decodeDatum: (ptr: Pointer) => Buffer = () => {
  throw new Error("GnuTLS not loaded");
};

/** Copy the first peer certificate (for raw keys: the DER SubjectPublicKeyInfo). */
export function peerCertificate(session: Pointer): Buffer | null {
  const size: [number] = [0];
  const ptr = gnutls().getPeers(session, size);
  if (ptr === null || size[0] < 1) return null;
  return decodeDatum(ptr);
}

/** Live GnuTLS sessions, registered transports and koffi callbacks: they must return to where they were. */
export function tlsResources(): { sessions: number; transports: number; callbacks: number } {
  return { sessions: liveSessions, transports: transports.size, callbacks: registeredCallbacks };
}

export function registerTransport(id: number, t: Transport): void {
  transports.set(id, t);
}

export function unregisterTransport(id: number): void {
  transports.delete(id);
}

/** Run one GnuTLS call with `session` marked current, so callbacks can set its errno. */
export function withSession<T>(session: Pointer, fn: () => T): T {
  const outer = current;
  current = session;
  try {
    return fn();
  } finally {
    current = outer;
  }
}

export class GnuTlsError extends Error {
  constructor(
    readonly what: string,
    readonly code: number,
  ) {
    super(`${what}: ${gnutls().strerror(code)}`);
  }
}

/** Throw a GnuTlsError for a negative return code. */
export function check(what: string, rc: number): number {
  if (rc < 0) throw new GnuTlsError(what, rc);
  return rc;
}
