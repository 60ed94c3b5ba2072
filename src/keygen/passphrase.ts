// Getting the password to encrypt, without ever echoing or printing it.
// On a terminal it is asked twice with echo off (raw mode, so we do the
// little line editing a user expects); from a pipe, the first two lines are
// read and must match; from --passfile, the file's bytes are used exactly
// as Debian's keygen does (`cat FILE | gpg`), trailing newline included.
// Every buffer that held password bytes is wiped.
import { openSync, readSync, closeSync, fstatSync, writeSync } from "node:fs";
import type { Readable } from "node:stream";
import type { ReadStream } from "node:tty";

export const MAX_PASSPHRASE = 64 * 1024;

export class PassphraseError extends Error {}

/** Read a whole password file (or stdin for "-") into a wipeable Buffer. */
export function readPassfile(path: string): Buffer {
  let fd: number;
  try {
    fd = path === "-" ? 0 : openSync(path, "r");
  } catch (err) {
    throw new PassphraseError(`cannot read password file ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
  try {
    if (path !== "-" && fstatSync(fd).isDirectory()) throw new PassphraseError(`password file ${path} is a directory`);
    const buf = Buffer.alloc(MAX_PASSPHRASE + 1);
    let len = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, len, buf.length - len, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") continue; // non-blocking stdin: try again
        if (code === "EOF") break;
        buf.fill(0);
        throw new PassphraseError(`cannot read password file ${path}: ${code ?? "error"}`);
      }
      if (n === 0) break;
      len += n;
      if (len > MAX_PASSPHRASE) {
        buf.fill(0);
        throw new PassphraseError(`password file ${path} is larger than ${MAX_PASSPHRASE} bytes`);
      }
    }
    const out = Buffer.alloc(len);
    buf.copy(out, 0, 0, len);
    buf.fill(0);
    return out;
  } finally {
    if (path !== "-") closeSync(fd);
  }
}

export type EditResult = "more" | "done" | "interrupt" | "eof";

/**
 * A password line typed in raw mode: keeps the bytes in one preallocated
 * Buffer (so nothing is left in growing copies) and applies the few
 * editing keys a terminal's cooked mode would. Pure apart from its state.
 */
export class LineEditor {
  private buf = Buffer.alloc(MAX_PASSPHRASE);
  private len = 0;

  feed(chunk: Uint8Array): EditResult {
    for (const byte of chunk) {
      switch (byte) {
        case 0x0d: // Enter (raw mode sends CR)
        case 0x0a:
          return "done";
        case 0x03: // Ctrl-C
          return "interrupt";
        case 0x04: // Ctrl-D: end of input on an empty line
          if (this.len === 0) return "eof";
          break;
        case 0x7f: // Backspace / Delete: drop one UTF-8 character
        case 0x08:
          while (this.len > 0 && (this.buf[this.len - 1]! & 0xc0) === 0x80) this.buf[--this.len] = 0;
          if (this.len > 0) this.buf[--this.len] = 0;
          break;
        case 0x15: // Ctrl-U: kill the line
          this.buf.fill(0, 0, this.len);
          this.len = 0;
          break;
        default:
          if (this.len >= this.buf.length) throw new PassphraseError("password is too long");
          this.buf[this.len++] = byte;
      }
    }
    return "more";
  }

  /** A copy of the line; the caller wipes it. */
  take(): Buffer {
    const out = Buffer.alloc(this.len);
    this.buf.copy(out, 0, 0, this.len);
    this.wipe();
    return out;
  }

  wipe(): void {
    this.buf.fill(0);
    this.len = 0;
  }
}

/** Read one line from a terminal already in raw mode (no echo). */
function readTerminalLine(input: ReadStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const editor = new LineEditor();
    const finish = (err: Error | null) => {
      input.off("data", onData);
      input.off("end", onEnd);
      input.pause();
      if (err) {
        editor.wipe();
        reject(err);
      } else resolve(editor.take());
    };
    const onData = (chunk: Buffer) => {
      let result: EditResult;
      try {
        result = editor.feed(chunk);
      } catch (err) {
        chunk.fill(0);
        return finish(err as Error);
      }
      chunk.fill(0);
      if (result === "done") finish(null);
      else if (result === "interrupt") finish(new PassphraseError("interrupted"));
      else if (result === "eof") finish(new PassphraseError("no password given (end of input)"));
    };
    const onEnd = () => finish(new PassphraseError("no password given (end of input)"));
    input.on("data", onData);
    input.on("end", onEnd);
    input.resume();
  });
}

/** Prompts go to the terminal itself, so stdout can be redirected to a file. */
function promptWriter(): { write(text: string): void; close(): void } {
  let fd: number | undefined;
  try {
    fd = openSync("/dev/tty", "w");
  } catch {
    fd = undefined;
  }
  return {
    write: (text) => {
      writeSync(fd ?? 2, text);
    },
    close: () => {
      if (fd !== undefined) closeSync(fd);
    },
  };
}

/** Ask twice on the terminal until both entries match and are not empty. */
export async function askPasswordOnTerminal(input: ReadStream, warn: (msg: string) => void): Promise<Buffer> {
  const prompt = promptWriter();
  // Echo goes off before the first prompt appears, so nothing typed after
  // it can ever be shown; Node restores the mode at exit too.
  input.setRawMode(true);
  try {
    for (;;) {
      prompt.write("Enter passphrase: ");
      const first = await readTerminalLine(input);
      prompt.write("\n");
      let second: Buffer;
      try {
        prompt.write("Repeat passphrase: ");
        second = await readTerminalLine(input);
        prompt.write("\n");
      } catch (err) {
        first.fill(0);
        throw err;
      }
      const same = first.equals(second);
      second.fill(0);
      if (same && first.length > 0) return first;
      first.fill(0);
      warn(same ? "Empty passphrase; try again" : "Passphrase mismatch; try again");
    }
  } finally {
    input.setRawMode(false);
    prompt.close();
  }
}

/**
 * The first `count` lines of piped input (views into `data`, which the
 * caller wipes). At end of input a last line may lack its newline.
 */
export function firstLines(data: Buffer, count: number, atEnd = false): Buffer[] | undefined {
  const lines: Buffer[] = [];
  let start = 0;
  while (lines.length < count) {
    const nl = data.indexOf(0x0a, start);
    if (nl < 0) {
      if (atEnd && start < data.length && lines.length === count - 1) lines.push(data.subarray(start));
      return lines.length === count ? lines : undefined;
    }
    lines.push(data.subarray(start, nl));
    start = nl + 1;
  }
  return lines;
}

/** Read two lines from a non-terminal stream; they must match. */
export async function readPasswordTwice(input: Readable): Promise<Buffer> {
  const buf = Buffer.alloc(2 * MAX_PASSPHRASE + 2);
  let len = 0;
  let lines: Buffer[] | undefined;
  try {
    for await (const chunk of input) {
      const bytes = chunk as Buffer;
      if (len + bytes.length > buf.length) {
        bytes.fill(0);
        throw new PassphraseError("password is too long");
      }
      bytes.copy(buf, len);
      bytes.fill(0);
      len += bytes.length;
      lines = firstLines(buf.subarray(0, len), 2);
      if (lines) break;
    }
    lines ??= firstLines(buf.subarray(0, len), 2, true);
    if (!lines) throw new PassphraseError("Passphrase not given twice on standard input");
    const [first, second] = lines as [Buffer, Buffer];
    if (!first.equals(second)) throw new PassphraseError("Passphrase mismatch");
    if (first.length === 0) throw new PassphraseError("Empty passphrase");
    return Buffer.from(first);
  } finally {
    buf.fill(0);
  }
}
