// Announcing the Mandos service (server side): through avahi-daemon when it
// runs on the system D-Bus (as the Mandos server does), otherwise with the
// built-in mDNS responder.
import { announceWithAvahi, connectAvahi } from "./avahi.js";
import { startResponder } from "./responder.js";
import type { AnnounceOptions, Announcement } from "./types.js";

export async function announce(opts: AnnounceOptions): Promise<Announcement> {
  const backend = opts.backend ?? "auto";
  if (backend !== "builtin") {
    const found = await connectAvahi();
    if ("conn" in found) return announceWithAvahi(found.conn, opts);
    if (backend === "avahi") throw new Error(`Zeroconf: ${found.reason}`);
    opts.log.info(`Zeroconf: ${found.reason}; using the built-in mDNS responder`);
  }
  return startResponder(opts);
}
