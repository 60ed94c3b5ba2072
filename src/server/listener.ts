// The listening socket and the per-connection limits around handleConnection.
import net from "node:net";
import { Credentials, DEFAULT_PRIORITY } from "../tls/session.js";
import { errorMessage, type Logger } from "../cli/log.js";
import { listenOnDevice } from "../sys/listen-device.js";
import { handleConnection, type SecretRequestHandler } from "./connection.js";

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
  lineTimeoutMs?: number;
  handshakeTimeoutMs?: number;
}

export interface Listener {
  port: number;
  close(): Promise<void>;
}

export function startListener(opts: ListenerOptions): Promise<Listener> {
  const credentials = Credentials.anonymous();
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ pauseOnConnect: true });
  server.maxConnections = opts.maxConnections ?? 4096;
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    void handleConnection(socket, {
      credentials,
      priority: opts.priority ?? DEFAULT_PRIORITY,
      handler: opts.handler,
      log: opts.log,
      lineTimeoutMs: opts.lineTimeoutMs ?? 10_000,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
    });
  });
  server.on("drop", (d) => opts.log.info(`refused a connection from ${d?.remoteAddress ?? "?"}: too many connections`));
  const address = opts.address ?? (opts.useIpv6 ? "::" : "0.0.0.0");
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
        fd = listenOnDevice(address, opts.port ?? 0, opts.interfaceName);
      } catch (err) {
        credentials.dispose();
        return reject(new Error(`cannot listen: ${errorMessage(err)}`));
      }
      server.listen({ fd }, ready);
    } else server.listen({ host: address, port: opts.port ?? 0, ipv6Only: false }, ready);
  });
}
