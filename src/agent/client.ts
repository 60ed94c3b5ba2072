// Running the Mandos client: a child process whose standard output is the
// secret. It gets the helper directory in MANDOSPLUGINHELPERDIR, its standard
// error is passed on to ours (so its messages reach the journal) with the
// last lines kept to tell why it failed, and it runs with the
// configured user and group when we are root. Its output is collected into
// Buffers only (never a string) and the pieces are wiped once joined.
// Offered a channel, it gets a socket pair as descriptor 3 and
// MANDOS_CLIENT_ROLE=agent, for its requests to do network steps
// (src/agent/network.ts); a client that does not know it leaves it alone.
import { spawn, type ChildProcess } from "node:child_process";
import type { Duplex } from "node:stream";
import { CLIENT_ROLE_ENV } from "../client/ipc.js";

/** More than any passphrase systemd accepts; a client printing more is broken. */
export const MAX_CLIENT_OUTPUT = 64 * 1024;
/** How much of the client's standard error is kept to explain a failure. */
export const STDERR_TAIL = 2048;

export interface ClientSpec {
  command: string[];
  helperDirectory: string;
  /** Switch to these IDs before exec (only possible, and only done, as root). */
  credentials: { uid: number; gid: number } | null;
  /** Give the client a request channel as its descriptor 3. */
  channel: boolean;
}

export interface ClientEndEvent {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The whole standard output; the receiver must wipe it. */
  output: Buffer;
  overflow: boolean;
  stoppedByUs: boolean;
  stderrTail: string;
}

export interface ClientRun {
  readonly pid: number | undefined;
  /** Our end of the request channel, if it was offered one. */
  readonly channel: Duplex | null;
  /** SIGTERM now, SIGKILL if it is still there after graceMs. */
  stop(graceMs: number): void;
  /** SIGKILL now: it broke the rules of the channel (its end counts as a failure). */
  kill(): void;
}

export interface ClientHandlers {
  /** The program could not be started at all (missing, not executable). */
  onSpawnError(err: NodeJS.ErrnoException): void;
  onEnd(e: ClientEndEvent): void;
}

export function startClient(spec: ClientSpec, handlers: ClientHandlers): ClientRun {
  const [file, ...args] = spec.command;
  const env: NodeJS.ProcessEnv = { ...process.env, MANDOSPLUGINHELPERDIR: spec.helperDirectory };
  // Only we say what its descriptor 3 is.
  delete env[CLIENT_ROLE_ENV];
  if (spec.channel) env[CLIENT_ROLE_ENV] = "agent";
  // libuv calls setgroups(0, NULL) before setgid()/setuid() when uid/gid are
  // given, so the client keeps none of root's supplementary groups.
  // Its own process group (detached = setsid), so stopping it also stops
  // anything it started that still holds the output pipe.
  const child: ChildProcess = spawn(file!, args, {
    env,
    stdio: spec.channel ? ["ignore", "pipe", "pipe", "pipe"] : ["ignore", "pipe", "pipe"],
    detached: true,
    ...(spec.credentials ?? {}),
  });
  const chunks: Buffer[] = [];
  let length = 0;
  let overflow = false;
  let stoppedByUs = false;
  let killTimer: NodeJS.Timeout | undefined;
  let settled = false;

  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // The group is already gone.
    }
  };
  let stderrTail = "";
  child.stderr!.on("data", (d: Buffer) => {
    process.stderr.write(d);
    stderrTail = (stderrTail + d.toString("utf8")).slice(-STDERR_TAIL);
  });
  const wipeChunks = () => {
    for (const c of chunks) c.fill(0);
    chunks.length = 0;
  };

  child.stdout!.on("data", (d: Buffer) => {
    if (overflow) {
      d.fill(0);
      return;
    }
    length += d.length;
    chunks.push(d);
    if (length > MAX_CLIENT_OUTPUT) {
      overflow = true;
      wipeChunks();
      signalGroup("SIGKILL");
    }
  });
  child.on("error", (err: NodeJS.ErrnoException) => {
    if (settled) return;
    if (child.pid === undefined) {
      settled = true;
      handlers.onSpawnError(err);
    }
  });
  const end = (code: number | null, signal: NodeJS.Signals | null) => {
    if (killTimer) clearTimeout(killTimer);
    if (settled) return;
    settled = true;
    child.stdout!.destroy();
    child.stderr!.destroy();
    const output = overflow ? Buffer.alloc(0) : Buffer.concat(chunks, length);
    wipeChunks();
    handlers.onEnd({ code, signal, output, overflow, stoppedByUs, stderrTail });
  };
  // "close" comes once the output pipe is drained too. Should a leftover
  // descendant keep the pipe open, the exit status alone decides shortly after.
  child.on("close", end);
  child.on("exit", (code, signal) => {
    setTimeout(() => end(code, signal), stoppedByUs ? 0 : 1000).unref();
  });

  return {
    pid: child.pid,
    channel: spec.channel ? (child.stdio[3] as Duplex) : null,
    kill: () => signalGroup("SIGKILL"),
    stop(graceMs) {
      if (settled || stoppedByUs) return;
      stoppedByUs = true;
      signalGroup("SIGTERM");
      killTimer = setTimeout(() => signalGroup("SIGKILL"), graceMs);
    },
  };
}
