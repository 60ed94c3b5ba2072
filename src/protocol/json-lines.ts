// Messages as JSON, one per line, over any byte stream (a socket pair
// handed to a child as an extra descriptor, a Unix socket). Each line is
// bounded: a reader holds at most `maxLineBytes` of it, so a peer that
// never sends a newline cannot make it grow. (Node's own IPC channel
// buffers a line without any limit, which is why it is not used between
// processes of different privilege.)
import type { Duplex } from "node:stream";

/** Pure: cuts a byte stream into lines (without their "\n") of at most maxLineBytes. */
export class LineSplitter {
  #parts: Buffer[] = [];
  #length = 0;

  constructor(readonly maxLineBytes: number) {}

  /** The lines `chunk` completes, or null once a line is over the limit (then feed no more). */
  push(chunk: Buffer): Buffer[] | null {
    const lines: Buffer[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      if (this.#length + piece.length > this.maxLineBytes) return null;
      lines.push(this.#length === 0 ? piece : Buffer.concat([...this.#parts, piece]));
      this.#parts = [];
      this.#length = 0;
      start = nl + 1;
    }
    const rest = chunk.subarray(start);
    if (this.#length + rest.length > this.maxLineBytes) return null;
    if (rest.length > 0) {
      this.#parts.push(rest);
      this.#length += rest.length;
    }
    return lines;
  }
}

export interface ChannelEvents {
  message(m: unknown): void;
  /** The peer broke the framing (a line too long, or not JSON); the channel is closed already. */
  invalid(reason: string): void;
  /** The stream ended or failed (not called after close() or invalid()). */
  closed(): void;
}

export interface MessageChannel {
  /** Send one message; dropped once the channel is closed. */
  send(message: object): void;
  /** Stop reading and close the stream; no event follows. */
  close(): void;
}

export function jsonLineChannel(stream: Duplex, maxLineBytes: number, on: ChannelEvents): MessageChannel {
  const splitter = new LineSplitter(maxLineBytes);
  let done = false;
  const close = () => {
    done = true;
    stream.destroy();
  };
  const invalid = (reason: string) => {
    close();
    on.invalid(reason);
  };
  stream.on("data", (chunk: Buffer) => {
    if (done) return;
    const lines = splitter.push(chunk);
    if (lines === null) return invalid(`a message over ${maxLineBytes} bytes`);
    for (const line of lines) {
      let message: unknown;
      try {
        message = JSON.parse(line.toString("utf8"));
      } catch {
        return invalid("a message that is not JSON");
      }
      on.message(message);
      if (done) return; // the handler closed the channel
    }
  });
  stream.on("error", () => {}); // "close" follows
  stream.on("close", () => {
    if (done) return;
    done = true;
    on.closed();
  });
  return {
    send(message) {
      if (!done && stream.writable) stream.write(`${JSON.stringify(message)}\n`);
    },
    close,
  };
}
