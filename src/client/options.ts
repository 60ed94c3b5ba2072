// The client's command line: Mandos 1.8's options, parsed into a plain
// object that every later step takes as input.
import { parseArgs } from "node:util";
import { UsageError, numberOption, parseCommandLine } from "../cli/args.js";
import { DEFAULT_PRIORITY } from "../tls/session.js";
import { isPatternList, parseRules } from "./network/patterns.js";

export interface ConnectTarget {
  address: string;
  port: number;
}

export interface ClientOptions {
  /** Every --connect, in order; empty: find servers with Zeroconf. */
  connect: ConnectTarget[];
  /** The first --connect exactly as given (network hooks get it as CONNECT). */
  connectText: string | null;
  /** --interface values split on commas, in order: plain names (may contain "none"), or patterns. */
  interfaces: string[];
  pubkey: string;
  seckey: string;
  tlsPubkey: string;
  tlsPrivkey: string;
  priority: string;
  delaySeconds: number;
  retrySeconds: number;
  networkHookDir: string;
  debug: boolean;
  /** Seconds to wait for a server's answer after the handshake (approval may take long). */
  timeoutSeconds: number;
}

const KEYDIR = "/conf/conf.d/mandos";
const MAX_TIMER_MS = 2 ** 31 - 1;

export const USAGE = `Usage: mandos-client [OPTION...]
Get a password from a Mandos server, print it on standard output.

  -c, --connect=ADDRESS:PORT   connect directly to this server (no Zeroconf);
                               repeat it for a password split over servers
  -i, --interface=NAME[,NAME...]
                               network interfaces to bring up and use
                               ("none": only those named before it)
  -i, --interface=PATTERN[,PATTERN...]
                               or patterns (fnmatch: * ? [...]), "!" to
                               leave out, "+" to take; the first match
                               decides; a list ending with a "!" pattern
                               goes on with !tun*,!tap*,!sl*,!lo,*
                               (that * takes suitable interfaces only)
  -p, --pubkey=FILE            OpenPGP public key (${KEYDIR}/pubkey.txt)
  -s, --seckey=FILE            OpenPGP secret key (${KEYDIR}/seckey.txt)
  -T, --tls-pubkey=FILE        TLS raw public key, PEM (${KEYDIR}/tls-pubkey.pem)
  -t, --tls-privkey=FILE       TLS private key, PEM (${KEYDIR}/tls-privkey.pem)
      --priority=STRING        GnuTLS priority string
      --dh-bits=BITS           accepted for compatibility; unused with TLS 1.3
      --dh-params=FILE         accepted for compatibility; unused with TLS 1.3
      --delay=SECONDS          wait this long for interfaces to run (2.5)
      --retry=SECONDS          seconds between tries of the same server (10)
      --network-hook-dir=DIR   network hooks (/lib/mandos/network-hooks.d)
      --timeout=SECONDS        wait this long for a server's answer (300)
      --debug                  log what the program does to standard error
  -?, --help                   give this help list
      --usage                  give a short usage message
  -V, --version                print program version
`;

/** Split --connect's value: the last colon separates address and port. */
export function parseConnect(value: string): ConnectTarget {
  const colon = value.lastIndexOf(":");
  if (colon <= 0) throw new UsageError(`--connect: expected ADDRESS:PORT, got ${JSON.stringify(value)}`);
  let address = value.slice(0, colon);
  if (address.startsWith("[") && address.endsWith("]")) address = address.slice(1, -1);
  const portText = value.slice(colon + 1);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new UsageError(`--connect: bad port ${JSON.stringify(portText)}`);
  }
  return { address, port };
}

const OPTIONS = {
  connect: { type: "string", short: "c", multiple: true },
  interface: { type: "string", short: "i", multiple: true },
  pubkey: { type: "string", short: "p" },
  seckey: { type: "string", short: "s" },
  "tls-pubkey": { type: "string", short: "T" },
  "tls-privkey": { type: "string", short: "t" },
  priority: { type: "string" },
  "dh-bits": { type: "string" },
  "dh-params": { type: "string" },
  delay: { type: "string" },
  retry: { type: "string" },
  "network-hook-dir": { type: "string" },
  timeout: { type: "string" },
  debug: { type: "boolean" },
  usage: { type: "boolean" },
} as const;

/** --interface values split on commas, checked if they are patterns. */
function interfaceWords(values: readonly string[] | undefined): string[] {
  const words = (values ?? []).flatMap((v) => v.split(",")).filter((v) => v !== "");
  if (isPatternList(words)) {
    try {
      parseRules(words);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return words;
}

/**
 * What the password agent needs to know of the command line it runs the
 * client with (its options after the program): the --interface words and
 * its first --connect, read exactly as the client reads them.
 * Never exits (unlike parseClientOptions with --help); throws UsageError.
 */
export function clientSelection(argv: string[]): { interfaces: string[]; connect: string | null } {
  let values;
  try {
    const options = { ...OPTIONS, help: { type: "boolean", short: "?" }, version: { type: "boolean", short: "V" } } as const;
    ({ values } = parseArgs({ args: argv, options, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]);
  }
  return { interfaces: interfaceWords(values.interface), connect: values.connect?.[0] ?? null };
}

export function parseClientOptions(argv: string[]): ClientOptions {
  const { values } = parseCommandLine({ name: "mandos-client", usage: USAGE, versionShort: "V" }, OPTIONS, argv);
  if (values.usage) {
    process.stdout.write(
      "Usage: mandos-client [-c ADDRESS:PORT] [-i NAME[,NAME...]] [-p FILE] [-s FILE] [-T FILE] [-t FILE] [--priority=STRING] [--delay=SECONDS] [--retry=SECONDS] [--network-hook-dir=DIR] [--debug]\n",
    );
    process.exit(0);
  }
  const delaySeconds = numberOption("delay", values.delay, 2.5);
  const retrySeconds = numberOption("retry", values.retry, 10);
  const timeoutSeconds = numberOption("timeout", values.timeout, 300);
  if (delaySeconds < 0) throw new UsageError("--delay must not be negative");
  if (retrySeconds < 0) throw new UsageError("--retry must not be negative");
  if (timeoutSeconds <= 0) throw new UsageError("--timeout must be positive");
  // Node's timers take at most 2^31-1 ms; beyond that they fire at once.
  for (const [name, seconds] of [["delay", delaySeconds], ["retry", retrySeconds], ["timeout", timeoutSeconds]] as const) {
    if (seconds * 1000 > MAX_TIMER_MS) throw new UsageError(`--${name} must be at most ${Math.floor(MAX_TIMER_MS / 1000)} seconds`);
  }
  if (values["dh-bits"] !== undefined) numberOption("dh-bits", values["dh-bits"], 0);
  return {
    connect: (values.connect ?? []).map(parseConnect),
    connectText: values.connect?.[0] ?? null,
    interfaces: interfaceWords(values.interface),
    pubkey: values.pubkey ?? `${KEYDIR}/pubkey.txt`,
    seckey: values.seckey ?? `${KEYDIR}/seckey.txt`,
    tlsPubkey: values["tls-pubkey"] ?? `${KEYDIR}/tls-pubkey.pem`,
    tlsPrivkey: values["tls-privkey"] ?? `${KEYDIR}/tls-privkey.pem`,
    priority: values.priority ?? DEFAULT_PRIORITY,
    delaySeconds,
    retrySeconds,
    networkHookDir: values["network-hook-dir"] ?? "/lib/mandos/network-hooks.d",
    debug: values.debug ?? false,
    timeoutSeconds,
  };
}
