// The root side of the client when privileged work remains: it runs the
// network part as an unprivileged child, brings up the interfaces and adds
// the routes the child asks for (the network session decides which are
// allowed), and cleans up whatever happens. All the child can send is bounded: its requests by
// the protocol (src/protocol/privileged-requests.ts), its output (the
// password) by MAX_WORKER_OUTPUT. A child that goes past a bound is killed
// at once and nothing more of it is read; the run fails with one line
// saying what the child did.
import { spawn } from "node:child_process";
import type { Duplex } from "node:stream";
import type { Logger } from "../cli/log.js";
import { serveRequests } from "../protocol/privileged-requests.js";
import { CLIENT_ROLE_ENV, type StartMessage } from "./ipc.js";
import type { DelegatedSteps } from "./network/index.js";

/** More than any passphrase systemd accepts (as for the password agent's client). */
export const MAX_WORKER_OUTPUT = 64 * 1024;

/** The worker broke a bound and was stopped. */
export class WorkerError extends Error {}

export interface SupervisorSetup {
  /** The worker's program and its arguments. */
  command: string[];
  start: StartMessage;
  /** Bring an interface up, add a temporary route; each rejects with a one-line reason when not allowed. */
  steps: DelegatedSteps;
  uid: number;
  gid: number;
  log: Logger;
  signal: AbortSignal;
}

/** Run the worker; resolves with its exit code and what it printed (the password). */
export function superviseWorker(s: SupervisorSetup): Promise<{ code: number; output: Buffer }> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = s.command;
    const child = spawn(file!, args, {
      uid: s.uid,
      gid: s.gid,
      env: { ...process.env, [CLIENT_ROLE_ENV]: "worker" },
      stdio: ["ignore", "pipe", "inherit", "pipe"],
    });
    const chunks: Buffer[] = [];
    let length = 0;
    const wipeOutput = () => {
      for (const c of chunks) c.fill(0);
      chunks.length = 0;
    };
    let broken: string | null = null;
    const stopWorker = (reason: string) => {
      if (broken !== null) return;
      broken = reason;
      child.kill("SIGKILL");
      channel.close();
      child.stdout!.destroy(); // a grandchild holding the pipe is not waited for either
      wipeOutput();
    };
    const channel = serveRequests(
      child.stdio[3] as Duplex,
      { "add-route": (r) => s.steps.addRoute(r.address, r.interface), "bring-up": (r) => s.steps.bringUp(r.interface) },
      stopWorker,
    );
    child.stdout!.on("data", (d: Buffer) => {
      chunks.push(d);
      length += d.length;
      if (length > MAX_WORKER_OUTPUT) stopWorker(`printed more than ${MAX_WORKER_OUTPUT} bytes`);
    });
    const onAbort = () => child.kill("SIGTERM");
    s.signal.addEventListener("abort", onAbort, { once: true });
    let spawnError: Error | null = null;
    child.on("error", (err) => (spawnError = err));
    child.once("spawn", () => channel.send(s.start));
    child.on("close", (code, signal) => {
      s.signal.removeEventListener("abort", onAbort);
      channel.close();
      if (broken !== null) return reject(new WorkerError(`the network worker ${broken}; stopped it`));
      if (spawnError) {
        wipeOutput();
        return reject(new WorkerError(`cannot start the network worker as uid ${s.uid}: ${spawnError.message}`));
      }
      const output = Buffer.concat(chunks);
      wipeOutput();
      resolve({ code: code ?? (signal ? 128 : 1), output });
    });
  });
}
