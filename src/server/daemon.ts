// Running in the background, as Mandos does without --foreground: Node
// cannot fork, so the server starts itself again detached (new session, no
// terminal, stdio on /dev/null) and the first process exits once the second
// reports that it is serving, or with its exit code if it fails first. The
// background server logs to syslog (/dev/log) and writes /run/mandos.pid.
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { sendDatagram } from "../sys/unix-dgram.js";
import type { Level, Logger } from "../cli/log.js";

const CHILD_MARK = "MANDOS_TS_BACKGROUND";

export function isBackgroundChild(env = process.env): boolean {
  return env[CHILD_MARK] === "1";
}

/**
 * Start the background server and wait for it; never returns (exits with 0
 * once the child is ready, or with the child's failure).
 */
export function runInBackground(): Promise<never> {
  return new Promise(() => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
      detached: true,
      stdio: ["ignore", "ignore", "inherit", "ipc"],
      env: { ...process.env, [CHILD_MARK]: "1" },
    });
    child.on("message", (msg) => {
      if (msg === "ready") {
        child.disconnect();
        child.unref();
        process.exit(0);
      }
    });
    child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
    child.on("error", (err) => {
      process.stderr.write(`mandos: error: cannot start in the background: ${err.message}\n`);
      process.exit(1);
    });
  });
}

/** In the background child: tell the waiting parent we serve, then let go of it. */
export function reportReady(): void {
  if (process.send) {
    process.send("ready");
    process.disconnect?.();
  }
}

/** Mandos writes /run/mandos.pid (or /var/run/… without /run) when in the background. */
export function writePidFile(log: Logger): void {
  const path = existsSync("/run/.") ? "/run/mandos.pid" : "/var/run/mandos.pid";
  try {
    writeFileSync(path, `${process.pid}\n`, { mode: 0o644 });
  } catch (err) {
    log.error(`Could not write PID file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

const SEVERITY: Record<Level, number> = { error: 3, warning: 4, info: 6, debug: 7 };
const FACILITY_DAEMON = 3;
const ORDER: Record<Level, number> = { error: 0, warning: 1, info: 2, debug: 3 };

/** A logger writing to syslog, as Mandos does ("Mandos [PID]: LEVEL: message"). */
export function syslogLogger(level: Level, tag = "Mandos", socketPath = "/dev/log"): Logger {
  const max = ORDER[level];
  const emit = (l: Level) => (msg: string) => {
    if (ORDER[l] > max) return;
    const line = `<${FACILITY_DAEMON * 8 + SEVERITY[l]}>${tag} [${process.pid}]: ${l.toUpperCase()}: ${msg.replace(/[\r\n]+/g, " ")}`;
    try {
      sendDatagram(socketPath, Buffer.from(line));
    } catch {
      // No syslog: nowhere left to report it.
    }
  };
  return { error: emit("error"), warning: emit("warning"), info: emit("info"), debug: emit("debug"), debugEnabled: max >= ORDER.debug };
}
