// `npm run demo`: the whole chain on this machine, with real parts.
// Keys from our keygen; our server on loopback with a private system bus;
// a real systemd-ask-password question in a private mount namespace; our
// password agent answering it with what our mandos-client fetched; and a
// LUKS2 test volume whose passphrase check then succeeds.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startBus } from "../test/helpers/server.js";
import { unprivilegedIdentity } from "../src/server/privileges.js";
import { unreachableReason } from "../src/agent/reach.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CHECKOUT_BIN = join(ROOT, "bin");
const isRoot = process.getuid?.() === 0;
const children: ChildProcess[] = [];
let step = 0;

const say = (text: string) => console.log(`\n[${++step}] ${text}`);
const detail = (text: string) => console.log(`    ${text.replace(/\n/g, "\n    ")}`);

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

function ensurePackages(): void {
  const needed: [string, string][] = [
    ["cryptsetup", "cryptsetup-bin"],
    ["systemd-ask-password", "systemd"],
    ["dbus-daemon", "dbus"],
    ["unshare", "util-linux"],
  ];
  const missing = needed.filter(([cmd]) => !have(cmd)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  if (!isRoot) throw new Error(`missing ${missing.join(", ")}: install them or run as root`);
  say(`Installing ${missing.join(", ")} with apt-get`);
  execFileSync("apt-get", ["update", "-q"], { stdio: "ignore" });
  execFileSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

/** Start a program, wait for a line matching `ready` on its stderr; resolves with the match. */
function startAndWait(cmd: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = process.env): Promise<RegExpMatchArray> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], env });
    children.push(child);
    let err = "";
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${err}`)), 20_000);
    child.stderr!.on("data", (d: Buffer) => {
      err += d;
      const m = ready.exec(err);
      if (m) {
        clearTimeout(timer);
        resolvePromise(m);
      }
    });
    child.on("exit", (code) => reject(new Error(`${cmd} exited (${code}): ${err}`)));
  });
}

/**
 * The programs' directory, where the unprivileged users the server and the
 * agent's client run as can read it: the checkout itself, or (a clone in
 * root's 0700 home) a copy of what the programs need in `work`, as an
 * installed system has them under /usr/lib.
 */
function programsFor(work: string, uid: number): string {
  const who = { uid, gids: [uid] };
  const reason =
    unreachableReason(join(CHECKOUT_BIN, "mandos-client"), who, { read: true, execute: true }) ??
    unreachableReason(join(ROOT, "dist/boot/mandos-client.cjs"), who, { read: true }) ??
    unreachableReason(join(ROOT, "dist/src/client/main.js"), who, { read: true });
  if (reason === null) return CHECKOUT_BIN;
  const copy = join(work, "programs");
  detail(`user ${uid} cannot read the checkout (${reason}): using a copy of the programs in ${copy}`);
  for (const part of ["bin", "dist/src", "dist/boot", "package.json"]) cpSync(join(ROOT, part), join(copy, part), { recursive: true });
  cpSync(join(ROOT, "node_modules"), join(copy, "node_modules"), {
    recursive: true,
    filter: (src) => !/\/node_modules\/(typescript|@types|esbuild|@esbuild)(\/|$)/.test(src), // build-time only
  });
  return join(copy, "bin");
}

async function main(): Promise<void> {
  ensurePackages();
  const work = mkdtempSync(join(tmpdir(), "mandos-demo-"));
  chmodSync(work, 0o755); // the unprivileged server and client must reach their files
  process.on("exit", () => rmSync(work, { recursive: true, force: true }));
  const bin = isRoot ? programsFor(work, 65534) : CHECKOUT_BIN;
  const keys = join(work, "keys");
  const conf = join(work, "etc");
  mkdirSync(keys);
  mkdirSync(conf);

  say("Client keys from our mandos-keygen (Ed25519 OpenPGP + Ed25519 TLS raw key)");
  execFileSync(join(bin, "mandos-keygen"), ["--dir", keys, "--force"]);
  detail(execFileSync("ls", ["-l", keys], { encoding: "utf8" }).trim());

  say("A random disk password, encrypted to the client's key, as a clients.conf section");
  const password = randomBytes(18).toString("base64");
  const passfile = join(work, "passfile");
  writeFileSync(passfile, password, { mode: 0o600 });
  const section = execFileSync(join(bin, "mandos-keygen"), ["--dir", keys, "--passfile", passfile, "--name", "demo-host", "--no-ssh"], {
    encoding: "utf8",
  });
  // No checker on loopback; a demo client is confirmed by the fetch itself.
  writeFileSync(join(conf, "clients.conf"), section.replace(/^\[demo-host\]\n/m, "[demo-host]\nchecker = true\n"));
  writeFileSync(join(conf, "mandos.conf"), "[DEFAULT]\naddress = ::1\nport = 0\nzeroconf = False\n");
  detail(section.split("\n").slice(0, 5).join("\n") + "\n...");

  say("A LUKS2 test volume (a plain file) with that password");
  const volume = join(work, "volume.img");
  execFileSync("truncate", ["-s", "20M", volume]);
  execFileSync("cryptsetup", ["luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file=-", volume], {
    input: password,
  });
  detail(execFileSync("cryptsetup", ["luksDump", volume], { encoding: "utf8" }).split("\n").slice(0, 3).join("\n"));

  say("Our mandos server on [::1], D-Bus on a private system bus");
  const busDir = join(work, "bus");
  mkdirSync(busDir, { mode: 0o755 });
  // The server drops root to _mandos or mandos where they exist (our
  // policy's users), else to nobody: on a machine with neither, this demo's
  // private bus lets that user own the server's name too.
  const who = unprivilegedIdentity();
  let policy = join(ROOT, "units", "dbus-mandos.conf");
  if (who.user !== "_mandos" && who.user !== "mandos") {
    const text = readFileSync(policy, "utf8");
    const rules = /<policy user="root">([\s\S]*?)<\/policy>/.exec(text)![1]!;
    policy = join(busDir, "demo-policy.conf");
    writeFileSync(policy, text.replace("</busconfig>", `  <policy user="${who.uid}">${rules}</policy>\n</busconfig>`));
  }
  // The same private bus the tests use: Debian's default rules plus the policy.
  const bus = startBus(busDir, policy);
  process.on("exit", () => bus.stop());
  const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: bus.address };
  const state = join(work, "state");
  mkdirSync(state);
  // The server drops root; its state directory must be its own.
  if (isRoot) chownSync(state, who.uid, who.gid);
  const m = await startAndWait(
    join(bin, "mandos"),
    ["--foreground", "--debuglevel", "INFO", "--no-zeroconf", "--configdir", conf, "--statedir", state],
    /port (\d+)/,
    env,
  );
  const port = m[1]!;
  detail(`listening on [::1]:${port}`);
  detail(execFileSync(join(bin, "mandos-ctl"), [], { encoding: "utf8", env }).trim());

  const clientArgs = [
    join(bin, "mandos-client"),
    `--connect=[::1]:${port}`,
    "--interface=none",
    `--pubkey=${keys}/pubkey.txt`,
    `--seckey=${keys}/seckey.txt`,
    `--tls-pubkey=${keys}/tls-pubkey.pem`,
    `--tls-privkey=${keys}/tls-privkey.pem`,
  ];
  let answer: string;
  if (isRoot && have("unshare")) {
    say("systemd-ask-password asks; our password-agent answers with what mandos-client fetched");
    detail("(in a private mount namespace with its own /run/systemd/ask-password)");
    // The agent runs the client as 65534, as in the initramfs: the keys must be its.
    chownSync(keys, 65534, 65534);
    for (const f of ["pubkey.txt", "seckey.txt", "tls-pubkey.pem", "tls-privkey.pem"]) chownSync(join(keys, f), 65534, 65534);
    const script = `
      set -e
      mkdir -p /run/systemd/ask-password
      mount -t tmpfs -o mode=0755 tmpfs /run/systemd/ask-password
      systemd-ask-password --no-tty --id=cryptsetup:demo --timeout=60 "Password for the demo volume:" > "$1/answer" &
      asker=$!
      shift
      "$@" 2>"$ANSWER_DIR/agent.log" &
      agent=$!
      wait $asker
      kill $agent 2>/dev/null || true
    `;
    const r = spawnSync(
      "unshare",
      ["--mount", "--propagation", "private", "sh", "-c", script, "sh", work, join(bin, "password-agent"), "--", ...clientArgs],
      { encoding: "utf8", env: { ...env, ANSWER_DIR: work }, timeout: 90_000 },
    );
    if (r.status !== 0) throw new Error(`the question was not answered: ${r.stderr}`);
    answer = execFileSync("cat", [join(work, "answer")], { encoding: "utf8" }).replace(/\n$/, "");
    detail(`systemd-ask-password printed ${answer.length} characters; the agent logged:`);
    detail(execFileSync("cat", [join(work, "agent.log")], { encoding: "utf8" }).trim() || "(nothing)");
  } else {
    say("Not root: no private mount namespace for systemd-ask-password; our mandos-client alone");
    answer = execFileSync(clientArgs[0]!, clientArgs.slice(1), { encoding: "utf8" });
  }

  say("The answer opens the LUKS2 volume (cryptsetup open --test-passphrase)");
  const check = spawnSync("cryptsetup", ["open", "--test-passphrase", "--key-file=-", volume], { input: answer });
  if (check.status !== 0) throw new Error(`cryptsetup rejected the answer (exit ${check.status})`);
  detail("passphrase accepted: the disk would unlock");

  say("The server saw it: mandos-ctl -v");
  detail(execFileSync(join(bin, "mandos-ctl"), ["-v"], { encoding: "utf8", env }).trim());
  console.log("\nDemo complete.");
}

main()
  .catch((err: unknown) => {
    console.error(`\ndemo failed: ${(err as Error).message}`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) c.kill("SIGTERM");
  });
