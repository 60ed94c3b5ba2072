// Running iproute2's `ip` for the few privileged network changes the client
// makes. A child process keeps the netlink details out of this program and
// gives each change a hard timeout; its one-line complaint becomes our error.
import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";

/** A network step that failed; the message is one line, e.g. "cannot bring up eth0: Operation not permitted". */
export class NetworkError extends Error {
  override name = "NetworkError";
}

/**
 * Only fixed system directories: the privileged supervisor must not run
 * whatever `ip` an inherited PATH points at.
 */
const IP_CANDIDATES = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

let cachedIp: string | null | undefined;

/** The `ip` program to run, or null if none is installed. */
export function ipProgram(): string | null {
  if (cachedIp !== undefined) return cachedIp;
  cachedIp = null;
  for (const candidate of IP_CANDIDATES) {
    try {
      accessSync(candidate, constants.X_OK);
      cachedIp = candidate;
      break;
    } catch {
      // try the next one
    }
  }
  return cachedIp;
}

/**
 * The reason in `ip`'s stderr, as one short line: the last non-empty line
 * without the "RTNETLINK answers: " / "Error: " decoration.
 */
export function ipFailureReason(stderr: string, code: number | null, signal: string | null, timedOut = false): string {
  if (timedOut) return "timed out";
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const last = lines.at(-1);
  if (last !== undefined) {
    return last.replace(/^RTNETLINK answers:\s*/, "").replace(/^Error:\s*/, "").replace(/\.$/, "");
  }
  if (signal) return `ip killed by ${signal}`;
  return `ip exited with status ${code ?? "?"}`;
}

export interface IpOptions {
  /** Give up (and kill `ip`) after this long; default 10 s. */
  timeoutMs?: number;
  /** Override the program (tests); default: the first of the system paths that exists. */
  program?: string;
}

/**
 * Run `ip ARGS…`; resolve with its standard output. On failure, reject with a
 * NetworkError "WHAT: REASON" where WHAT describes the step for the reader.
 */
export function runIp(args: string[], what: string, opts: IpOptions = {}): Promise<string> {
  const program = opts.program ?? ipProgram();
  if (program === null) {
    return Promise.reject(new NetworkError(`${what}: the ip program (iproute2) is not installed`));
  }
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    execFile(
      program,
      args,
      { timeout: timeoutMs, killSignal: "SIGKILL", encoding: "utf8", maxBuffer: 4 << 20, env: { LC_ALL: "C", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve(stdout);
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: NodeJS.Signals | null; code?: number | string };
        if (typeof e.code === "string") {
          // The program could not be started at all (ENOENT, EACCES, …).
          reject(new NetworkError(`${what}: cannot run ${program}: ${e.code}`));
          return;
        }
        const timedOut = e.killed === true && e.signal === "SIGKILL";
        reject(new NetworkError(`${what}: ${ipFailureReason(stderr, typeof e.code === "number" ? e.code : null, e.signal ?? null, timedOut)}`));
      },
    );
  });
}
