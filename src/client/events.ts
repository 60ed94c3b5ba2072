// How each server attempt goes, for mandos-check(8): the client reports
// it when started with MANDOS_CLIENT_EVENTS=stderr, one line per event on
// standard error, which mandos-check reads. Only server addresses, steps
// and error messages (which never hold a secret) go into these lines.
// The one format, written here and parsed here.
import { writeSync } from "node:fs";
import { describeServer, type ServerAddress } from "./fetch.js";

export type ServerEvent =
  | { type: "found" }
  | { type: "connected" }
  | { type: "handshake" }
  /** The secret (or share) this server sent decrypts with our key. */
  | { type: "decrypted" }
  | { type: "failed"; reason: string };

export const EVENTS_ENV = "MANDOS_CLIENT_EVENTS";
const PREFIX = "mandos-client-event ";
/** Longer lines are not events (a reason is one line of an error message). */
export const MAX_EVENT_LINE = 2048;

/** The reporter RunDeps.onServerEvent takes, when the environment asks for one. */
export function eventReporter(env: NodeJS.ProcessEnv, fd = 2): ((s: ServerAddress, e: ServerEvent) => void) | undefined {
  if (env[EVENTS_ENV] !== "stderr") return undefined;
  return (server, event) => {
    const line = formatEvent(describeServer(server), event);
    try {
      writeSync(fd, line);
    } catch {
      // a report that cannot be written changes nothing for the run
    }
  };
}

export function formatEvent(server: string, event: ServerEvent): string {
  const reason = event.type === "failed" ? event.reason.replace(/[\r\n]+/g, " ").slice(0, MAX_EVENT_LINE / 2) : undefined;
  return `${PREFIX}${JSON.stringify({ server, type: event.type, ...(reason !== undefined ? { reason } : {}) })}\n`;
}

const TYPES = new Set(["found", "connected", "handshake", "decrypted", "failed"]);

/** Pure: an event line (without its newline) as server and event, or null for any other line. */
export function parseEventLine(line: string): { server: string; event: ServerEvent } | null {
  if (!line.startsWith(PREFIX) || line.length > MAX_EVENT_LINE) return null;
  let m: unknown;
  try {
    m = JSON.parse(line.slice(PREFIX.length));
  } catch {
    return null;
  }
  if (typeof m !== "object" || m === null) return null;
  const { server, type, reason } = m as Record<string, unknown>;
  if (typeof server !== "string" || typeof type !== "string" || !TYPES.has(type)) return null;
  if (type === "failed") return typeof reason === "string" ? { server, event: { type, reason } } : null;
  return { server, event: { type } as ServerEvent };
}
