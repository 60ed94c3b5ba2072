// mandos.conf → the server's settings, with Mandos 1.8's defaults.
//
// As in Mandos, only [DEFAULT] counts. Text settings are taken as written
// (Mandos reads them raw, which is why a priority string may hold
// "%PROFILE_ULTRA"), while booleans and numbers go through %(name)s
// interpolation first. Any problem is fatal: a ConfigError with one line.
import { DEFAULT_SECTION, interpolate, parseBoolean, parseIni, parsePythonInt } from "./configparser.js";
import { ConfigError, describeIoError, locate, quote } from "./errors.js";
import { readConfigText } from "./text.js";
import { parseDuration } from "./duration.js";

export interface ServerConfig {
  /** Network interface to use, or null for all. */
  interface: string | null;
  /** IPv6 address to listen on, or null for all. */
  address: string | null;
  /** TCP port, or null to let the system choose. */
  port: number | null;
  debug: boolean;
  /** GnuTLS priority string. */
  priority: string;
  /** Zeroconf service name. */
  servicename: string;
  useDbus: boolean;
  useIpv6: boolean;
  /** Log level name such as "DEBUG" or "WARNING", or null if not set. */
  debuglevel: string | null;
  restore: boolean;
  /** File descriptor of an already open listening socket, or null. */
  socket: number | null;
  statedir: string;
  foreground: boolean;
  zeroconf: boolean;
  // Our own settings; Debian's server ignores unknown ones in mandos.conf.
  /** User name or number checkers run as, never the server's own user. */
  checkerUser: string;
  /** Connections one source address may hold open at once. */
  maxConnectionsPerAddress: number;
  /** Where to serve Prometheus metrics over HTTP (metrics_address), or null: off. */
  metricsAddress: HostPort | null;
  /** Fleet state in etcd (etcd_* options), or null for the local state file. */
  fleet: FleetConfig | null;
}

export interface HostPort {
  host: string;
  port: number;
}

