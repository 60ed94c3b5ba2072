// Keys and k-of-n clients.conf sections made by our own mandos-keygen, for
// tests of keygen, client and boot.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, run } from "./index.js";

const KEYGEN = join(BIN, "mandos-keygen");

/** Split clients.conf text into its sections (each starting at "[NAME]"). */
export function splitSections(text: string): string[] {
  return text.split(/^(?=\[)/m).filter((s) => s.startsWith("["));
}

/** Keys in a fresh directory and `count` sections for `password` split K-of-N by our keygen. */
export async function keysAndShares(dir: string, password: string, k: number, n: number, name = "kofn"): Promise<{ keys: string; sections: string[]; text: string }> {
  const keys = join(dir, "keys");
  mkdirSync(keys);
  const made = await run(process.execPath, [KEYGEN, "--dir", keys], { timeoutMs: 60_000 });
  assert.equal(made.code, 0, made.stderr);
  const passfile = join(dir, "pass");
  writeFileSync(passfile, password, { mode: 0o600 });
  const r = await run(
    process.execPath,
    [KEYGEN, "--dir", keys, "--passfile", passfile, "--name", name, "--no-ssh", "--threshold", String(k), "--shares", String(n)],
    { timeoutMs: 60_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const text = r.stdout.toString();
  return { keys, sections: splitSections(text), text };
}
