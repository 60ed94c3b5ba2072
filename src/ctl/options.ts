// mandos-ctl's command line, as Debian's mandos-ctl 1.8.16 takes it:
// options that act on clients are kept in the order given (each becomes a
// command run on every selected client), with the same combination rules.
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { parseDuration } from "../config/index.js";

export const USAGE_LINE =
  "usage: mandos-ctl [-h] [--version] [-a] [-v] [-j] [-e | -d] [-b]\n" +
  "                  [--start-checker | --stop-checker] [-V] [-r] [-c COMMAND]\n" +
  "                  [-t TIME] [--extended-timeout TIME] [-i TIME]\n" +
  "                  [--approve-by-default | --deny-by-default]\n" +
  "                  [--approval-delay TIME] [--approval-duration TIME]\n" +
  "                  [-H STRING] [-s FILENAME] [-A | -D] [--debug] [--check]\n" +
  "                  [client ...]";

export const HELP = `${USAGE_LINE}

Control or query the Mandos server over D-Bus. Without options, list the
clients; actions need client names or --all.

positional arguments:
  client                  names of clients (sections of clients.conf)

options:
  -h, --help              show this help and exit
  --version               show the version and exit
  -a, --all               act on every client
  -v, --verbose           list every property, not just a few
  -j, --dump-json         print the clients' properties as JSON
  -e, --enable            enable the clients
  -d, --disable           disable the clients
  -b, --bump-timeout      restart the timeout, as a successful checker would
  --start-checker         start a checker now
  --stop-checker          stop a running checker
  -V, --is-enabled        exit with 0 if the (one) client is enabled, else 1
  -r, --remove            remove the clients from the server
  -c COMMAND, --checker COMMAND
                          set the checker command
  -t TIME, --timeout TIME set the timeout
  --extended-timeout TIME set the extended timeout
  -i TIME, --interval TIME
                          set the checker interval
  --approve-by-default    approve requests when the approval delay runs out
  --deny-by-default       deny requests when the approval delay runs out
  --approval-delay TIME   set how long a request waits for approval
  --approval-duration TIME
                          set how long one approval lasts
  -H STRING, --host STRING
                          set the host name checkers use
  -s FILENAME, --secret FILENAME
                          set the secret to the contents of FILENAME
  -A, --approve           approve requests waiting now
  -D, --deny              deny requests waiting now
  --debug                 show the D-Bus calls made
  --check                 run the self-tests

TIME is an RFC 3339 duration such as PT5M or P1DT2H. See mandos-ctl(8).`;

export class CtlUsageError extends Error {}

/** One action on each selected client, in command-line order. */
export type Command =
  | { kind: "dump-json" }
  | { kind: "table"; verbose: boolean }
  | { kind: "is-enabled" }
  | { kind: "remove" }
  | { kind: "approve"; value: boolean }
  | { kind: "set"; option: string; property: string; type: "b" | "s" | "t" | "ay"; value: boolean | string | number | Buffer };

export interface CtlArgs {
  commands: Command[];
  clients: string[];
  all: boolean;
  verbose: boolean;
  debug: boolean;
  check: boolean;
  help: boolean;
  version: boolean;
}

const RFC3339_HINT = (s: string) => `Invalid RFC 3339 duration: "${s}" - Parsing as pre-1.6.1 interval instead`;

/**
 * A TIME argument in milliseconds, as mandos-ctl reads it: an RFC 3339
 * duration, or else (with a warning) the pre-1.6.1 form, where every number
 * with an optional unit letter counts ("5m 30s"; a bare number is ms).
 */
export function parseTime(s: string, warn: (msg: string) => void): number {
  if (s.startsWith("P")) {
    try {
      return parseDuration(s);
    } catch {
      // not RFC 3339 after all
    }
  }
  warn(RFC3339_HINT(s));
  const unit: Record<string, number> = { d: 86_400_000, s: 1000, m: 60_000, h: 3_600_000, w: 604_800_000, "": 1 };
  let total = 0;
  for (const m of s.matchAll(/(\d+)([dsmhw]?)/g)) total += Number(m[1]) * unit[m[2]!]!;
  return Math.round(total);
}

interface OptionDef {
  long: string;
  short?: string;
  takesValue?: boolean;
  /** Mutually exclusive group. */
  group?: string;
  make?: (value: string, warn: (msg: string) => void) => Command;
}

const flag = (property: string, value: boolean | string) => (): Command => ({
  kind: "set",
  option: "",
  property,
  type: typeof value === "boolean" ? "b" : "s",
  value,
});
const time = (property: string) => (v: string, warn: (m: string) => void): Command => ({
  kind: "set",
  option: "",
  property,
  type: "t",
  value: parseTime(v, warn),
});

