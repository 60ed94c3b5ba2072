// The HTTP endpoint Prometheus scrapes: GET /metrics and nothing else.
// Bounded, since it listens beside a server that guards secrets: small
// header limit, short timeouts, few connections, no request body read, and
// every error a one-line plain-text answer.
import http from "node:http";
import type { Registry } from "prom-client";
import { errorMessage, type Logger } from "../cli/log.js";
import type { HostPort } from "../config/index.js";

/** A scraper needs one or two; more is someone else. */
const MAX_CONNECTIONS = 16;
const TIMEOUT_MS = 5_000;
const MAX_HEADER_BYTES = 4096;

export interface MetricsServer {
  /** The address and port bound (the port the system chose, for port 0). */
  readonly address: HostPort;
  close(): Promise<void>;
}

/** How a request is answered: a pure function of its method and target. */
export function route(method: string | undefined, url: string | undefined): { status: number; error?: string } {
  const path = (url ?? "").split("?")[0];
  if (path !== "/metrics") return { status: 404, error: "not found: only /metrics is served" };
  if (method !== "GET" && method !== "HEAD") return { status: 405, error: `method ${method ?? "?"} not allowed: use GET` };
  return { status: 200 };
}

/** "[::1]:9797" or "127.0.0.1:9797", for messages. */
export function formatHostPort(a: HostPort): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Listen on `at` (before the server gives up root: the port may be privileged). Rejects with one line. */
export function serveMetrics(at: HostPort, registry: Registry, log: Logger): Promise<MetricsServer> {
  const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: TIMEOUT_MS, headersTimeout: TIMEOUT_MS }, (req, res) => {
    const { status, error } = route(req.method, req.url);
    const answer = (code: number, type: string, body: string) => {
      res.writeHead(code, { "Content-Type": type, "Content-Length": Buffer.byteLength(body), ...(code === 405 ? { Allow: "GET, HEAD" } : {}) });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (error !== undefined) return answer(status, "text/plain; charset=utf-8", `${error}\n`);
    registry.metrics().then(
      (text) => answer(200, registry.contentType, text),
      (err: unknown) => answer(500, "text/plain; charset=utf-8", `cannot collect metrics: ${errorMessage(err)}\n`),
    );
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.keepAliveTimeout = TIMEOUT_MS;
  server.setTimeout(TIMEOUT_MS, (socket) => socket.destroy());
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return void socket.destroy();
    const [status, body] = err.code === "HPE_HEADER_OVERFLOW" ? ["431 Request Header Fields Too Large", "headers too large\n"] : ["400 Bad Request", "bad request\n"];
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  });
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(new Error(`metrics_address ${formatHostPort(at)}: cannot listen: ${errorMessage(err)}`)));
    server.listen({ host: at.host, port: at.port, ipv6Only: false }, () => {
      server.removeAllListeners("error");
      server.on("error", (err) => log.error(`metrics endpoint: ${errorMessage(err)}`));
      const bound = server.address();
      const port = typeof bound === "object" && bound ? bound.port : at.port;
      resolve({
        address: { host: at.host, port },
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
