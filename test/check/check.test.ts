// mandos-check against the real things: an initramfs built here by real
// dracut with our module (once for the file), a LUKS2 volume in a file,
// our server on loopback, and the client the check runs as root (it drops
// to user 65534 for the network part, as it always does). The system's
// paths are a directory of the test's own: boot/ with the image,
// vmlinuz, etc/crypttab and the kernel command line, which tells the
// initramfs's generator where the server is.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, requires, run, tempDir, type RunResult } from "../helpers/index.js";
import { makeKeys, passwordSection } from "../helpers/client.js";
import { dracutKernel, dracutRig, installStaged, needsBuild, type Staged } from "../helpers/integration.js";
import { serverWritableDir, startServer, writeConfig, type RunningServer } from "../helpers/server.js";
import { shareSections } from "../helpers/shares.js";

const KVER = dracutKernel();
const skip =
  needsBuild() ||
  requires({
    root: true,
    commands: ["dracut", "lsinitrd", "cryptsetup", "unshare", "mount", "truncate"],
    files: ["/usr/lib/dracut", "/etc/keys/mandos", "/etc/mandos/network-hooks.d"],
  }) ||
  (KVER === null && "needs a kernel with modules in /lib/modules (apt-get install linux-image-amd64)");

const PASSWORD = "correct horse battery staple";

let work: ReturnType<typeof tempDir>;
let staged: Staged;
let sys: string;
let keys: string;
let otherKeys: string;
let volume: string;
let build: ReturnType<typeof dracutRig>;

before(async () => {
  if (skip) return;
  work = tempDir("mandos-check-");
  staged = await installStaged();
  const w = work.path;
  keys = makeKeys(join(w, "keys"), "ours");
  otherKeys = makeKeys(join(w, "other-keys"), "ours");
  sys = join(w, "sys");
  volume = join(w, "root.luks");
  assert.equal((await run("truncate", ["-s", "20M", volume])).code, 0);
  const format = await run(
    "cryptsetup",
    ["luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file=-", volume],
    { input: PASSWORD, timeoutMs: 60_000 },
  );
  assert.equal(format.code, 0, format.stderr);
  build = dracutRig(w, staged.path, KVER!);
  await makeSystem(sys);

});

/** A system directory: its boot/ with an image of our module (with an administrator's drop-in, if given), its crypttab. */
async function makeSystem(dir: string, dropIn?: string): Promise<void> {
  mkdirSync(join(dir, "boot"), { recursive: true });
  mkdirSync(join(dir, "etc"));
  symlinkSync(`boot/vmlinuz-${KVER}`, join(dir, "vmlinuz"));
  const made = await build(keys, `--hostonly --omit "plymouth mandos" --add "systemd mandos-ts" "${join(dir, "boot", `initrd.img-${KVER}`)}"`, undefined, dropIn);
  assert.equal(made.code, 0, made.stderr.slice(-4000));
  writeFileSync(join(dir, "etc", "crypttab"), `# <target> <source> <key file> <options>\nroot ${volume} none luks,initramfs\nswap /dev/null /dev/urandom swap\n`);
}

after(() => {
  if (skip) return;
  staged?.cleanup();
  work?.cleanup();
});

/** Our server on ::1 whose clients.conf holds `section` (made for a key set by our keygen). */
async function serverWith(name: string, clients: string): Promise<RunningServer> {
  const dir = serverWritableDir(join(work.path, name));
  return startServer({
    configDir: writeConfig(join(dir, "conf"), { clients, port: 0, extra: "use_dbus = False\n" }),
    stateDir: serverWritableDir(join(dir, "state")),
    env: process.env,
    args: ["--no-dbus"],
  });
}

function section(keyDir: string, name: string, secret: string, extra = ""): string {
  const passfile = join(work.path, `${name}.pass`);
  writeFileSync(passfile, secret);
  return passwordSection(keyDir, "ours", name, passfile) + extra;
}

/** mandos-check on a system directory (the test's own by default), the kernel command line pointing at `port`. */
function check(port: number, keyDir = keys, system = sys, wait = 20): Promise<RunResult> {
  writeFileSync(join(system, "cmdline"), `BOOT_IMAGE=/vmlinuz-${KVER} root=/dev/mapper/root ro mandos=connect:::1:${port},interface:none\n`);
  return run(
    process.execPath,
    [join(BIN, "mandos-check"), `--key-dir=${keyDir}`, `--crypttab=${join(system, "etc", "crypttab")}`, `--boot-dir=${join(system, "boot")}`,
      `--cmdline=${join(system, "cmdline")}`, `--kernel-release=${KVER}`, `--wait=${wait}`],
    { timeoutMs: 90_000 },
  );
}

