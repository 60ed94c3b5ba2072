// A TLS connection over an ordinary non-blocking net.Socket, driven by the
// event loop: GnuTLS calls return E_AGAIN when the pull callback has nothing
// buffered, and are re-run when the socket delivers more bytes.
import type { Socket } from "node:net";
import {
  GNUTLS_CERT_IGNORE,
  GNUTLS_CLIENT,
  GNUTLS_CRD_CERTIFICATE,
  GNUTLS_CRT_RAWPK,
  GNUTLS_CRT_X509,
  GNUTLS_CTYPE_PEERS,
  GNUTLS_ENABLE_RAWPK,
  GNUTLS_NONBLOCK,
  GNUTLS_NO_SIGNAL,
  GNUTLS_SERVER,
  GNUTLS_SHUT_WR,
  E_AGAIN,
  E_INTERRUPTED,
  E_PREMATURE_TERMINATION,
  GnuTlsError,
  check,
  gnutls,
  peerCertificate,
  registerTransport,
  unregisterTransport,
  withSession,
  type Pointer,
} from "./gnutls.js";

/** Mandos 1.8's default priority string. */
export const DEFAULT_PRIORITY =
  "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA";

/** Bytes we buffer from a peer before GnuTLS consumes them; more is abuse. */
const MAX_INBOUND = 256 * 1024;
/** Non-fatal results (warning alerts, retries) in a row before we give up on a peer. */
const MAX_NONFATAL_RETRIES = 16;

export class TlsError extends Error {}

const badPriority = (priority: string, rc: number) => new TlsError(`bad priority string ${JSON.stringify(priority)}: ${gnutls().strerror(rc)}`);

/**
 * Throws a one-line TlsError unless GnuTLS accepts `priority`: checked
 * before a server starts or reloads with it, since a session would only
 * find out at each handshake.
 */
export function checkPriority(priority: string): void {
  const api = gnutls();
  const cache: [Pointer | null] = [null];
  const rc = api.priorityInit(cache, priority, [null]);
  if (rc < 0) throw badPriority(priority, rc);
  api.priorityDeinit(cache[0]!);
}

/**
 * Certificate credentials. `rawKey` holds our own raw public key (the Mandos
 * client presents one); `anonymous` holds none (the Mandos server only reads
 * its peer's). One credentials object serves any number of sessions.
 */
export class Credentials {
  private constructor(private handle: Pointer | null) {}

  static rawKey(publicKeyPem: string | Buffer, privateKeyPem: string | Buffer): Credentials {
    const api = gnutls();
    const cred = allocate();
    const pub = Buffer.from(publicKeyPem);
    const priv = Buffer.from(privateKeyPem);
    try {
      const rc = api.setRawpkKeyMem(cred, { data: pub, size: pub.length }, { data: priv, size: priv.length });
      if (rc < 0) {
        api.certFree(cred);
        throw new TlsError(`cannot use TLS key pair: ${api.strerror(rc)}`);
      }
    } finally {
      priv.fill(0);
    }
    return new Credentials(cred);
  }

  static anonymous(): Credentials {
    return new Credentials(allocate());
  }

  get pointer(): Pointer {
    if (this.handle === null) throw new TlsError("credentials already released");
    return this.handle;
  }

  dispose(): void {
    if (this.handle !== null) gnutls().certFree(this.handle);
    this.handle = null;
  }
}

function allocate(): Pointer {
  const out: [Pointer | null] = [null];
  check("gnutls_certificate_allocate_credentials", gnutls().certAllocate(out));
  return out[0]!;
}

export interface ConnectionOptions {
  priority?: string;
  /** Milliseconds for the whole handshake. */
  handshakeTimeoutMs?: number;
  /** Bytes already read from the socket that belong to TLS. */
  initialData?: Buffer;
}

export type PeerKeyType = "rawpk" | "x509" | "none";

let nextId = 1;

/**
 * One TLS session on one socket. Create with `TlsConnection.accept` (we are
 * the TLS server: the Mandos client's side) or `TlsConnection.connect` (TLS
 * client: the Mandos server's side). Always ends in `destroy()`, which is
 * idempotent and releases the GnuTLS session and the socket.
 */
