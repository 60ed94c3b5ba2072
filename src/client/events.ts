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
  /** The secret this server sent decrypts with our key, and is the password. */
  | { type: "decrypted" }
  /** It decrypts to a share of a split password (only its header's numbers, never its bytes). */
  | { type: "share"; index: number; threshold: number }
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
  const fields =
    event.type === "failed"
      ? { reason: event.reason.replace(/[\r\n]+/g, " ").slice(0, MAX_EVENT_LINE / 2) }
      : event.type === "share"
        ? { index: event.index, threshold: event.threshold }
        : {};
  return `${PREFIX}${JSON.stringify({ server, type: event.type, ...fields })}\n`;
}

const TYPES = new Set(["found", "connected", "handshake", "decrypted", "share", "failed"]);
const isByte = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 255;

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
  const { server, type, reason, index, threshold } = m as Record<string, unknown>;
  if (typeof server !== "string" || typeof type !== "string" || !TYPES.has(type)) return null;
  if (type === "failed") return typeof reason === "string" ? { server, event: { type, reason } } : null;
  if (type === "share") return isByte(index) && isByte(threshold) ? { server, event: { type, index, threshold } } : null;
  return { server, event: { type } as ServerEvent };
}
