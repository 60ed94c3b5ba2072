// One attempt to get the secret from one server: TCP connect, the protocol
// line, TLS (we are the TLS server, presenting our raw public key), read the
// OpenPGP message until the server ends TLS, decrypt it.
import net from "node:net";
import { CLIENT_HELLO_LINE } from "../protocol/version-line.js";
import { TlsConnection, type Credentials } from "../tls/session.js";
import { errorMessage } from "../cli/log.js";
import { withZone } from "../sys/addresses.js";

export interface ServerAddress {
  address: string;
  port: number;
  /** Zone for link-local addresses (a name: net.connect rejects an index). */
  interfaceName?: string;
}

export interface FetchSettings {
  credentials: Credentials;
  priority: string;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  answerTimeoutMs: number;
  decrypt(message: Buffer): Promise<Buffer>;
  /** Told each step an attempt reaches (mandos-check reports how far each server got). */
  reached?(step: "connected" | "handshake"): void;
}

/** A secret larger than this is not a Mandos secret. */
export const MAX_MESSAGE_BYTES = 256 * 1024;

export class FetchError extends Error {}

export function describeServer(s: ServerAddress): string {
  const host = hostFor(s);
  return host.includes(":") ? `[${host}]:${s.port}` : `${host}:${s.port}`;
}

function hostFor(s: ServerAddress): string {
  return s.interfaceName ? withZone(s.address, s.interfaceName) : s.address;
}

function connect(s: ServerAddress, timeoutMs: number, signal: AbortSignal | undefined): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostFor(s), port: s.port });
    const fail = (why: string) => {
      cleanup();
      socket.destroy();
      reject(new FetchError(why));
    };
    const onAbort = () => fail("cancelled");
    const timer = setTimeout(() => fail(`no connection within ${timeoutMs} ms`), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.removeAllListeners("connect");
      socket.removeAllListeners("error");
    };
    signal?.addEventListener("abort", onAbort);
    socket.once("error", (err) => fail(`cannot connect: ${err.message}`));
    socket.once("connect", () => {
      cleanup();
      socket.on("error", () => {}); // reported through TLS from here on
      resolve(socket);
    });
  });
}

/** Get and decrypt the secret; the caller wipes the returned password. */
export async function fetchSecret(server: ServerAddress, settings: FetchSettings, signal?: AbortSignal): Promise<Buffer> {
  const name = describeServer(server);
  let conn: TlsConnection | null = null;
  let socket: net.Socket | null = null;
  const onAbort = () => (conn ? conn.destroy() : socket?.destroy());
  signal?.addEventListener("abort", onAbort);
  try {
    socket = await connect(server, settings.connectTimeoutMs, signal);
    settings.reached?.("connected");
    socket.write(CLIENT_HELLO_LINE);
    conn = await TlsConnection.accept(socket, settings.credentials, {
      priority: settings.priority,
      handshakeTimeoutMs: settings.handshakeTimeoutMs,
    });
    settings.reached?.("handshake");
    const message = await conn.readAll(MAX_MESSAGE_BYTES, settings.answerTimeoutMs);
    conn.close();
    if (message.length === 0) throw new FetchError("the server sent no secret");
    try {
      return await settings.decrypt(message);
    } finally {
      message.fill(0);
    }
  } catch (err) {
    if (signal?.aborted) throw new FetchError(`${name}: cancelled`);
    throw new FetchError(`${name}: ${errorMessage(err)}`);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    conn?.destroy();
    socket?.destroy();
  }
}
