// Errors from the OpenPGP core carry one-line messages meant for users:
// they name what was wrong (file, key, data) but never include key
// material or decrypted data.
export class PgpError extends Error {
  override name = "PgpError";
}

/** First line of an openpgp.js error, without its "Error ...: " prefixes. */
export function libraryReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const line = text.split("\n")[0] ?? "";
  return line.replace(/^(Error [a-z ]+: )+/i, "").replace(/\.$/, "") || "unknown error";
}
