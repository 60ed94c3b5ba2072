// A throwaway GnuPG home for interop tests: gpg (Debian's 2.2) imports,
// encrypts and decrypts there, and its agent is stopped on cleanup.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, type RunResult } from "./index.js";

export interface Gnupg {
  home: string;
  /** Run gpg with --batch in this home; throws with gpg's last lines on failure unless `allowFail`. */
  gpg(args: string[], opts?: { input?: string | Buffer; allowFail?: boolean }): Promise<RunResult>;
  cleanup(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function makeGnupg(): Gnupg {
  const home = mkdtempSync(join(tmpdir(), "gnupg-"));
  const env = { ...process.env, GNUPGHOME: home };
  const gpg: Gnupg["gpg"] = async (args, opts = {}) => {
    const r = await run("gpg", ["--batch", "--no-tty", "--quiet", "--trust-model", "always", ...args], {
      env,
      input: opts.input ?? "",
      timeoutMs: 60_000,
    });
    if (r.code !== 0 && !opts.allowFail) {
      throw new Error(`gpg ${args.join(" ")} failed (${r.code}): ${r.stderr.trim().split("\n").slice(-2).join(" | ")}`);
    }
    return r;
  };
  const cleanup = async () => {
    await run("gpgconf", ["--kill", "all"], { env, timeoutMs: 10_000 }).catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
  };
  return { home, gpg, cleanup, [Symbol.asyncDispose]: cleanup };
}
