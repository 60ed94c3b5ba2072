// journald's native protocol, as sd_journal_send() speaks it: one datagram
// to /run/systemd/journal/socket holding the record's fields, "KEY=value\n"
// each, or "KEY\n" + 64-bit little-endian length + value + "\n" for a value
// with a newline in it. Each value is bounded here, so a record always fits
// one datagram and the memfd fallback sd_journal uses for huge ones is
// never needed.
import { fstatSync } from "node:fs";
import { makeLogger, type Level, type LogFields, type Logger } from "../cli/log.js";
import { sendDatagram } from "./unix-dgram.js";

export const JOURNAL_SOCKET = "/run/systemd/journal/socket";
/** Longest value sent (bytes); a longer one is cut. Log lines are far shorter. */
export const MAX_FIELD_BYTES = 8192;

/** syslog priorities, as journald's PRIORITY field wants them. */
const PRIORITY: Record<Level, string> = { error: "3", warning: "4", info: "6", debug: "7" };

/** journald's rule for field names: A-Z, 0-9 and _, not starting with _ or a digit, at most 64. */
export function validFieldName(name: string): boolean {
  return /^[A-Z][A-Z0-9_]{0,63}$/.test(name);
}

/** One record as a datagram. Throws on a field name journald would refuse (a programming error). */
export function encodeJournalRecord(fields: Iterable<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, text] of fields) {
    if (!validFieldName(name)) throw new Error(`bad journal field name ${JSON.stringify(name)}`);
    let value = Buffer.from(text, "utf8");
    if (value.length > MAX_FIELD_BYTES) value = value.subarray(0, MAX_FIELD_BYTES);
    if (!value.includes(0x0a)) {
      parts.push(Buffer.from(`${name}=`), value, Buffer.from("\n"));
      continue;
    }
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(BigInt(value.length));
    parts.push(Buffer.from(`${name}\n`), size, value, Buffer.from("\n"));
  }
  return Buffer.concat(parts);
}

/**
 * Whether standard error is connected to the journal: systemd sets
 * JOURNAL_STREAM to "DEV:INODE" of the stream it gave the service, and the
 * descriptor must still be that stream (a redirection would change it), as
 * sd_journal_stream_fd()'s users check.
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env, stat: () => { dev: number; ino: number } = () => fstatSync(2)): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? "");
  if (!m) return false;
  try {
    const st = stat();
    return String(st.dev) === m[1] && String(st.ino) === m[2];
  } catch {
    return false;
  }
}

/**
 * A logger sending each record to journald with its fields (MESSAGE,
 * PRIORITY, SYSLOG_IDENTIFIER, and whatever the caller adds). A record
 * journald does not take (socket gone, queue full) goes to `fallback`,
 * standard error, as a plain line.
 */
export function journalLogger(program: string, level: Level, fallback: Logger, socketPath = JOURNAL_SOCKET): Logger {
  const record = (lvl: Level, message: string, fields: LogFields | undefined) => {
    const all: [string, string][] = [
      ["MESSAGE", message],
      ["PRIORITY", PRIORITY[lvl]],
      ["SYSLOG_IDENTIFIER", program],
      ...Object.entries(fields ?? {}),
    ];
    try {
      sendDatagram(socketPath, encodeJournalRecord(all));
    } catch {
      fallback[lvl](message);
    }
  };
  return makeLogger(program, { level, record });
}
