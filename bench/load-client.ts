// Many TLS-only Mandos clients from one process: connect, send the protocol
// line, handshake with the client's raw key, read the secret, compare it
// with the expected bytes (no OpenPGP: the server's cost is what we measure).
import net from "node:net";
import { CLIENT_HELLO_LINE } from "../src/protocol/version-line.js";
import { TlsConnection, type Credentials } from "../src/tls/session.js";

export interface LoadResult {
  concurrency: number;
  requests: number;
  served: number;
  failed: number;
  seconds: number;
  latenciesMs: number[];
  firstError: string | null;
}

export function one(port: number, creds: Credentials, expected: Buffer, deadlineMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = net.connect({ host: "::1", port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("no secret before the deadline"));
    }, Math.max(1, deadlineMs - Date.now()));
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once("connect", async () => {
      socket.write(CLIENT_HELLO_LINE);
      let conn: TlsConnection | null = null;
      try {
        conn = await TlsConnection.accept(socket, creds, { handshakeTimeoutMs: 60_000 });
        const got = await conn.readAll(1 << 20, 60_000);
        if (!got.equals(expected)) throw new Error("wrong secret");
        resolve(performance.now() - started);
      } catch (err) {
        reject(err);
      } finally {
        clearTimeout(timer);
        conn?.destroy();
        socket.destroy();
      }
    });
  });
}

/**
 * `requests` fetches with at most `concurrency` in flight, all within
 * `budgetMs`; spread over several servers' ports in turn if given more than one.
 */
export async function runLoad(
  port: number | readonly number[],
  creds: Credentials,
  expected: Buffer,
  concurrency: number,
  requests: number,
  budgetMs: number,
): Promise<LoadResult> {
  const deadline = Date.now() + budgetMs;
  const latenciesMs: number[] = [];
  let failed = 0;
  let firstError: string | null = null;
  let next = 0;
  const started = performance.now();
  const ports = typeof port === "number" ? [port] : port;
  const lane = async () => {
    while (next < requests && Date.now() < deadline) {
      const target = ports[next % ports.length]!;
      next++;
      try {
        latenciesMs.push(await one(target, creds, expected, deadline));
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return {
    concurrency,
    requests,
    served: latenciesMs.length,
    failed,
    seconds: (performance.now() - started) / 1000,
    latenciesMs,
    firstError,
  };
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
