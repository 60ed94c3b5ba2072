// The root side of the client when privileged work remains: it runs the
// network part as an unprivileged child, adds routes the child asks for
// (validated by the network session), and cleans up whatever happens.
import { fork } from "node:child_process";
import { errorMessage, type Logger } from "../cli/log.js";
import type { NetworkSession } from "./network/index.js";
import { WORKER_ROLE_ENV, isMessage, type RouteReply, type RouteRequest, type StartMessage } from "./ipc.js";

export interface SupervisorSetup {
  start: StartMessage;
  session: NetworkSession;
  uid: number;
  gid: number;
  log: Logger;
  signal: AbortSignal;
}

/** Run the worker; resolves with its exit code and whatever it printed (the password). */
export function superviseWorker(s: SupervisorSetup): Promise<{ code: number; output: Buffer }> {
  return new Promise((resolve) => {
    const child = fork(process.argv[1]!, process.argv.slice(2), {
      uid: s.uid,
      gid: s.gid,
      env: { ...process.env, [WORKER_ROLE_ENV]: "worker" },
      stdio: ["ignore", "pipe", "inherit", "ipc"],
      serialization: "advanced",
    });
    const chunks: Buffer[] = [];
    child.stdout!.on("data", (d: Buffer) => chunks.push(d));
    const onAbort = () => child.kill("SIGTERM");
    s.signal.addEventListener("abort", onAbort, { once: true });
    child.on("message", (m: unknown) => {
      if (!isMessage<RouteRequest>(m, "route")) return;
      const reply = (error: string | null) => {
        if (child.connected) child.send({ type: "route-result", id: m.id, error } satisfies RouteReply);
      };
      s.session.addTemporaryRoute(String(m.address), String(m.interfaceName)).then(
        (route) => {
          s.log.debug(`added a temporary route to ${route.address} on ${route.interfaceName}`);
          reply(null);
        },
        (err: unknown) => reply(errorMessage(err)),
      );
    });
    child.on("error", (err) => s.log.error(`network worker: ${err.message}`));
    child.once("spawn", () => child.send(s.start));
    child.on("close", (code, signal) => {
      s.signal.removeEventListener("abort", onAbort);
      const output = Buffer.concat(chunks);
      for (const c of chunks) c.fill(0);
      resolve({ code: code ?? (signal ? 128 : 1), output });
    });
  });
}
