// One client connection on the server: the protocol line, TLS (we are the
// TLS client and read the peer's raw public key), identification by key id,
// then whatever the handler decides: the secret, or nothing.
import type { Socket } from "node:net";
import { ProtocolError, readVersionLine } from "../protocol/version-line.js";
import { TlsConnection, type Credentials } from "../tls/session.js";
import { keyIdFromSpki } from "../tls/keyid.js";
import { errorMessage, type Logger } from "../cli/log.js";
import { report, stopwatch, type ConnectionOutcome, type RefusalReason, type ServerEvents } from "./events.js";

export interface SecretRequest {
  /** Uppercase hex SHA-256 of the peer's DER SubjectPublicKeyInfo. */
  keyId: string;
  address: string;
  /** Fires when the peer goes away while we decide (e.g. waiting for approval). */
  signal: AbortSignal;
}

export interface SecretGrant {
  /** A copy for this connection, which wipes it when done (sent or not). */
  secret: Buffer;
  /** Called once the secret has been handed to TLS and the session ended (bookkeeping). */
  sent(): void;
}

export interface SecretRequestHandler {
  requestSecret(req: SecretRequest): Promise<SecretGrant | null>;
}

export interface ConnectionSettings {
  credentials: Credentials;
  priority: string;
  handler: SecretRequestHandler;
  log: Logger;
  lineTimeoutMs: number;
  handshakeTimeoutMs: number;
  events: ServerEvents;
}

type Phase = "line" | "handshake" | "request" | "answer";

/** Why a connection that failed in `phase` with `err` counts as refused, or null if it does not. */
export function refusalOf(phase: Phase, err: unknown): RefusalReason | null {
  if (phase === "line") return err instanceof ProtocolError && err.badLine ? "bad_version" : null;
  return phase === "handshake" ? "handshake_failure" : null;
}

export function peerName(socket: Socket): string {
  const addr = socket.remoteAddress ?? "unknown";
  return addr.includes(":") ? `[${addr}]:${socket.remotePort}` : `${addr}:${socket.remotePort}`;
}

/** Serve one connection; never throws, always releases the socket. */
export async function handleConnection(socket: Socket, s: ConnectionSettings): Promise<void> {
  const sinceAccepted = stopwatch();
  let phase: Phase = "line";
  let outcome: ConnectionOutcome = "failed";
  const peer = peerName(socket);
  const closed = new AbortController();
  socket.once("close", () => closed.abort());
  socket.on("error", () => {}); // reported through the steps below
  let conn: TlsConnection | null = null;
  let grant: SecretGrant | null = null;
  try {
    const { version, rest } = await readVersionLine(socket, s.lineTimeoutMs);
    s.log.debug(`${peer}: protocol version ${version}`);
    phase = "handshake";
    const handshakeTime = stopwatch();
    conn = await TlsConnection.connect(socket, s.credentials, {
      priority: s.priority,
      handshakeTimeoutMs: s.handshakeTimeoutMs,
      initialData: rest,
    });
    s.events.handshakeDone(handshakeTime());
    const type = conn.peerKeyType();
    const key = conn.peerPublicKey();
    if (type !== "rawpk" || key === null) {
      throw new Error(`the peer presented ${type === "x509" ? "an X.509 certificate" : "no key"}, not a raw public key`);
    }
    phase = "request";
    const keyId = keyIdFromSpki(key);
    grant = await s.handler.requestSecret({
      keyId,
      address: socket.remoteAddress ?? "",
      signal: closed.signal,
    });
    if (closed.signal.aborted) {
      outcome = "abandoned";
      return;
    }
    phase = "answer";
    // Refused or not, end TLS properly, as Mandos does.
    if (grant) conn.write(grant.secret);
    conn.close();
    conn = null;
    grant?.sent();
    if (grant) s.events.secretSent(sinceAccepted());
    outcome = grant ? "served" : "refused";
  } catch (err) {
    const reason = refusalOf(phase, err);
    const message = `${peer}: dropped: ${errorMessage(err)}`;
    if (reason === null) s.log.info(message);
    else {
      outcome = "refused";
      report(s.log, s.events, "info", message, { kind: "refused", reason, address: socket.remoteAddress ?? "" });
    }
  } finally {
    s.events.connectionEnded(outcome);
    // Our copy of the secret, whatever happened to the connection.
    grant?.secret.fill(0);
    conn?.destroy();
    socket.destroy();
  }
}
