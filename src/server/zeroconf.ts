// Announcing the server as "_mandos._tcp" (unless --no-zeroconf), through
// avahi-daemon or the built-in responder (src/zeroconf). Where Mandos exits
// when Avahi fails, we log it and go on serving the clients that know the
// server's address.
import type { Logger } from "../cli/log.js";
import { announce } from "../zeroconf/index.js";

export interface Announcement {
  readonly name: string;
  stop(): Promise<void>;
}

export interface ZeroconfOptions {
  name: string;
  port: number;
  interfaceName?: string;
  useIpv6: boolean;
  log: Logger;
}

export async function startZeroconf(opts: ZeroconfOptions): Promise<Announcement | null> {
  const { log } = opts;
  try {
    const a = await announce({
      name: opts.name,
      port: opts.port,
      ...(opts.interfaceName !== undefined ? { interfaceName: opts.interfaceName } : {}),
      protocol: opts.useIpv6 ? "ipv6" : "ipv4",
      log,
      onRename: (name) => log.info(`Changing Zeroconf service name to ${JSON.stringify(name)}`),
      onError: (err) => log.error(`Zeroconf: ${err.message}`),
    });
    log.debug(`Zeroconf service ${JSON.stringify(a.name)} announced (${a.via})`);
    return a;
  } catch (err) {
    log.error(`Zeroconf announcement failed: ${(err as Error).message}`);
    return null;
  }
}
