// Errors from reading Mandos configuration, and the one-line "where"
// prefix every message carries so an administrator can find the problem.

/** A configuration problem; the message is one line and never holds a secret. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * "FILE:LINE: [SECTION] KEY" — the parts that are known. Line 0 means the
 * value is a built-in default, which has no line in the file.
 */
export function locate(file: string, line: number, section?: string | null, key?: string | null): string {
  let out = line > 0 ? `${file}:${line}` : file;
  if (section != null) out += `: [${section}]`;
  if (key != null) out += section != null ? ` ${key}` : `: ${key}`;
  return out;
}

/** Make text safe to embed in a one-line message: quoted, escapes visible. */
export function quote(text: string): string {
  return JSON.stringify(text);
}

/** A short description of a failed file operation, e.g. "no such file or directory". */
export function describeIoError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    case "ENOTDIR":
      return "a parent is not a directory";
    case "ELOOP":
      return "too many symbolic links";
    default:
      if (code) return code;
      return err instanceof Error ? err.message.replace(/[\r\n]+/g, " ") : String(err);
  }
}