export class TlsConnection {
  private readonly id = nextId++;
  private session: Pointer | null;
  private inbound: Buffer[] = [];
  private inboundBytes = 0;
  private eof = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  private constructor(
    readonly socket: Socket,
    flags: number,
    credentials: Credentials,
    opts: ConnectionOptions,
  ) {
    const priority = opts.priority ?? DEFAULT_PRIORITY;
    const api = gnutls();
    const out: [Pointer | null] = [null];
    check("gnutls_init", api.init(out, flags | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL | GNUTLS_ENABLE_RAWPK));
    const session = out[0]!;
    this.session = session;
    try {
      const errPos: [unknown] = [null];
      const rc = api.prioritySetDirect(session, priority, errPos);
      if (rc < 0) throw badPriority(priority, rc);
      check("gnutls_credentials_set", api.credentialsSet(session, GNUTLS_CRD_CERTIFICATE, credentials.pointer));
      if (flags & GNUTLS_SERVER) api.serverSetRequest(session, GNUTLS_CERT_IGNORE);
      api.setPtr(session, BigInt(this.id));
      api.setPush(session, api.push);
      api.setPull(session, api.pull);
      api.setPullTimeout(session, api.pullTimeout);
    } catch (err) {
      this.destroy();
      throw err;
    }
    registerTransport(this.id, {
      push: (data) => {
        if (this.socket.destroyed || !this.socket.writable) return false;
        this.socket.write(data);
        return true;
      },
      pull: (into) => this.pull(into),
    });
    if (opts.initialData?.length) {
      this.inbound.push(opts.initialData);
      this.inboundBytes = opts.initialData.length;
    }
    socket.on("data", (chunk: Buffer) => {
      if (this.session === null) return;
      if (this.inboundBytes + chunk.length > MAX_INBOUND) {
        // Also while nothing reads (a server awaiting approval, a client
        // decrypting): stop taking bytes at once, memory stays bounded.
        chunk.fill(0);
        this.fail(new TlsError("peer sent too much data"));
        this.destroy();
        return;
      }
      this.inbound.push(chunk);
      this.inboundBytes += chunk.length;
      this.poke();
    });
    socket.on("end", () => {
      this.eof = true;
      this.poke();
    });
    socket.on("close", () => {
      this.eof = true;
      this.poke();
    });
    socket.on("error", (err) => this.fail(new TlsError(`connection error: ${err.message}`)));
    // Handshake messages are small and ping-pong: Nagle plus delayed ACKs
    // would add ~40 ms per round trip.
    socket.setNoDelay(true);
    socket.resume();
  }

  /** TLS server role, presenting `credentials`' raw public key. */
  static async accept(socket: Socket, credentials: Credentials, opts: ConnectionOptions = {}): Promise<TlsConnection> {
    const conn = new TlsConnection(socket, GNUTLS_SERVER, credentials, opts);
    await conn.handshake(opts.handshakeTimeoutMs ?? 10_000);
    return conn;
  }

  /** TLS client role, reading the peer's raw public key afterwards. */
  static async connect(socket: Socket, credentials: Credentials, opts: ConnectionOptions = {}): Promise<TlsConnection> {
    const conn = new TlsConnection(socket, GNUTLS_CLIENT, credentials, opts);
    await conn.handshake(opts.handshakeTimeoutMs ?? 10_000);
    return conn;
  }

  /** The kind of certificate the peer presented. */
  peerKeyType(): PeerKeyType {
    const type = gnutls().certTypeGet2(this.live(), GNUTLS_CTYPE_PEERS);
    if (type === GNUTLS_CRT_RAWPK) return "rawpk";
    if (type === GNUTLS_CRT_X509) return "x509";
    return "none";
  }

  /** The peer's raw public key as DER SubjectPublicKeyInfo, if it sent one. */
  peerPublicKey(): Buffer | null {
    if (this.peerKeyType() !== "rawpk") return null;
    return peerCertificate(this.live());
  }

  /** Send all of `data` as TLS records. */
  write(data: Uint8Array): void {
    const session = this.live();
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let offset = 0;
    let retries = 0;
    while (offset < buf.length) {
      const rest = buf.subarray(offset);
      const rc = this.call(() => gnutls().recordSend(session, rest, rest.length));
      if (rc === E_AGAIN || rc === E_INTERRUPTED) {
        // Our push never blocks, so this is rare; never spin on it.
        if (++retries > MAX_NONFATAL_RETRIES) throw new TlsError("cannot send: GnuTLS keeps asking to try again");
        continue;
      }
      offset += check("gnutls_record_send", rc);
    }
  }

