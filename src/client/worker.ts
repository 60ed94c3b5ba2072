// The unprivileged side: everything that parses network input. It gets its
// keys from the supervisor and asks it for routes; it never had root, and
// checks so before it starts.
import { Socket } from "node:net";
import { errorMessage, type Logger } from "../cli/log.js";
import type { ClientOptions } from "./options.js";
import { obtainPassword, type Discover } from "./run.js";
import { writePassword } from "./output.js";
import { serverNeedsRoute } from "./routing.js";
import { confirmUnprivileged } from "./privileges.js";
import { MAX_START_MESSAGE_BYTES, WORKER_CHANNEL_FD, parseStart, type StartMessage } from "./ipc.js";
import { jsonLineChannel } from "../protocol/json-lines.js";
import { Requester } from "../protocol/privileged-requests.js";
import type { ServerAddress } from "./fetch.js";

/** The worker's end of the channel: the start message, then replies to its requests. */
function connectToSupervisor(): { start: Promise<StartMessage>; requester: Requester } {
  let started: (s: StartMessage) => void = () => {};
  let failed: (err: Error) => void = () => {};
  const start = new Promise<StartMessage>((resolve, reject) => {
    started = resolve;
    failed = reject;
  });
  const requester = new Requester((m) => channel.send(m));
  const gone = (reason: string) => {
    requester.close(reason);
    failed(new Error(reason));
  };
  const channel = jsonLineChannel(new Socket({ fd: WORKER_CHANNEL_FD, readable: true, writable: true }), MAX_START_MESSAGE_BYTES, {
    message(m) {
      if (requester.receive(m)) return;
      const s = parseStart(m);
      if (s) started(s);
    },
    invalid: (reason) => gone(`the supervisor sent ${reason}`),
    closed: () => gone("the supervisor closed the channel"),
  });
  return { start, requester };
}

/** One request per server and interface: a refusal will not change on a retry. */
function routeRequester(requester: Requester): (s: ServerAddress) => Promise<void> {
  const asked = new Map<string, Promise<void>>();
  return (s) => {
    const key = `${s.address}%${s.interfaceName}`;
    let answer = asked.get(key);
    if (!answer) {
      answer = requester.request({ op: "add-route", address: s.address, interface: s.interfaceName! });
      // Past the limit the requester refuses by itself: nothing worth keeping.
      if (asked.size < requester.limits.maxRequests) asked.set(key, answer);
    }
    return answer;
  };
}

export async function runWorker(
  opts: ClientOptions,
  discover: (interfaces: string[]) => Promise<Discover>,
  log: Logger,
  signal: AbortSignal,
): Promise<number> {
  confirmUnprivileged();
  log.debug(`network part running as uid ${process.getuid?.()}, gid ${process.getgid?.()}`);
  const { start, requester } = connectToSupervisor();
  const { keys, zone, interfaces } = await start;
  const requestRoute = routeRequester(requester);
  const password = await obtainPassword(opts, keys, {
    log,
    zone,
    discover: await discover(interfaces),
    signal,
    prepareServer: async (s) => {
      if (!(await serverNeedsRoute(s))) return;
      await requestRoute(s).catch((err: unknown) => log.info(`no temporary route to ${s.address}: ${errorMessage(err)}`));
    },
  });
  writePassword(password);
  return 0;
}
