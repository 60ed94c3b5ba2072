// Password questions as systemd writes them (the Password Agents
// specification): an ini file "ask.XXXX" with an [Ask] section. Everything
// here is pure: file metadata, text, the clock and process liveness come in
// as arguments, so each decision can be tested without a directory.
import { createRequire } from "node:module";

// The ini package is CommonJS; require() loads it in ~2 ms where an ESM
// import (through the CommonJS export scanner) takes ~15 ms, and the
// agent's start-up is on the boot's critical path.
const require = createRequire(import.meta.url);
const { parse: parseIni } = require("ini") as typeof import("ini");

/** Question files are small (systemd's are ~200 bytes); read at most this. */
export const MAX_QUESTION_FILE_SIZE = 16 * 1024;
/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/** Linux's largest possible PID (PID_MAX_LIMIT). */
const MAX_PID = 4_194_304;

export interface Question {
  /** File name inside the agent directory ("ask.XXXX"). */
  file: string;
  /** The asking process: the question is void once it is gone. */
  pid: number;
  /** AF_UNIX datagram socket that takes the answer. */
  socket: string;
  /** CLOCK_MONOTONIC deadline in microseconds; 0n means none. */
  notAfterUs: bigint;
  acceptCached: boolean;
  echo: boolean;
  silent: boolean;
  message: string;
  icon: string;
  id: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Only "ask." files are questions (systemd's temporary files start with ".#"). */
export function isQuestionFileName(name: string): boolean {
  return name.startsWith("ask.") && name.length > 4 && !name.includes("/");
}

/** The parts of struct stat that decide whether a question file can be trusted. */
export interface FileFacts {
  isFile: boolean;
  isSymbolicLink: boolean;
  isDirectory: boolean;
  uid: number;
  mode: number;
  size: number;
}

/**
 * Why a question file must not be trusted, or null when it may be read.
 * Only root (or the agent's own user, when the agent is not root: tests
 * and experiments) may have written it, and nobody else may be able to.
 */
export function untrustedFileReason(f: FileFacts, trustedUids: readonly number[]): string | null {
  if (f.isSymbolicLink) return "is a symbolic link";
  if (f.isDirectory) return "is a directory, not a file";
  if (!f.isFile) return "is not a regular file";
  if (!trustedUids.includes(f.uid)) return `is owned by uid ${f.uid}, not root`;
  if ((f.mode & 0o022) !== 0) {
    return `is writable by group or others (mode ${(f.mode & 0o7777).toString(8).padStart(4, "0")})`;
  }
  if (f.size > MAX_QUESTION_FILE_SIZE) return `is too large (${f.size} bytes, limit ${MAX_QUESTION_FILE_SIZE})`;
  return null;
}

/**
 * Why the agent directory itself must not be trusted, or null. A directory
 * others may write to is acceptable only with the sticky bit (like a tmpfs
 * mounted without options): then they cannot replace root's files, and
 * their own files fail untrustedFileReason().
 */
export function untrustedDirectoryReason(f: FileFacts, trustedUids: readonly number[]): string | null {
  if (!f.isDirectory) return "is not a directory";
  if (!trustedUids.includes(f.uid)) return `is owned by uid ${f.uid}, not root`;
  if ((f.mode & 0o022) !== 0 && (f.mode & 0o1000) === 0) {
    return `is writable by group or others without the sticky bit (mode ${(f.mode & 0o7777).toString(8).padStart(4, "0")})`;
  }
  return null;
}

/** systemd's parse_boolean() spellings. */
function parseBoolean(key: string, value: string | undefined): Parsed<boolean> {
  if (value === undefined || value === "") return { ok: true, value: false };
  const v = value.toLowerCase();
  if (["1", "yes", "y", "true", "t", "on"].includes(v)) return { ok: true, value: true };
  if (["0", "no", "n", "false", "f", "off"].includes(v)) return { ok: true, value: false };
  return { ok: false, reason: `bad ${key} value ${JSON.stringify(value)}` };
}

/** The ini package turns "true"/"false" into booleans and keeps other values as strings. */
function field(section: Record<string, unknown>, key: string): string | undefined {
  const v = section[key];
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return String(v);
  return undefined;
}

/** Parse a question file's text; the reason names the offending field. */
export function parseQuestion(file: string, text: string): Parsed<Question> {
  if (text.includes("\0")) return { ok: false, reason: "contains NUL bytes" };
  let doc: Record<string, unknown>;
  try {
    doc = parseIni(text) as Record<string, unknown>;
  } catch {
    return { ok: false, reason: "is not an ini file" };
  }
  const ask = Object.prototype.hasOwnProperty.call(doc, "Ask") ? doc["Ask"] : undefined;
  if (typeof ask !== "object" || ask === null) return { ok: false, reason: "has no [Ask] section" };
  const s = ask as Record<string, unknown>;

  const pidText = field(s, "PID");
  if (pidText === undefined) return { ok: false, reason: "has no PID" };
  if (!/^[0-9]{1,7}$/.test(pidText) || Number(pidText) < 1 || Number(pidText) > MAX_PID) {
    // PID 0 or a negative one would make kill(pid, 0) probe whole process groups.
    return { ok: false, reason: `has a bad PID ${JSON.stringify(pidText)}` };
  }

  const socket = field(s, "Socket");
  if (socket === undefined || socket === "") return { ok: false, reason: "has no Socket" };
  if (!socket.startsWith("/")) return { ok: false, reason: `has a Socket that is not an absolute path` };
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES) return { ok: false, reason: "has a Socket path too long for AF_UNIX" };

  const notAfterText = field(s, "NotAfter") ?? "0";
  if (!/^[0-9]{1,20}$/.test(notAfterText) || BigInt(notAfterText) >= 2n ** 64n) {
    return { ok: false, reason: `has a bad NotAfter ${JSON.stringify(notAfterText)}` };
  }

  const flags: Record<string, boolean> = {};
  for (const key of ["AcceptCached", "Echo", "Silent"]) {
    const b = parseBoolean(key, field(s, key));
    if (!b.ok) return { ok: false, reason: `has a ${b.reason}` };
    flags[key] = b.value;
  }

  return {
    ok: true,
    value: {
      file,
      pid: Number(pidText),
      socket,
      notAfterUs: BigInt(notAfterText),
      acceptCached: flags["AcceptCached"]!,
      echo: flags["Echo"]!,
      silent: flags["Silent"]!,
      message: field(s, "Message") ?? "",
      icon: field(s, "Icon") ?? "",
      id: field(s, "Id") ?? "",
    },
  };
}

/**
 * What the agent makes of a question right now:
 * - "pending": to be answered with the Mandos secret;
 * - "expired", "asker-gone": void, forgotten;
 * - "wants-echo", "not-ours": alive but left to other agents.
 *
 * Echo=1 asks for something shown while typed — not a secret, so never the
 * disk passphrase (systemd-cryptsetup never sets it). The Id says what is
 * asked: by default only "cryptsetup:" questions get the disk secret, so a
 * web server's or a PIN question is never answered with it.
 * AcceptCached, Silent, Message and Icon only matter to agents that show the
 * question to a person; the Mandos secret is fetched afresh every time.
 */
export type QuestionStatus = "pending" | "expired" | "asker-gone" | "wants-echo" | "not-ours";

export function questionStatus(
  q: Question,
  nowUs: bigint,
  askerAlive: (pid: number) => boolean,
  idPrefixes: readonly string[],
): QuestionStatus {
  if (q.notAfterUs !== 0n && nowUs >= q.notAfterUs) return "expired";
  if (!askerAlive(q.pid)) return "asker-gone";
  if (q.echo) return "wants-echo";
  if (!idPrefixes.some((p) => q.id.startsWith(p))) return "not-ours";
  return "pending";
}

/** Statuses of questions that still exist for someone (keep the agent around). */
export function isLive(status: QuestionStatus): boolean {
  return status !== "expired" && status !== "asker-gone";
}

/** A log phrase for a status other than pending. */
export function describeStatus(status: QuestionStatus, q: Question): string {
  switch (status) {
    case "expired":
      return "expired (NotAfter passed)";
    case "asker-gone":
      return `asker PID ${q.pid} is gone`;
    case "wants-echo":
      return "asks for a visible answer (Echo=1), not a passphrase; left to other agents";
    case "not-ours":
      return `Id ${JSON.stringify(q.id)} is not a question this agent answers; left to other agents`;
    case "pending":
      return "pending";
  }
}
