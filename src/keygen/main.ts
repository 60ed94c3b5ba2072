// mandos-keygen: make a Mandos client's keys, or a clients.conf section
// holding its encrypted password. Options and files as Debian's.
import { execFileSync } from "node:child_process";
import { statSync } from "node:fs";
import { hostname } from "node:os";
import { VERSION } from "../cli/args.js";
import { errorMessage, makeLogger } from "../cli/log.js";
import { DEFAULT_KEYDIR, FALLBACK_KEYDIR, USAGE, parseKeygenArgs } from "./options.js";
import { makeKeys, makePasswordSection } from "./run.js";
import { protectMemory } from "../sys/no-core.js";
import { findSshHostKey, keyscanner } from "./ssh.js";

const log = makeLogger("mandos-keygen");

function defaultDir(): string {
  try {
    if (statSync(DEFAULT_KEYDIR).isDirectory()) return DEFAULT_KEYDIR;
  } catch {
    // fall through
  }
  return FALLBACK_KEYDIR;
}

/** The fully qualified host name if the resolver knows it, else the plain one. */
function defaultName(): string {
  try {
    const fqdn = execFileSync("hostname", ["--fqdn"], { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] }).trim();
    if (fqdn) return fqdn;
  } catch {
    // no hostname(1), or no FQDN: use the kernel's name
  }
  return hostname();
}

async function main(): Promise<number> {
  const command = parseKeygenArgs(process.argv.slice(2), { dir: defaultDir(), name: defaultName });
  if (command.mode === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command.mode === "version") {
    process.stdout.write(`mandos-keygen ${VERSION}\n`);
    return 0;
  }
  // Private keys and the password pass through our memory.
  protectMemory();
  const io = {
    stdin: process.stdin,
    stdout: process.stdout,
    warn: (msg: string) => log.warning(msg),
    now: () => new Date(),
    findSshHostKey: () => findSshHostKey(keyscanner()),
  };
  if (command.mode === "keygen") await makeKeys(command, io);
  else await makePasswordSection(command, io);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Every expected failure is a one-line message; never a stack trace.
    const msg = errorMessage(err);
    log.error(msg);
    process.exitCode = msg === "interrupted" ? 130 : 1;
  },
);
