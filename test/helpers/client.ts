// Running our mandos-client against a server on loopback, with key sets
// made by our keygen or Debian's.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { BIN, run, type RunResult } from "./index.js";
import { DEBIAN_KEYGEN, debianPeer } from "./debian-peer.js";

export const OUR_CLIENT = join(BIN, "mandos-client");
export const OUR_KEYGEN = join(BIN, "mandos-keygen");

export function keyArgs(dir: string): string[] {
  return [
    "--pubkey", join(dir, "pubkey.txt"),
    "--seckey", join(dir, "seckey.txt"),
    "--tls-pubkey", join(dir, "tls-pubkey.pem"),
    "--tls-privkey", join(dir, "tls-privkey.pem"),
  ];
}

const keygen = (by: "ours" | "debian") => (by === "ours" ? OUR_KEYGEN : debianPeer(DEBIAN_KEYGEN));

/** Keys by our keygen (default types) or by Debian's (RSA-4096 OpenPGP). */
export function makeKeys(dir: string, by: "ours" | "debian"): string {
  mkdirSync(dir, { recursive: true });
  execFileSync(keygen(by), ["--dir", dir, "--force"], { stdio: "ignore" });
  return dir;
}

/** A clients.conf section for `dir`'s keys, made by the same keygen. */
export function passwordSection(dir: string, by: "ours" | "debian", name: string, passfile: string): string {
  return execFileSync(keygen(by), ["--dir", dir, "--passfile", passfile, "--name", name, "--no-ssh"], {
    stdio: ["ignore", "pipe", "ignore"],
  }).toString();
}

export function runOurClient(keysDir: string, address: string, port: number, extra: string[] = [], timeoutMs = 30_000): Promise<RunResult> {
  return run(OUR_CLIENT, ["--connect", `${address}:${port}`, "--interface", "none", ...keyArgs(keysDir), ...extra], { timeoutMs });
}
