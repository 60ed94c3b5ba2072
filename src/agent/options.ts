// Command line of password-agent, as Mandos 1.8's: our options come first;
// the first non-option word (or whatever follows "--") is the Mandos client
// command line, whose own options must not be taken for ours.
import { parseArgs } from "node:util";
import { UsageError } from "../cli/args.js";

export const DEFAULT_AGENT_DIRECTORY = "/run/systemd/ask-password";
/** Debian's default, where the initial RAM disk keeps the client's helpers. */
export const DEFAULT_HELPER_DIRECTORY = "/lib/mandos/plugin-helpers";
/** Where this project installs its Mandos client. */
export const DEFAULT_MANDOS_CLIENT = "/usr/lib/mandos-ts/mandos-client";
/** Only disk passphrase questions from systemd-cryptsetup, unless told otherwise. */
export const DEFAULT_ID_PREFIXES: readonly string[] = ["cryptsetup:"];
const NOBODY = 65534;
/** How long a prefetched secret is held for questions still to come. */
export const DEFAULT_HOLD_SECONDS = 120;
/** A day: longer holds defeat the point of dropping it. */
const MAX_HOLD_SECONDS = 86_400;

export interface AgentOptions {
  agentDirectory: string;
  helperDirectory: string;
  user: number;
  group: number;
  /** Question Id prefixes to answer; "" answers every question. */
  idPrefixes: string[];
  /** The client program and its arguments. */
  client: string[];
  /**
   * Fetch the secret at once, before any question, and hold it in memory
   * for `holdMs` to answer questions the moment they appear (initramfs).
   */
  prefetch: boolean;
  holdMs: number;
}

export type Invocation =
  | { kind: "run"; options: AgentOptions }
  | { kind: "help" }
  | { kind: "usage" }
  | { kind: "version" };

export const HELP = `Usage: password-agent [OPTION...] [--] [MANDOS_CLIENT [OPTION...]]
Run the Mandos client as a systemd password agent: answer pending password
questions with the secret the client fetches from a Mandos server.

  -d, --agent-directory=DIRECTORY
                         directory of password questions
                         (default ${DEFAULT_AGENT_DIRECTORY})
      --helper-directory=DIRECTORY
                         passed to the client as MANDOSPLUGINHELPERDIR
                         (default ${DEFAULT_HELPER_DIRECTORY})
      --prefetch         start the client at once, before any question, and
                         hold its secret in memory to answer questions as
                         soon as they appear (the initial RAM disk)
      --hold-time=SECONDS
                         drop a held secret after SECONDS (default ${DEFAULT_HOLD_SECONDS})
  -u, --user=USERID      numeric user ID to run the client as (default ${NOBODY})
  -g, --group=GROUPID    numeric group ID to run the client as (default ${NOBODY})
      --id-prefix=PREFIX answer questions whose Id starts with PREFIX;
                         repeatable; default "cryptsetup:"; "" answers all
  -?, --help             give this help list
      --usage            give a short usage message
  -V, --version          print program version

MANDOS_CLIENT defaults to ${DEFAULT_MANDOS_CLIENT}; words after it are its options.
`;

export const USAGE = `Usage: password-agent [-?V] [-d DIRECTORY] [-u USERID] [-g GROUPID]
            [--agent-directory=DIRECTORY] [--helper-directory=DIRECTORY]
            [--user=USERID] [--group=GROUPID] [--id-prefix=PREFIX]
            [--prefetch] [--hold-time=SECONDS] [--help] [--usage]
            [--version] [--] [MANDOS_CLIENT [OPTION...]]
`;

const options = {
  "agent-directory": { type: "string", short: "d" },
  "helper-directory": { type: "string" },
  user: { type: "string", short: "u" },
  group: { type: "string", short: "g" },
  "id-prefix": { type: "string", multiple: true },
  prefetch: { type: "boolean" },
  "hold-time": { type: "string" },
  help: { type: "boolean", short: "?" },
  usage: { type: "boolean" },
  version: { type: "boolean", short: "V" },
} as const;

/** Options that take their value from the next word when not given inline. */
const takesValue = new Set(["--agent-directory", "--helper-directory", "--user", "--group", "--id-prefix", "--hold-time", "-d", "-u", "-g"]);

/** Index where the client's command line starts, and whether "--" preceded it. */
function splitPoint(argv: readonly string[]): { at: number; dashes: boolean } {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") return { at: i + 1, dashes: true };
    if (arg.startsWith("-") && arg !== "-") {
      if (takesValue.has(arg)) i++;
      continue;
    }
    return { at: i, dashes: false };
  }
  return { at: argv.length, dashes: false };
}

/** A user or group ID: a decimal number a process can switch to (not -1). */
export function parseId(option: string, value: string): number {
  if (!/^[0-9]{1,10}$/.test(value) || Number(value) > 0xfffffffe) {
    throw new UsageError(`--${option}: not a numeric ID: ${JSON.stringify(value)}`);
  }
  return Number(value);
}

function parseHoldTime(value: string): number {
  if (!/^[0-9]{1,6}$/.test(value) || Number(value) < 1 || Number(value) > MAX_HOLD_SECONDS) {
    throw new UsageError(`--hold-time: not a number of seconds from 1 to ${MAX_HOLD_SECONDS}: ${JSON.stringify(value)}`);
  }
  return Number(value) * 1000;
}

/** Parse argv (without node and script); throws UsageError with a one-line message. */
export function parseAgentArguments(argv: readonly string[]): Invocation {
  const { at, dashes } = splitPoint(argv);
  const ours = argv.slice(0, dashes ? at - 1 : at);
  let parsed;
  try {
    parsed = parseArgs({ args: ours, options, allowPositionals: false, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]!);
  }
  const v = parsed.values;
  if (v.help) return { kind: "help" };
  if (v.usage) return { kind: "usage" };
  if (v.version) return { kind: "version" };
  for (const name of ["agent-directory", "helper-directory"] as const) {
    if (v[name] === "") throw new UsageError(`--${name}: empty directory name`);
  }
  const client = argv.slice(at);
  if (client.length === 0) client.push(DEFAULT_MANDOS_CLIENT);
  if (client[0] === "") throw new UsageError("empty MANDOS_CLIENT name");
  return {
    kind: "run",
    options: {
      agentDirectory: v["agent-directory"] ?? DEFAULT_AGENT_DIRECTORY,
      helperDirectory: v["helper-directory"] ?? DEFAULT_HELPER_DIRECTORY,
      user: v.user === undefined ? NOBODY : parseId("user", v.user),
      group: v.group === undefined ? NOBODY : parseId("group", v.group),
      idPrefixes: v["id-prefix"] ? [...v["id-prefix"]] : [...DEFAULT_ID_PREFIXES],
      client,
      prefetch: v.prefetch === true,
      holdMs: v["hold-time"] === undefined ? DEFAULT_HOLD_SECONDS * 1000 : parseHoldTime(v["hold-time"]),
    },
  };
}
