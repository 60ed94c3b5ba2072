// One-line logging to stderr. Callers pass messages that never contain
// secrets or key material; this module only formats and filters by level.

export type Level = "error" | "warning" | "info" | "debug";
const order: Record<Level, number> = { error: 0, warning: 1, info: 2, debug: 3 };

/**
 * Structured fields a record may carry besides its message (journald's
 * KEY=value, e.g. MESSAGE_ID, MANDOS_CLIENT). Loggers without structure
 * (stderr, syslog) print the message alone.
 */
export type LogFields = Readonly<Record<string, string>>;

export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warning(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  readonly debugEnabled: boolean;
}

export function makeLogger(
  program: string,
  opts: {
    level?: Level;
    write?: (line: string) => void;
    /** Takes each record instead of `write`, with its fields (a structured log such as journald). */
    record?: (level: Level, message: string, fields: LogFields | undefined) => void;
  } = {},
): Logger {
  const max = order[opts.level ?? "info"];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: Level) => (msg: string, fields?: LogFields) => {
    if (order[level] > max) return;
    // Keep every record on one line, whatever the message contains.
    const oneLine = msg.replace(/[\r\n]+/g, " ");
    if (opts.record) opts.record(level, oneLine, fields);
    else write(`${program}: ${level === "info" ? "" : level + ": "}${oneLine}\n`);
  };
  return {
    error: emit("error"),
    warning: emit("warning"),
    info: emit("info"),
    debug: emit("debug"),
    debugEnabled: max >= order.debug,
  };
}

/** The message of an unknown thrown value, without a stack trace. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
