// Keys and k-of-n clients.conf sections made by our own mandos-keygen, for
// tests of keygen, client and boot.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, run } from "./index.js";
import { sectionSecret, startDebianServer } from "./debian-peer.js";
import { serverWritableDir, startServer, writeConfig } from "./server.js";
import { OUR_CLIENT, keyArgs } from "./client.js";
import { decryptSecret, encryptSecret, loadDecryptionKeys } from "../../src/pgp/index.js";
import { secretLines } from "../../src/keygen/section.js";
import { HEADER_BYTES } from "../../src/shares/index.js";

const KEYGEN = join(BIN, "mandos-keygen");

/** Split clients.conf text into its sections (each starting at "[NAME]"). */
export function splitSections(text: string): string[] {
  return text.split(/^(?=\[)/m).filter((s) => s.startsWith("["));
}

/** Fresh keys from our keygen in DIR/keys. */
export async function ourKeys(dir: string): Promise<string> {
  const keys = join(dir, "keys");
  mkdirSync(keys);
  const made = await run(process.execPath, [KEYGEN, "--dir", keys], { timeoutMs: 60_000 });
  assert.equal(made.code, 0, made.stderr);
  return keys;
}

/** Our keygen's output for `password` split K-of-N for `keys`, and its sections. */
export async function shareSections(keys: string, password: string, k: number, n: number, name = "kofn"): Promise<{ sections: string[]; text: string }> {
  const passfile = join(keys, "..", `pass-${process.hrtime.bigint()}`);
  writeFileSync(passfile, password, { mode: 0o600 });
  let r;
  try {
    r = await run(
      process.execPath,
      [KEYGEN, "--dir", keys, "--passfile", passfile, "--name", name, "--no-ssh", "--threshold", String(k), "--shares", String(n)],
      { timeoutMs: 60_000 },
    );
  } finally {
    rmSync(passfile, { force: true });
  }
  assert.equal(r.code, 0, r.stderr);
  const text = r.stdout.toString();
  return { sections: splitSections(text), text };
}

/** Keys in a fresh directory and `password` split K-of-N by our keygen. */
export async function keysAndShares(dir: string, password: string, k: number, n: number, name = "kofn"): Promise<{ keys: string; sections: string[]; text: string }> {
  const keys = await ourKeys(dir);
  return { keys, ...(await shareSections(keys, password, k, n, name)) };
}

/** The section with its secret replaced (continuation lines as keygen prints them). */
export function withSecret(section: string, secret: Uint8Array): string {
  const lines = section.split("\n");
  const start = lines.findIndex((l) => l === "secret =");
  let end = start + 1;
  while (end < lines.length && lines[end]!.startsWith("    ")) end++;
  return [...lines.slice(0, start + 1), ...secretLines(secret), ...lines.slice(end)].join("\n");
}

/** A copy of a share section whose share has one byte of its y part flipped (still valid OpenPGP). */
export async function corruptedShareSection(keys: string, section: string): Promise<string> {
  const pub = readFileSync(join(keys, "pubkey.txt"));
  const sec = readFileSync(join(keys, "seckey.txt"));
  const share = await decryptSecret(sectionSecret(section), await loadDecryptionKeys(pub, sec));
  share[HEADER_BYTES + 2]! ^= 0x01;
  return withSecret(section, await encryptSecret(share, pub, { signingKeyArmored: sec }));
}

export interface ShareServer {
  kind: "ours" | "debian";
  port: number;
  log(): string;
  stop(): Promise<void>;
}

/**
 * A server on [::1]:port holding one section: our mandos or Debian's 1.8
 * (with `dbus`, on a private bus, for mandos-ctl).
 */
export async function startShareServer(
  kind: "ours" | "debian",
  dir: string,
  section: string,
  port: number,
  opts: { dbus?: boolean } = {},
): Promise<ShareServer & { busAddress?: string }> {
  if (kind === "debian") {
    const s = await startDebianServer({ clientsConf: section, port, dbus: opts.dbus ?? false });
    return { kind, port, log: () => s.log(), stop: () => s.stop(), busAddress: s.busAddress };
  }
  mkdirSync(dir, { recursive: true });
  const configDir = writeConfig(join(dir, "conf"), { clients: section, port });
  const s = await startServer({ configDir, stateDir: serverWritableDir(join(dir, "state")), env: process.env, args: ["--no-dbus"] });
  return { kind, port, log: () => s.output(), stop: () => s.stop() };
}

export interface LiveClient {
  stderr(): string;
  result: Promise<{ code: number | null; stdout: Buffer; stderr: string }>;
  running(): boolean;
  kill(): void;
}

/** Our mandos-client with every port as a --connect, watched while it runs. */
export function startOurClient(keys: string, ports: number[], extra: string[] = []): LiveClient {
  const args = [...ports.flatMap((p) => ["--connect", `[::1]:${p}`]), "--interface", "none", ...keyArgs(keys), ...extra];
  const child = spawn(OUR_CLIENT, args, { stdio: ["ignore", "pipe", "pipe"] });
  const out: Buffer[] = [];
  let err = "";
  let done = false;
  child.stdout!.on("data", (d: Buffer) => out.push(d));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const result = new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) =>
    child.on("close", (code) => {
      done = true;
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    }),
  );
  return { stderr: () => err, result, running: () => !done, kill: () => void (done || child.kill("SIGKILL")) };
}
