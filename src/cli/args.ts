// Command-line parsing shared by every program: GNU-style long options
// (--opt=value and --opt value), --help and --version handled uniformly.
import { parseArgs, type ParseArgsConfig } from "node:util";

export const VERSION = "1.8.16-ts0.1";

export class UsageError extends Error {}

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export interface ProgramInfo {
  name: string;
  usage: string; // full --help text
  /** Short letter for --version, where the program's Mandos original has one. */
  versionShort?: string;
}

/**
 * Parse argv; prints help/version and exits for those; throws UsageError
 * (with a one-line message) for unknown or malformed options.
 */
export function parseCommandLine<T extends OptionSpec>(
  info: ProgramInfo,
  options: T,
  argv: string[] = process.argv.slice(2),
  allowPositionals = false,
) {
  const all = {
    ...options,
    help: { type: "boolean", short: "?" },
    version: { type: "boolean", ...(info.versionShort ? { short: info.versionShort } : {}) },
  } as const satisfies OptionSpec;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: all, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]);
  }
  const flags = parsed.values as { help?: boolean; version?: boolean };
  if (flags.help) {
    process.stdout.write(info.usage.endsWith("\n") ? info.usage : info.usage + "\n");
    process.exit(0);
  }
  if (flags.version) {
    process.stdout.write(`${info.name} ${VERSION}\n`);
    process.exit(0);
  }
  return parsed;
}

/** Parse a number option, naming the option in the error. */
export function numberOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || value.trim() === "") {
    throw new UsageError(`--${name}: not a number: ${JSON.stringify(value)}`);
  }
  return n;
}
