// One-line logging to stderr. Callers pass messages that never contain
// secrets or key material; this module only formats and filters by level.

export type Level = "error" | "warning" | "info" | "debug";
const order: Record<Level, number> = { error: 0, warning: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string): void;
  warning(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  readonly debugEnabled: boolean;
}

export function makeLogger(
  program: string,
  opts: { level?: Level; write?: (line: string) => void } = {},
): Logger {
  const max = order[opts.level ?? "info"];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: Level) => (msg: string) => {
    if (order[level] > max) return;
    // Keep every record on one line, whatever the message contains.
    const oneLine = msg.replace(/[\r\n]+/g, " ");
    write(`${program}: ${level === "info" ? "" : level + ": "}${oneLine}\n`);
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
