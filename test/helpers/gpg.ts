// gpg in a throwaway home, to make test secrets independently of our code.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Encrypt `password` to the OpenPGP public key file with real gpg (binary output). */
export function gpgEncrypt(pubkeyFile: string, password: string): Buffer {
  const home = mkdtempSync(join(tmpdir(), "gpg-"));
  try {
    const g = (args: string[], input?: string) =>
      execFileSync("gpg", ["--homedir", home, "--batch", "--quiet", "--no-tty", ...args], {
        input,
        stdio: ["pipe", "pipe", "ignore"],
      });
    g(["--import", pubkeyFile]);
    const fpr = g(["--with-colons", "--list-keys"]).toString().split("\n").find((l) => l.startsWith("fpr:"))!.split(":")[9]!;
    return g(["--trust-model", "always", "--encrypt", "--recipient", fpr], password);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
