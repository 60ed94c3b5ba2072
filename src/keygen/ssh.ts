// Finding this host's SSH host key for the clients.conf checker, the way
// Debian's keygen does: ask the local SSH server with ssh-keyscan for each
// key type in turn and take the first answer. With no SSH server (or no
// ssh-keyscan), there is no key and the section gets no checker, so the
// server uses its default checker.
import { spawn } from "node:child_process";
import type { SshHostKey } from "./section.js";

export const SSH_KEY_TYPES = ["ecdsa-sha2-nistp256", "ed25519", "rsa"] as const;

/** Runs `ssh-keyscan -t TYPE HOST`; resolves its stdout ("" on any failure). */
export type KeyScanner = (keytype: string) => Promise<string>;

/** Host key from ssh-keyscan's output for `host`, if it printed one. */
export function parseKeyscan(output: string, host: string): string | undefined {
  for (const line of output.split("\n")) {
    const text = line.trim();
    if (text === "" || text.startsWith("#")) continue;
    if (text.startsWith(host + " ")) return text.slice(host.length + 1).trim();
  }
  return undefined;
}

export async function findSshHostKey(scan: KeyScanner, host = "localhost"): Promise<SshHostKey | undefined> {
  for (const keytype of SSH_KEY_TYPES) {
    const fingerprint = parseKeyscan(await scan(keytype), host);
    if (fingerprint) return { keytype, fingerprint };
  }
  return undefined;
}

/** The real scanner: ssh-keyscan against HOST (port 22), bounded in time. */
export function keyscanner(host = "localhost", timeoutMs = 15_000): KeyScanner {
  return (keytype) =>
    new Promise((resolve) => {
      let out = "";
      let child;
      try {
        child = spawn("ssh-keyscan", ["-t", keytype, host], { stdio: ["ignore", "pipe", "ignore"] });
      } catch {
        return resolve("");
      }
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (d: string) => (out += d));
      child.on("error", () => {
        clearTimeout(timer);
        resolve("");
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve(code === 0 ? out : "");
      });
    });
}
