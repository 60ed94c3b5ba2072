// Whether a discovered server needs a temporary route: a global address
// announced on an interface the routing table does not lead to (a router
// that rebooted itself and lost its routes).
import { listRoutes, needsRoute } from "./network/index.js";
import { isLinkLocal, parseIp } from "../sys/addresses.js";
import type { ServerAddress } from "./fetch.js";

export async function serverNeedsRoute(s: ServerAddress): Promise<boolean> {
  const ip = parseIp(s.address);
  if (!ip || !s.interfaceName || isLinkLocal(ip)) return false;
  return needsRoute(s.address, await listRoutes(ip.family));
}