const DEFS: OptionDef[] = [
  { long: "all", short: "a" },
  { long: "verbose", short: "v" },
  { long: "dump-json", short: "j", make: () => ({ kind: "dump-json" }) },
  { long: "enable", short: "e", group: "enable", make: flag("Enabled", true) },
  { long: "disable", short: "d", group: "enable", make: flag("Enabled", false) },
  { long: "bump-timeout", short: "b", make: flag("LastCheckedOK", "") },
  { long: "start-checker", group: "checker", make: flag("CheckerRunning", true) },
  { long: "stop-checker", group: "checker", make: flag("CheckerRunning", false) },
  { long: "is-enabled", short: "V", make: () => ({ kind: "is-enabled" }) },
  { long: "remove", short: "r", make: () => ({ kind: "remove" }) },
  { long: "checker", short: "c", takesValue: true, make: (v) => ({ kind: "set", option: "", property: "Checker", type: "s", value: v }) },
  { long: "timeout", short: "t", takesValue: true, make: time("Timeout") },
  { long: "extended-timeout", takesValue: true, make: time("ExtendedTimeout") },
  { long: "interval", short: "i", takesValue: true, make: time("Interval") },
  { long: "approve-by-default", group: "default", make: flag("ApprovedByDefault", true) },
  { long: "deny-by-default", group: "default", make: flag("ApprovedByDefault", false) },
  { long: "approval-delay", takesValue: true, make: time("ApprovalDelay") },
  { long: "approval-duration", takesValue: true, make: time("ApprovalDuration") },
  { long: "host", short: "H", takesValue: true, make: (v) => ({ kind: "set", option: "", property: "Host", type: "s", value: v }) },
  {
    long: "secret",
    short: "s",
    takesValue: true,
    make: (v) => {
      let data: Buffer;
      try {
        data = readFileSync(v);
      } catch (err) {
        throw new CtlUsageError(`argument -s/--secret: can't open '${v}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      return { kind: "set", option: "", property: "Secret", type: "ay", value: data };
    },
  },
  { long: "approve", short: "A", group: "approve", make: () => ({ kind: "approve", value: true }) },
  { long: "deny", short: "D", group: "approve", make: () => ({ kind: "approve", value: false }) },
  { long: "debug" },
  { long: "check" },
  { long: "help", short: "h" },
  { long: "version" },
];

function displayName(d: OptionDef): string {
  return d.short ? `-${d.short}/--${d.long}` : `--${d.long}`;
}

/** Parse mandos-ctl's arguments; throws CtlUsageError (exit status 2). */
export function parseCtlArgs(argv: readonly string[], warn: (msg: string) => void = () => {}): CtlArgs {
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple: boolean }> = {};
  for (const d of DEFS) {
    options[d.long] = { type: d.takesValue ? "string" : "boolean", multiple: true, ...(d.short ? { short: d.short } : {}) };
  }
  let tokens;
  let positionals: string[];
  try {
    const parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true, tokens: true });
    tokens = parsed.tokens;
    positionals = parsed.positionals;
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0]!;
    const unknown = /Unknown option '([^']+)'/.exec(msg);
    if (unknown) throw new CtlUsageError(`unrecognized arguments: ${unknown[1]}`);
    const missing = /Option '(?:-(\w), )?--([\w-]+) <value>' argument missing/.exec(msg);
    if (missing) {
      const d = DEFS.find((x) => x.long === missing[2]);
      throw new CtlUsageError(`argument ${d ? displayName(d) : `--${missing[2]}`}: expected one argument`);
    }
    throw new CtlUsageError(msg);
  }
  const args: CtlArgs = { commands: [], clients: positionals, all: false, verbose: false, debug: false, check: false, help: false, version: false };
  const groupSeen = new Map<string, OptionDef>();
  for (const t of tokens) {
    if (t.kind !== "option") continue;
    const d = DEFS.find((x) => x.long === t.name)!;
    if (d.group) {
      const other = groupSeen.get(d.group);
      if (other && other !== d) throw new CtlUsageError(`argument ${displayName(d)}: not allowed with argument ${displayName(other)}`);
      groupSeen.set(d.group, d);
    }
    switch (d.long) {
      case "all":
        args.all = true;
        continue;
      case "verbose":
        args.verbose = true;
        continue;
      case "debug":
        args.debug = true;
        continue;
      case "check":
        args.check = true;
        continue;
      case "help":
        args.help = true;
        continue;
      case "version":
        args.version = true;
        continue;
    }
    const cmd = d.make!(t.value ?? "", warn);
    if (cmd.kind === "set") cmd.option = displayName(d);
    args.commands.push(cmd);
  }
  return args;
}

const isAction = (c: Command) => c.kind !== "dump-json" && c.kind !== "table";

/** The combination rules of Debian's mandos-ctl (check_option_syntax). */
export function checkCtlArgs(a: CtlArgs): void {
  const hasAction = a.commands.some(isAction);
  if (hasAction && !(a.clients.length || a.all)) throw new CtlUsageError("Options require clients names or --all.");
  if (a.verbose && hasAction) throw new CtlUsageError("--verbose can only be used alone.");
  if (a.commands.some((c) => c.kind === "dump-json") && (a.verbose || a.commands.length > 1)) {
    throw new CtlUsageError("--dump-json can only be used alone.");
  }
  if (a.all && !hasAction) throw new CtlUsageError("--all requires an action.");
  if (a.commands.some((c) => c.kind === "is-enabled") && a.clients.length > 1) {
    throw new CtlUsageError("--is-enabled requires exactly one client");
  }
  if (
    a.commands.length > 1 &&
    a.commands.some((c) => c.kind === "remove") &&
    !a.commands.some((c) => c.kind === "approve" && !c.value)
  ) {
    throw new CtlUsageError("--remove can only be combined with --deny");
  }
}

/** Commands in the order to run: a --deny after --remove runs before it; no command lists. */
export function commandsToRun(a: CtlArgs): Command[] {
  let cmds = [...a.commands];
  const removeAt = cmds.findIndex((c) => c.kind === "remove");
  if (removeAt >= 0) {
    const before = cmds.slice(0, removeAt);
    const after = cmds.slice(removeAt);
    const denies = after.filter((c) => c.kind === "approve" && !c.value);
    cmds = [...before, ...denies, ...after.filter((c) => !denies.includes(c))];
  }
  if (!cmds.length) cmds.push({ kind: "table", verbose: a.verbose });
  return cmds;
}
