// Whether a discovered server needs a temporary route: a global address
// announced on an interface the routing table does not lead to (a router
// that rebooted itself and lost its routes).
import { listRoutes, needsRoute } from "./network/index.js";
import { isLinkLocal, parseIp } from "../sys/addresses.js";
import { errorMessage, type Logger } from "../cli/log.js";
import type { ServerAddress } from "./fetch.js";

export async function serverNeedsRoute(s: ServerAddress): Promise<boolean> {
  const ip = parseIp(s.address);
  if (!ip || !s.interfaceName || isLinkLocal(ip)) return false;
  return needsRoute(s.address, await listRoutes(ip.family));
}

/**
 * What runs before connecting to a discovered server: a temporary route
 * where one is needed, added by `addRoute` (ourselves, or whoever does the
 * privileged steps for us); without one the attempt goes ahead anyway.
 */
export function routePreparer(addRoute: (address: string, interfaceName: string) => Promise<unknown>, log: Logger) {
  return async (s: ServerAddress): Promise<void> => {
    if (!(await serverNeedsRoute(s))) return;
    await addRoute(s.address, s.interfaceName!).then(
      () => log.debug(`added a temporary route to ${s.address} on ${s.interfaceName}`),
      (err: unknown) => log.info(`no temporary route to ${s.address}: ${errorMessage(err)}`),
    );
  };
}
