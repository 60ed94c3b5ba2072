// Reading mandos.conf and clients.conf for a reload. The server gives up
// root once its socket is bound, but clients.conf (and the secfiles it
// names) are readable by root only, as Mandos wants them. So a server
// started as root starts, before giving it up, this reader: a small process
// that stays root and, asked over a socket pair, reads and parses both files
// exactly as the start did, and answers with the result (secrets included:
// the server holds them anyway). It takes one request, of one fixed shape,
// with nothing in it the server chooses: it reads only the configuration
// directory of the server's own command line. It exits when the server
// does. A server started without root reads the files itself.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { UsageError } from "../cli/args.js";
import type { Level } from "../cli/log.js";
import { ConfigError, loadClientsConf, type ServerConfig } from "../config/index.js";
import { jsonLineChannel } from "../protocol/json-lines.js";
import type { ServerArgs } from "./options.js";
import { readSettings, toConfigured } from "./startup.js";
import type { ConfiguredClient } from "./state.js";

export type ReadResult = { settings: ServerConfig; level: Level; clients: ConfiguredClient[] } | { problem: string };

/** Both files, or their first problem as one line naming file, line and problem. */
export function readConfiguration(args: ServerArgs): ReadResult {
  let settings: ServerConfig;
  let level: Level;
  try {
    ({ settings, level } = readSettings(args));
  } catch (err) {
    if (err instanceof ConfigError) return { problem: err.message };
    // Mandos's checks after merging (and the debug level) name no line.
    if (err instanceof UsageError) return { problem: `${join(args.configdir, "mandos.conf")}: ${err.message}` };
    throw err;
  }
  const read = loadClientsConf(join(args.configdir, "clients.conf"));
  if (read.errors.length > 0) {
    for (const c of read.clients) c.secret.fill(0);
    const more = read.errors.length > 1 ? ` (and ${read.errors.length - 1} more problems)` : "";
    return { problem: read.errors[0]! + more };
  }
  return { settings, level, clients: read.clients.map(toConfigured) };
}

export interface ConfigurationSource {
  read(): Promise<ReadResult>;
}

/** A server that never had root reads its files itself. */
export const readInProcess = (args: ServerArgs): ConfigurationSource => ({ read: async () => readConfiguration(args) });

// ---- The privileged reader ----------------------------------------------

/** The one request; the reader takes nothing longer. */
export const READ_REQUEST = { type: "read" } as const;
export const MAX_REQUEST_BYTES = 64;
/** Answers carry every client's secret; this bounds what the server buffers. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
/** The reader's end of the socket pair. */
export const READER_FD = 3;

/** A ReadResult as JSON: secrets in base64. */
export function encodeResult(r: ReadResult): object {
  if ("problem" in r) return r;
  return { ...r, clients: r.clients.map((c) => ({ ...c, secret: c.secret.toString("base64") })) };
}

function decodeResult(m: unknown): ReadResult | null {
  const o = m as Record<string, unknown> | null;
  if (typeof o?.problem === "string") return { problem: o.problem };
  if (typeof o?.settings !== "object" || typeof o.level !== "string" || !Array.isArray(o.clients)) return null;
  const clients = (o.clients as Record<string, unknown>[]).map((c) => ({ ...c, secret: Buffer.from(String(c.secret), "base64") }));
  return { settings: o.settings as ServerConfig, level: o.level as Level, clients: clients as unknown as ConfiguredClient[] };
}

/**
 * Start the reader (the caller is root, and about to give it up). Reads are
 * answered in order; once the reader is gone, each read says so.
 */
export function startPrivilegedReader(argv: readonly string[]): ConfigurationSource {
  const program = fileURLToPath(new URL("./config-reader-main.js", import.meta.url));
  const child = spawn(process.execPath, [program, ...argv], {
    cwd: process.cwd(), // relative secfile names are the start's
    detached: true, // a terminal's ^C reaches the server, which stops it
    stdio: ["ignore", "inherit", "inherit", "pipe"],
  });
  const waiting: ((r: ReadResult) => void)[] = [];
  const socket = child.stdio[3] as Socket;
  let gone: string | null = null;
  const lost = (why: string) => {
    gone ??= `the configuration reader ${why}; only a restart reads the configuration now`;
    for (const w of waiting.splice(0)) w({ problem: gone });
  };
  child.on("error", (err) => lost(`could not start: ${err.message}`));
  child.on("exit", (code, signal) => lost(`exited (${signal ?? `code ${code}`})`));
  const channel = jsonLineChannel(socket, MAX_ANSWER_BYTES, {
    message(m) {
      waiting.shift()?.(decodeResult(m) ?? { problem: "the configuration reader sent a malformed answer" });
      if (waiting.length === 0) socket.unref();
    },
    invalid: (reason) => lost(`sent ${reason}`),
    closed: () => lost("closed its channel"),
  });
  // Only a read waiting for its answer keeps the server's event loop alive.
  child.unref();
  socket.unref();
  return {
    read: () =>
      new Promise((resolve) => {
        if (gone !== null) return resolve({ problem: gone });
        waiting.push(resolve);
        socket.ref();
        channel.send(READ_REQUEST);
      }),
  };
}

/** The reader's end: the channel on READER_FD. */
export function readerChannelSocket(): Socket {
  return new Socket({ fd: READER_FD, readable: true, writable: true });
}
