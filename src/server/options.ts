// The server's command line, as Mandos 1.8.16's: every option overrides the
// same setting of mandos.conf; unset options leave the file's value.
import { parseArgs } from "node:util";
import { UsageError } from "../cli/args.js";
import type { ServerConfig } from "../config/index.js";
import type { Level } from "../cli/log.js";

export const USAGE = `Usage: mandos [OPTION...]
Give encrypted passwords to authenticated Mandos clients.

  -i, --interface=IF        bind to network interface IF
  -a, --address=ADDRESS     listen on ADDRESS only (IPv6, or ::FFFF:a.b.c.d)
  -p, --port=PORT           listen on PORT (default: any free port)
      --debug               debug mode: stay in the foreground, log to stderr
      --debuglevel=LEVEL    CRITICAL, ERROR, WARNING (default), INFO or DEBUG
      --priority=STRING     GnuTLS priority string
      --servicename=NAME    Zeroconf service name (default: Mandos)
      --configdir=DIR       read mandos.conf and clients.conf from DIR
                            (default: /etc/mandos)
      --no-dbus             do not provide the D-Bus system bus interface
      --no-ipv6             do not use IPv6
      --no-restore          do not restore the state saved last time
      --socket=FD           use the listening socket open on descriptor FD
      --statedir=DIR        save and restore state in DIR
                            (default: /var/lib/mandos)
      --foreground          do not detach and write no PID file
      --no-zeroconf         do not announce the service with Zeroconf
      --check               run the server's self-tests
  -h, --help                show this help and exit
  -v, --version             show the version and exit

Settings not given here come from DIR/mandos.conf; see mandos(8).`;

export interface ServerArgs {
  configdir: string;
  check: boolean;
  help: boolean;
  version: boolean;
  /** Settings given on the command line; undefined means "from mandos.conf". */
  overrides: Partial<ServerConfig>;
}

function intArg(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\s*[+-]?\d+\s*$/.test(value)) throw new UsageError(`argument --${name}: invalid int value: '${value}'`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`argument --${name}: out of range: ${value}`);
  return n;
}

/** Parse the server's arguments; throws UsageError with a one-line message. */
export function parseServerArgs(argv: readonly string[]): ServerArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        interface: { type: "string", short: "i" },
        address: { type: "string", short: "a" },
        port: { type: "string", short: "p" },
        check: { type: "boolean" },
        debug: { type: "boolean" },
        debuglevel: { type: "string" },
        priority: { type: "string" },
        servicename: { type: "string" },
        configdir: { type: "string" },
        "no-dbus": { type: "boolean" },
        "no-ipv6": { type: "boolean" },
        "no-restore": { type: "boolean" },
        socket: { type: "string" },
        statedir: { type: "string" },
        foreground: { type: "boolean" },
        "no-zeroconf": { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]!);
  }
  const v = parsed.values;
  const overrides: Partial<ServerConfig> = {
    interface: v.interface,
    address: v.address,
    port: intArg("port", v.port, 0, 65535),
    debug: v.debug ? true : undefined,
    debuglevel: v.debuglevel,
    priority: v.priority,
    servicename: v.servicename,
    useDbus: v["no-dbus"] ? false : undefined,
    useIpv6: v["no-ipv6"] ? false : undefined,
    restore: v["no-restore"] ? false : undefined,
    socket: intArg("socket", v.socket, 0, 2 ** 31 - 1),
    statedir: v.statedir,
    foreground: v.foreground ? true : undefined,
    zeroconf: v["no-zeroconf"] ? false : undefined,
  };
  if (overrides.debuglevel !== undefined) logLevel(overrides.debuglevel, false);
  return {
    configdir: v.configdir ?? "/etc/mandos",
    check: v.check ?? false,
    help: v.help ?? false,
    version: v.version ?? false,
    overrides,
  };
}

/** Mandos's debuglevel names (Python logging levels) as our log levels. */
export function logLevel(debuglevel: string | null, debug: boolean): Level {
  if (debug) return "debug";
  if (debuglevel === null || debuglevel === "") return "warning";
  switch (debuglevel.toUpperCase()) {
    case "CRITICAL":
    case "ERROR":
      return "error";
    case "WARNING":
    case "WARN":
      return "warning";
    case "INFO":
      return "info";
    case "DEBUG":
      return "debug";
    default:
      throw new UsageError(`unknown debug level ${JSON.stringify(debuglevel)} (use CRITICAL, ERROR, WARNING, INFO or DEBUG)`);
  }
}

/** The check Mandos makes after merging: without Zeroconf, clients must know the port. */
export function checkSettings(s: ServerConfig): void {
  if (!s.zeroconf && s.port === null && s.socket === null) {
    throw new UsageError("Needs port or socket to work without Zeroconf");
  }
}