/** "[::1]:9797", "127.0.0.1:9797" or "localhost:9797"; null if it is none of these. */
export function parseHostPort(text: string): HostPort | null {
  const m = /^\[([^\[\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]\s]+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) return null;
  return { host: m[1]!, port: Number(m[2]) };
}

/** Shared client state in etcd, from mandos.conf's etcd_* options. */
export interface FleetConfig {
  /** URLs such as "https://10.0.0.1:2379". */
  endpoints: string[];
  /** Key prefix, ending in "/". */
  prefix: string;
  /** PEM files for TLS to etcd, or null. */
  ca: string | null;
  cert: string | null;
  key: string | null;
  /** How long a server without etcd quorum keeps serving from its last confirmed view. */
  graceMs: number;
  /** TTL of this server's lease: a dead server's checkers move on within it. */
  leaseTtlMs: number;
}

/** Connections the server holds open at once, from all addresses together. */
export const MAX_CONNECTIONS = 4096;

/** Mandos's priority when GnuTLS supports raw public keys (as Debian 12's does). */
export const DEFAULT_PRIORITY = "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA";

/** Mandos 1.8's values for options mandos.conf does not set, as text. */
export const SERVER_DEFAULTS: Readonly<Record<string, string>> = {
  interface: "",
  address: "",
  port: "",
  debug: "False",
  priority: DEFAULT_PRIORITY,
  servicename: "Mandos",
  use_dbus: "True",
  use_ipv6: "True",
  debuglevel: "",
  restore: "True",
  socket: "",
  statedir: "/var/lib/mandos",
  foreground: "False",
  zeroconf: "True",
  checker_user: "nobody",
  max_connections_per_address: "64",
  metrics_address: "",
  etcd_endpoints: "",
  etcd_prefix: "/mandos/",
  etcd_ca: "",
  etcd_cert: "",
  etcd_key: "",
  etcd_grace: "10s",
  etcd_lease_ttl: "5s",
};

export function parseServerConf(text: string, fileName: string): ServerConfig {
  const doc = parseIni(text);
  if (doc.issues.length > 0) {
    const first = doc.issues[0]!;
    const more = doc.issues.length > 1 ? ` (and ${doc.issues.length - 1} more problems)` : "";
    throw new ConfigError(`${locate(fileName, first.line, first.section, first.key)}: ${first.message}${more}`);
  }
  const raw = new Map<string, { value: string; line: number }>();
  for (const [key, value] of Object.entries(SERVER_DEFAULTS)) raw.set(key, { value, line: 0 });
  for (const [key, o] of doc.defaults.options) raw.set(key, o);

  const problems: string[] = [];
  const where = (key: string) => locate(fileName, raw.get(key)!.line, DEFAULT_SECTION, key);
  const rawValue = (key: string) => raw.get(key)!.value;
  const expanded = (key: string): string | undefined => {
    try {
      return interpolate(rawValue(key), (name) => raw.get(name)?.value);
    } catch (err) {
      problems.push(`${where(key)}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const boolean = (key: string): boolean => {
    const value = expanded(key);
    if (value === undefined) return false;
    const b = parseBoolean(value);
    if (b === undefined) problems.push(`${where(key)}: not a boolean: ${quote(value)} (use 1/yes/true/on or 0/no/false/off)`);
    return b ?? false;
  };
  // Mandos leaves an empty port or socket unset and reads anything else as an integer.
  const integer = (key: string, min: number, max: number, what: string): number | null => {
    if (rawValue(key) === "") return null;
    const value = expanded(key);
    if (value === undefined) return null;
    const n = parsePythonInt(value);
    if (n === undefined || n < min || n > max) {
      problems.push(`${where(key)}: must be ${what}, not ${quote(value)}`);
      return null;
    }
    return n;
  };
  // Our own numbers have no "unset" value: empty is a mistake too.
  const count = (key: string, min: number, max: number): number => {
    const what = `a number from ${min} to ${max}`;
    if (rawValue(key) === "") problems.push(`${where(key)}: must be ${what}, not ""`);
    return integer(key, min, max, what) ?? min;
  };
  const optional = (key: string): string | null => (rawValue(key) === "" ? null : rawValue(key));

  const config: ServerConfig = {
    interface: optional("interface"),
    address: optional("address"),
    port: integer("port", 0, 65535, "a port number (0 to 65535)"),
    debug: boolean("debug"),
    priority: rawValue("priority"),
    servicename: rawValue("servicename"),
    useDbus: boolean("use_dbus"),
    useIpv6: boolean("use_ipv6"),
    debuglevel: optional("debuglevel"),
    restore: boolean("restore"),
    socket: integer("socket", 0, 2 ** 31 - 1, "a file descriptor number"),
    statedir: rawValue("statedir"),
    foreground: boolean("foreground"),
    zeroconf: boolean("zeroconf"),
    checkerUser: rawValue("checker_user"),
    maxConnectionsPerAddress: count("max_connections_per_address", 1, MAX_CONNECTIONS),
    metricsAddress: optional("metrics_address") === null ? null : parseHostPort(rawValue("metrics_address")),
    fleet: null,
  };
  if (rawValue("metrics_address") !== "" && config.metricsAddress === null) {
    problems.push(`${where("metrics_address")}: must be HOST:PORT, such as [::1]:9797, not ${quote(rawValue("metrics_address"))}`);
  }
  const endpoints = rawValue("etcd_endpoints").split(/[\s,]+/).filter((e) => e !== "");
  if (endpoints.length > 0) {
    const seconds = (key: string): number => {
      try {
        const ms = parseDuration(rawValue(key));
        if (ms >= 1000) return ms;
        problems.push(`${where(key)}: must be at least one second`);
      } catch (err) {
        problems.push(`${where(key)}: ${(err as Error).message}`);
      }
      return 1000;
    };
    for (const e of endpoints) if (!/^https?:\/\/[^/]+$/.test(e)) problems.push(`${where("etcd_endpoints")}: not an http:// or https:// URL: ${quote(e)}`);
    const prefix = rawValue("etcd_prefix");
    if (!prefix.endsWith("/")) problems.push(`${where("etcd_prefix")}: must end with "/"`);
    config.fleet = {
      endpoints,
      prefix,
      ca: optional("etcd_ca"),
      cert: optional("etcd_cert"),
      key: optional("etcd_key"),
      graceMs: seconds("etcd_grace"),
      leaseTtlMs: seconds("etcd_lease_ttl"),
    };
    if ((config.fleet.cert === null) !== (config.fleet.key === null)) problems.push(`${where("etcd_cert")}: etcd_cert and etcd_key go together`);
  }
  if (config.checkerUser === "") problems.push(`${where("checker_user")}: must name a user`);
  if (problems.length > 0) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problems)` : "";
    throw new ConfigError(problems[0]! + more);
  }
  return config;
}

/**
 * Read and parse mandos.conf. A missing file gives the defaults, as in
 * Mandos ("no options are required"); any other failure throws ConfigError.
 */
export function loadServerConf(path: string): ServerConfig {
  let text: string;
  try {
    text = readConfigText(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return parseServerConf("", path);
    throw new ConfigError(`${path}: cannot read: ${describeIoError(err)}`);
  }
  return parseServerConf(text, path);
}

/**
 * Settings from the file overlaid with those given on the command line
 * (undefined means "not given"), then Mandos's rule that debug implies
 * foreground.
 */
export function overlayServerConfig(base: ServerConfig, overrides: Partial<ServerConfig>): ServerConfig {
  const merged: ServerConfig = { ...base };
  for (const key of Object.keys(overrides) as (keyof ServerConfig)[]) {
    const value = overrides[key];
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
  }
  if (merged.debug) merged.foreground = true;
  return merged;
}