async function withServer(name: string, clients: string, fn: (server: RunningServer) => Promise<void>): Promise<void> {
  const server = await serverWith(name, clients);
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

const lines = (r: RunResult) => r.stdout.toString().trimEnd().split("\n");
const verdictOf = (r: RunResult) => lines(r).at(-1)!;

test("mandos-check: the server gives the secret and it opens the volume: exit 0", { skip, timeout: 120_000 }, async (t) => {
  await withServer("ok", section(keys, "client", PASSWORD), async (server) => {
    const r = await check(server.port);
    const out = r.stdout.toString();
    t.diagnostic(out);
    assert.equal(r.code, 0, `${out}\n${r.stderr}`);
    assert.match(out, new RegExp(`^initramfs ${join(sys, "boot")}/initrd.img-${KVER} \\(running kernel, default boot entry\\): module mandos-ts, its units and generator present; same keys$`, "m"));
    assert.match(out, new RegExp(`^client options: .*--connect=::1:${server.port} --interface=none$`, "m"));
    assert.match(out, new RegExp(`^server \\[::1\\]:${server.port}: found; handshake done; secret decrypts; opens root \\(${volume}\\)$`, "m"));
    assert.equal(verdictOf(r), "verdict: this machine would unlock unattended if it rebooted now");
    assert.ok(!out.includes(PASSWORD) && !r.stderr.includes(PASSWORD), "the password is never printed");
  });
});

test("mandos-check: keys in the initramfs differ from the keys on disk: exit 3", { skip, timeout: 120_000 }, async () => {
  await withServer("keys", section(otherKeys, "client", PASSWORD), async (server) => {
    const r = await check(server.port, otherKeys);
    assert.equal(r.code, 3, `${r.stdout}\n${r.stderr}`);
    assert.match(verdictOf(r), /^verdict: this machine would NOT unlock unattended: initramfs .*initrd\.img-.*: its keys differ from .*other-keys: key id [0-9A-F]{64}, OpenPGP fingerprint [0-9A-F]{40} in the image; rebuild it/);
  });
});

test("mandos-check: the server does not know the client: exit 4", { skip, timeout: 120_000 }, async (t) => {
  await withServer("unknown", section(otherKeys, "someone-else", PASSWORD), async (server) => {
    const r = await check(server.port);
    t.diagnostic(r.stdout.toString());
    assert.equal(r.code, 4, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout.toString(), new RegExp(`^server \\[::1\\]:${server.port}: found; handshake done; no secret: the server does not know this client \\(key id [0-9A-F]{64}\\) or has it disabled$`, "m"));
    assert.match(verdictOf(r), /^verdict: this machine would NOT unlock unattended: servers: no server gave a secret that decrypts \(server .*: no secret: the server does not know this client/);
  });
});

test("mandos-check: the client is disabled on the server: exit 4", { skip, timeout: 120_000 }, async () => {
  await withServer("disabled", section(keys, "client", PASSWORD, "enabled = no\n"), async (server) => {
    const r = await check(server.port);
    assert.equal(r.code, 4, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout.toString(), /^server \[::1\]:\d+: found; handshake done; no secret: the server does not know this client \(key id [0-9A-F]{64}\) or has it disabled$/m);
    assert.match(verdictOf(r), /^verdict: this machine would NOT unlock unattended: servers: /);
  });
});

test("mandos-check: the secret does not open the volume: exit 5", { skip, timeout: 120_000 }, async () => {
  await withServer("wrong", section(keys, "client", "not the disk password"), async (server) => {
    const r = await check(server.port);
    assert.equal(r.code, 5, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout.toString(), new RegExp(`^server \\[::1\\]:${server.port}: found; handshake done; secret decrypts; does not open root \\(${volume}\\): the password does not open it$`, "m"));
    assert.equal(verdictOf(r), `verdict: this machine would NOT unlock unattended: devices: the secret does not open root (${volume}): the password does not open it`);
  });
});

test("mandos-check: k-of-n, 2 of 2: both servers up: exit 0; one of them down: exit 4 within --wait", { skip, timeout: 400_000 }, async (t) => {
  const { sections } = await shareSections(keys, PASSWORD, 2, 2, "client");
  const first = await serverWith("share-1", sections[0]!);
  let second: RunningServer | null = await serverWith("share-2", sections[1]!);
  try {
    // The second server as an administrator gives it without Zeroconf: a drop-in in the image.
    const system = join(work.path, "sys-kofn");
    await makeSystem(system, `[Service]\nEnvironment="MANDOS_CLIENT_OPTIONS=--connect=::1:${second.port}"\n`);
    const both = await check(first.port, keys, system);
    const out = both.stdout.toString();
    t.diagnostic(out);
    assert.equal(both.code, 0, `${out}\n${both.stderr}`);
    for (const port of [first.port, second.port]) {
      assert.match(out, new RegExp(`^server \\[::1\\]:${port}: found; handshake done; share \\d+ of 2 decrypts$`, "m"));
    }
    assert.match(out, new RegExp(`^shares: combined into the password; opens root \\(${volume}\\)$`, "m"));
    assert.equal(verdictOf(both), "verdict: this machine would unlock unattended if it rebooted now");

    const secondPort = second.port;
    await second.stop();
    second = null;
    const started = Date.now();
    const one = await check(first.port, keys, system, 8);
    const elapsed = Date.now() - started;
    const text = one.stdout.toString();
    t.diagnostic(text);
    assert.equal(one.code, 4, `${text}\n${one.stderr}`);
    assert.ok(elapsed < 30_000, `took ${elapsed} ms with --wait=8`);
    assert.match(text, new RegExp(`^server \\[::1\\]:${first.port}: found; handshake done; share \\d+ of 2 decrypts$`, "m"));
    assert.match(text, new RegExp(`^server \\[::1\\]:${secondPort}: found; cannot connect`, "m"));
    assert.equal(verdictOf(one), "verdict: this machine would NOT unlock unattended: servers: shares from 1 server(s) decrypt, 2 needed; no password within 8 s");
    for (const r of [both, one]) assert.ok(!r.stdout.includes(PASSWORD) && !r.stderr.includes(PASSWORD), "the password is never printed");
  } finally {
    await first.stop();
    await second?.stop();
  }
});
