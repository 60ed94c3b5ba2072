// The client's life: privileges, network, discovery, the password, cleanup.
import { errorMessage, type Logger } from "../cli/log.js";
import type { ClientOptions } from "./options.js";
import type { KeyMaterial } from "./keys.js";
import { obtainPassword, type Discover } from "./run.js";
import { writePassword } from "./output.js";
import { dropPrivilegesForGood, isRoot, unprivilegedIds } from "./privileges.js";

async function zeroconfDiscovery(opts: ClientOptions, log: Logger): Promise<Discover> {
  const { browse } = await import("../zeroconf/index.js");
  const interfaces = opts.interfaces.filter((i) => i !== "none");
  return (found, gone) =>
    browse({
      serviceType: "_mandos._tcp",
      interfaces: interfaces.length > 0 ? interfaces : undefined,
      log,
      onFound: (s) => found({ address: s.address, port: s.port, interfaceName: s.interfaceName }),
      onRemoved: (s) => gone({ address: s.address, port: s.port, interfaceName: s.interfaceName }),
    });
}

export async function runClient(opts: ClientOptions, keys: KeyMaterial, log: Logger): Promise<number> {
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  if (isRoot()) {
    const { uid, gid } = unprivilegedIds(process.env);
    dropPrivilegesForGood(uid, gid);
    log.debug(`running as uid ${uid}, gid ${gid}`);
  }
  const discover: Discover = opts.connect
    ? () => ({ stop() {} })
    : await zeroconfDiscovery(opts, log);
  try {
    const password = await obtainPassword(opts, keys, { log, discover, signal: abort.signal });
    writePassword(password);
    return 0;
  } catch (err) {
    if (abort.signal.aborted) {
      log.debug("stopped by signal");
      return 1;
    }
    throw new Error(errorMessage(err));
  }
}
