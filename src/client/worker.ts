// The unprivileged side: everything that parses network input. It gets its
// keys from the supervisor and asks it for routes; it never had root.
import { errorMessage, type Logger } from "../cli/log.js";
import type { ClientOptions } from "./options.js";
import { obtainPassword, type Discover } from "./run.js";
import { writePassword } from "./output.js";
import { serverNeedsRoute } from "./routing.js";
import { isMessage, type RouteReply, type RouteRequest, type StartMessage } from "./ipc.js";
import type { ServerAddress } from "./fetch.js";

/** Route requests over the IPC channel. */
function routeRequester(): (s: ServerAddress) => Promise<void> {
  let nextId = 1;
  const pending = new Map<number, (error: string | null) => void>();
  process.on("message", (m: unknown) => {
    if (!isMessage<RouteReply>(m, "route-result")) return;
    pending.get(m.id)?.(m.error);
    pending.delete(m.id);
  });
  return (s) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, (error) => (error ? reject(new Error(error)) : resolve()));
      process.send!({ type: "route", id, address: s.address, interfaceName: s.interfaceName! } satisfies RouteRequest);
    });
}

export function receiveStart(): Promise<StartMessage> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      if (!isMessage<StartMessage>(m, "start")) return;
      process.off("message", onMessage);
      resolve(m);
    };
    process.on("message", onMessage);
  });
}

export async function runWorker(
  opts: ClientOptions,
  start: StartMessage,
  discover: (interfaces: string[]) => Promise<Discover>,
  log: Logger,
  signal: AbortSignal,
): Promise<number> {
  log.debug(`network part running as uid ${process.getuid?.()}, gid ${process.getgid?.()}`);
  const requestRoute = routeRequester();
  const password = await obtainPassword(opts, start.keys, {
    log,
    zone: start.zone,
    discover: await discover(start.interfaces),
    signal,
    prepareServer: async (s) => {
      if (!(await serverNeedsRoute(s))) return;
      await requestRoute(s).catch((err: unknown) =>
        log.info(`no temporary route to ${s.address}: ${errorMessage(err)}`),
      );
    },
  });
  writePassword(password);
  return 0;
}