  /**
   * Read application data until the peer closes the TLS session, at most
   * `maxBytes`, within `timeoutMs`. Callers own (and wipe) the result.
   */
  async readAll(maxBytes: number, timeoutMs: number): Promise<Buffer> {
    const chunk = Buffer.alloc(16 * 1024);
    const parts: Buffer[] = [];
    let total = 0;
    const wipe = () => {
      chunk.fill(0);
      for (const p of parts) p.fill(0);
    };
    try {
      await this.drive(timeoutMs, "reading", () => {
        const rc = gnutls().recordRecv(this.live(), chunk, chunk.length);
        if (rc > 0) {
          total += rc;
          if (total > maxBytes) throw new TlsError(`peer sent more than ${maxBytes} bytes`);
          parts.push(Buffer.from(chunk.subarray(0, rc)));
          return "again";
        }
        if (rc === 0) return "done";
        if (rc === E_PREMATURE_TERMINATION) throw new TlsError("peer closed the connection without ending TLS");
        return rc;
      });
      const result = Buffer.concat(parts, total);
      wipe();
      return result;
    } catch (err) {
      wipe();
      throw err;
    }
  }

  /** Send close_notify and end the socket; then release everything. */
  close(): void {
    if (this.session !== null && !this.socket.destroyed) {
      const session = this.session;
      this.call(() => gnutls().bye(session, GNUTLS_SHUT_WR));
      this.socket.end();
    }
    this.release();
  }

  /** Release the GnuTLS session and destroy the socket. Idempotent. */
  destroy(): void {
    this.release();
    this.socket.destroy();
  }

  private release(): void {
    unregisterTransport(this.id);
    if (this.session !== null) gnutls().deinit(this.session);
    this.session = null;
    for (const b of this.inbound) b.fill(0);
    this.inbound = [];
    this.inboundBytes = 0;
  }

  private handshake(timeoutMs: number): Promise<void> {
    return this.drive(timeoutMs, "handshake", () => {
      const rc = gnutls().handshake(this.live());
      return rc === 0 ? "done" : rc;
    }).catch((err: unknown) => {
      this.destroy();
      throw err;
    });
  }

  /**
   * Repeat `step` until it reports done: re-run at once on "again", after
   * more input on E_AGAIN/E_INTERRUPTED (or a non-fatal alert), fail on a
   * fatal error, on the peer going away, or when `timeoutMs` passes.
   */
  private drive(timeoutMs: number, what: string, step: () => "done" | "again" | number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new TlsError(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
      const finish = (err: Error | null) => {
        clearTimeout(timer);
        this.wake = null;
        if (err) reject(err);
        else resolve();
      };
      let nonFatal = 0;
      const attempt = () => {
        try {
          for (;;) {
            if (this.failure) return finish(this.failure);
            const r = this.call(step);
            if (r === "done") return finish(null);
            if (r === "again") {
              nonFatal = 0;
              continue;
            }
            if (r === E_AGAIN || r === E_INTERRUPTED) {
              if (this.eof && this.inboundBytes === 0) {
                return finish(new TlsError(`peer closed the connection during ${what}`));
              }
              this.wake = attempt;
              return;
            }
            if (gnutls().errorIsFatal(r) || ++nonFatal > MAX_NONFATAL_RETRIES) return finish(new GnuTlsError(what, r));
          }
        } catch (err) {
          finish(err instanceof Error ? err : new TlsError(String(err)));
        }
      };
      attempt();
    });
  }

  private pull(into: Uint8Array): number | null {
    if (this.inbound.length === 0) return this.eof ? 0 : null;
    let copied = 0;
    while (copied < into.length && this.inbound.length > 0) {
      const head = this.inbound[0]!;
      const n = Math.min(head.length, into.length - copied);
      into.set(head.subarray(0, n), copied);
      copied += n;
      if (n === head.length) this.inbound.shift();
      else this.inbound[0] = head.subarray(n);
    }
    this.inboundBytes -= copied;
    return copied;
  }

  private call<T>(fn: () => T): T {
    return withSession(this.live(), fn);
  }

  private live(): Pointer {
    if (this.session === null) throw new TlsError("TLS session already closed");
    return this.session;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.poke();
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
