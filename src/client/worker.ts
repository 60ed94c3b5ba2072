// The unprivileged side: everything that parses network input. It gets its
// keys from the supervisor and asks it to bring interfaces up (those that
// appear after the start) and for routes; it never had root, and checks so
// before it starts.
import type { Logger } from "../cli/log.js";
import type { ClientOptions } from "./options.js";
import { obtainPassword, type Discover } from "./run.js";
import { writePassword } from "./output.js";
import { routePreparer } from "./routing.js";
import { eventReporter } from "./events.js";
import { confirmUnprivileged } from "./privileges.js";
import { MAX_START_MESSAGE_BYTES, connectToPrivileged, parseStart, requestedSteps, type StartMessage } from "./ipc.js";
import { InterfaceFollower } from "./follow.js";
import { selectionRules } from "./network/index.js";

/** The worker's end of the channel: the start message, then replies to its requests. */
function connectToSupervisor() {
  let started: (s: StartMessage) => void = () => {};
  let failed: (err: Error) => void = () => {};
  const start = new Promise<StartMessage>((resolve, reject) => {
    started = resolve;
    failed = reject;
  });
  const requester = connectToPrivileged(
    MAX_START_MESSAGE_BYTES,
    (m) => {
      const s = parseStart(m);
      if (s) started(s);
    },
    (reason) => failed(new Error(reason)),
  );
  return { start, steps: requestedSteps(requester) };
}

export async function runWorker(
  opts: ClientOptions,
  discover: (follower: InterfaceFollower) => Promise<Discover>,
  log: Logger,
  signal: AbortSignal,
): Promise<number> {
  confirmUnprivileged();
  log.debug(`network part running as uid ${process.getuid?.()}, gid ${process.getgid?.()}`);
  const { start, steps } = connectToSupervisor();
  const { keys, zone, interfaces } = await start;
  // The supervisor's rules, made again from the same options and what it chose at the start.
  const rules = selectionRules(opts.interfaces, interfaces, { connectMode: opts.connect.length > 0 });
  const password = await obtainPassword(opts, keys, {
    log,
    zone,
    discover: await discover(new InterfaceFollower(rules, interfaces, steps.bringUp, log)),
    signal,
    prepareServer: routePreparer(steps.addRoute, log),
    onServerEvent: eventReporter(process.env),
  });
  writePassword(password);
  return 0;
}
