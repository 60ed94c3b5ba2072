// The listening socket and the per-connection limits around handleConnection.
import net from "node:net";
import { Credentials, DEFAULT_PRIORITY } from "../tls/session.js";
import { errorMessage, type Logger } from "../cli/log.js";
import { listenOnDevice } from "../sys/listen-device.js";
import { handleConnection, type SecretRequestHandler } from "./connection.js";
import { PeerSlots } from "./peer-slots.js";
import { MAX_CONNECTIONS } from "../config/index.js";
import { NO_EVENTS, type ServerEvents } from "./events.js";

/**
 * A real client sends its version line as soon as it is connected: a peer
 * that has not within this time is idle, and gives its slot back early.
 */
const LINE_TIMEOUT_MS = 3_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;

export type { SecretRequest, SecretGrant, SecretRequestHandler } from "./connection.js";

export interface ListenerOptions {
  address?: string;
  port?: number;
  interfaceName?: string;
  /** An already listening socket (socket activation, --socket). */
  socketFd?: number;
  useIpv6: boolean;
  priority?: string;
  handler: SecretRequestHandler;
  log: Logger;
  /** Connections beyond this are refused at once: memory stays bounded. */
  maxConnections?: number;
  /** Connections one source address may hold; more from it are refused at once. */
  maxConnectionsPerAddress?: number;
  lineTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  events?: ServerEvents;
}

/** What a reload may change on a listening socket; connections in flight keep theirs. */
export interface ListenerSettings {
  priority: string;
  maxConnectionsPerAddress: number;
}

export interface Listener {
  port: number;
  /** New connections use these (mandos.conf changed at run time). */
  configure(settings: ListenerSettings): void;
  close(): Promise<void>;
}

export function startListener(opts: ListenerOptions): Promise<Listener> {
  const credentials = Credentials.anonymous();
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ pauseOnConnect: true });
  server.maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;
  const slots = new PeerSlots(opts.maxConnectionsPerAddress ?? server.maxConnections);
  let priority = opts.priority ?? DEFAULT_PRIORITY;
  const events = opts.events ?? NO_EVENTS;
  server.on("connection", (socket) => {
    const address = socket.remoteAddress;
    // No address: the peer is already gone.
    if (address === undefined) return void socket.destroy();
    const admission = slots.take(address);
    if (admission !== "taken") {
      if (admission === "refused") opts.log.info(`refusing connections from ${address}: it holds ${slots.perAddress} already`);
      events.connectionEnded("over_limit");
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      slots.release(address);
    });
    void handleConnection(socket, {
      credentials,
      priority,
      handler: opts.handler,
      log: opts.log,
      lineTimeoutMs: opts.lineTimeoutMs ?? LINE_TIMEOUT_MS,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
      events,
    });
  });
  server.on("drop", (d) => {
    opts.log.info(`refused a connection from ${d?.remoteAddress ?? "?"}: too many connections`);
    events.connectionEnded("over_limit");
  });
  const address = opts.address ?? (opts.useIpv6 ? "::" : "0.0.0.0");
  // The kernel's queue of connections not yet accepted is as long as our
  // limit: a storm's connections wait there rather than having their SYNs
  // dropped, which would cost each client a retry a second later.
  const backlog = server.maxConnections;
  return new Promise((resolve, reject) => {
    server.once("error", (err) => {
      credentials.dispose();
      reject(new Error(`cannot listen: ${err.message}`));
    });
    const ready = () => {
      server.removeAllListeners("error");
      server.on("error", (err) => opts.log.error(`listening socket: ${err.message}`));
      const addr = server.address();
      resolve({
        port: typeof addr === "object" && addr ? addr.port : 0,
        configure: (settings) => {
          priority = settings.priority;
          slots.perAddress = settings.maxConnectionsPerAddress;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => {
              credentials.dispose();
              done();
            });
          }),
      });
    };
    if (opts.socketFd !== undefined) server.listen({ fd: opts.socketFd }, ready);
    else if (opts.interfaceName) {
      // Only this interface, as Mandos's --interface: Node cannot bind to a device.
      let fd: number;
      try {
        fd = listenOnDevice(address, opts.port ?? 0, opts.interfaceName, backlog);
      } catch (err) {
        credentials.dispose();
        return reject(new Error(`cannot listen: ${errorMessage(err)}`));
      }
      server.listen({ fd }, ready);
    } else server.listen({ host: address, port: opts.port ?? 0, ipv6Only: false, backlog }, ready);
  });
}
