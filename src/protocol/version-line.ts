// The plaintext line a Mandos client sends right after connecting, before
// TLS: the protocol version, "1". The server reads it with bounded time and
// memory; anything after the newline already belongs to TLS.
import type { Socket } from "node:net";

export const PROTOCOL_VERSION = 1;
export const CLIENT_HELLO_LINE = `${PROTOCOL_VERSION}\r\n`;
/** Longer than any sane line; a peer sending more without a newline is dropped. */
export const MAX_LINE_BYTES = 1024;

export class ProtocolError extends Error {
  /** Whether the peer sent a line we do not take (not: it sent none, or went away). */
  constructor(
    message: string,
    readonly badLine = true,
  ) {
    super(message);
  }
}

/**
 * Parse the version line (without its newline). Like Mandos, accept an
 * integer version not above ours, followed by anything.
 */
export function parseVersionLine(line: string): number {
  const first = line.trim().split(/\s+/)[0] ?? "";
  if (!/^[+-]?\d+$/.test(first)) {
    throw new ProtocolError(`bad protocol line ${JSON.stringify(line.slice(0, 40))}`);
  }
  const version = Number(first);
  if (version > PROTOCOL_VERSION) throw new ProtocolError(`unsupported protocol version ${first}`);
  return version;
}

/** Read the version line from `socket`; resolves with the version and any bytes after the newline. */
export function readVersionLine(socket: Socket, timeoutMs: number): Promise<{ version: number; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    let finished = false;
    let late: NodeJS.Immediate | undefined;
    const done = (err: Error | null, value?: { version: number; rest: Buffer }) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearImmediate(late);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
      socket.pause();
      if (err) reject(err);
      else resolve(value!);
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl < 0) {
        if (buffered.length > MAX_LINE_BYTES) done(new ProtocolError(`no newline in the first ${MAX_LINE_BYTES} bytes`));
        return;
      }
      if (nl > MAX_LINE_BYTES) return done(new ProtocolError(`protocol line longer than ${MAX_LINE_BYTES} bytes`));
      try {
        const version = parseVersionLine(buffered.subarray(0, nl).toString("latin1"));
        done(null, { version, rest: buffered.subarray(nl + 1) });
      } catch (err) {
        done(err as Error);
      }
    };
    const onEnd = () => done(new ProtocolError("connection closed before the protocol line", false));
    const onError = (err: Error) => done(new ProtocolError(`connection error: ${err.message}`, false));
    // Timers run before I/O in an event loop turn: on a busy server the line
    // may be waiting unread. Judge only after the next round of reads.
    const timer = setTimeout(() => {
      late = setImmediate(() => done(new ProtocolError(`no protocol line within ${timeoutMs} ms`, false)));
    }, timeoutMs);
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("error", onError);
    socket.resume();
  });
}
