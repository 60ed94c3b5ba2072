// The server's start-up: its steps on their own, and as a real process run
// as root, which refuses a state directory it could not save to once it has
// given up root, and runs checkers as checker_user (by default nobody), not
// as its own user.
import { readProcStatus } from "../../src/sys/proc-status.js";
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, requires, run, tempDir } from "../helpers/index.js";
import { oneClientConf, serverWritableDir, startServer, waitFor, writeConfig } from "../helpers/server.js";
import { unprivilegedIdentity } from "../../src/server/privileges.js";
import { parseServerArgs } from "../../src/server/options.js";
import { activationSocket, readSettings, stateDirectoryProblem } from "../../src/server/startup.js";
import { UsageError } from "../../src/cli/args.js";

const asRoot = requires({ root: true });

test("a state directory the server's user cannot write: one line naming it and the user, exit 1", { skip: asRoot, timeout: 30_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  const configDir = writeConfig(join(dir.path, "conf"), { clients: oneClientConf("true"), port: 0 });
  // Root's, 0700: the server can read it before it gives up root, not write it after.
  const stateDir = join(dir.path, "state");
  mkdirSync(stateDir, { mode: 0o700 });
  const r = await run(process.execPath, [join(BIN, "mandos"), "--debug", "--no-dbus", "--configdir", configDir, "--statedir", stateDir], { timeoutMs: 15_000 });
  const who = unprivilegedIdentity();
  const errors = r.stderr.split("\n").filter((l) => / error: /.test(l));
  assert.deepEqual(errors, [`mandos: error: the state directory ${stateDir} is not writable by user ${who.user} (uid ${who.uid}): EACCES`], r.stderr);
  assert.equal(r.code, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /Now listening/);
});

test("state directory check: null when writable, else one line naming the directory, the user and the errno", () => {
  assert.equal(stateDirectoryProblem("/x", () => {}), null);
  const denied = stateDirectoryProblem("/var/lib/mandos", () => {
    throw Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
  });
  assert.match(denied!, /^the state directory \/var\/lib\/mandos is not writable by user \S+ \(uid \d+\): EACCES$/);
});

/** Start a server whose checker records who runs it; returns the line and the server's uid. */
async function checkerIds(dir: string, extra = ""): Promise<{ ids: string; serverUid: number }> {
  mkdirSync(dir, { mode: 0o755 });
  const out = join(dir, "out");
  // Writable by whoever the checker runs as.
  mkdirSync(out, { mode: 0o777 });
  chmodSync(out, 0o777);
  const configDir = writeConfig(join(dir, "conf"), { clients: oneClientConf(`echo "$(id -u) $(id -g) $(id -G)" > ${out}/ids`), port: 0, extra });
  const server = await startServer({ configDir, stateDir: serverWritableDir(join(dir, "state")), env: process.env, args: ["--no-dbus"] });
  try {
    // The line comes once the server has seen the checker exit, after it wrote the file.
    await waitFor("the first checker's success", () => /Checker for one succeeded/.test(server.output()), 10_000);
    return { ids: readFileSync(join(out, "ids"), "utf8").trim(), serverUid: readProcStatus(server.proc.pid!).uids[0] };
  } finally {
    await server.stop();
  }
}

test("checkers run as checker_user, nobody by default, never as the server's user", { skip: asRoot, timeout: 60_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  const byDefault = await checkerIds(join(dir.path, "default"));
  assert.equal(byDefault.ids, "65534 65534 65534", "uid, gid and the only group of nobody");
  assert.notEqual(byDefault.serverUid, 65534, "the server itself runs as another user");
  assert.equal(byDefault.serverUid, unprivilegedIdentity().uid);
  const configured = await checkerIds(join(dir.path, "daemon"), "checker_user = daemon\n");
  assert.equal(configured.ids, "1 1 1", "uid, gid and the only group of daemon");
});

test("checker_user naming root or no user stops the start with one line", { skip: asRoot, timeout: 30_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  for (const [user, reason] of [
    ["root", 'checker_user: "root" is root; checkers must run unprivileged'],
    ["no-such-user", 'checker_user: no user "no-such-user" in /etc/passwd'],
  ]) {
    const configDir = writeConfig(join(dir.path, user), { clients: oneClientConf("true"), port: 0, extra: `checker_user = ${user}\n` });
    const r = await run(process.execPath, [join(BIN, "mandos"), "--debug", "--no-dbus", "--configdir", configDir, "--statedir", serverWritableDir(join(dir.path, `${user}-state`))], { timeoutMs: 15_000 });
    assert.equal(r.code, 1, r.stderr);
    const errors = r.stderr.split("\n").filter((l) => / error: /.test(l));
    assert.deepEqual(errors, [`mandos: error: ${join(configDir, "mandos.conf")}: ${reason}`]);
  }
});

test("activationSocket: fd 3 only when systemd passed it to this process; the variables never reach checkers", () => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: String(process.pid), LISTEN_FDS: "1", LISTEN_FDNAMES: "mandos.socket" };
  assert.equal(activationSocket(env), 3);
  assert.deepEqual(env, {});
  assert.equal(activationSocket({ LISTEN_PID: "1", LISTEN_FDS: "1" }), null, "another process's sockets");
  assert.equal(activationSocket({}), null);
});

test("readSettings: the command line over mandos.conf, and the log level they give", () => {
  using dir = tempDir();
  writeConfig(dir.path, { clients: "", port: 1025, extra: "debuglevel = INFO\n" });
  const { settings, level } = readSettings(parseServerArgs(["--configdir", dir.path, "--servicename", "Test"]));
  assert.equal(settings.port, 1025);
  assert.equal(settings.address, "::1");
  assert.equal(settings.servicename, "Test");
  assert.equal(level, "info");
  assert.equal(readSettings(parseServerArgs(["--configdir", dir.path, "--debug"])).level, "debug");
  writeConfig(dir.path, { clients: "", port: 1025, extra: "debuglevel = LOUD\n" });
  assert.throws(() => readSettings(parseServerArgs(["--configdir", dir.path])), /unknown debug level "LOUD"/);
});

test("readSettings: GnuTLS checks the priority string; a bad one is one line naming mandos.conf, or --priority", () => {
  using dir = tempDir();
  writeConfig(dir.path, { clients: "", port: 1025, extra: "priority = NORMAL:+NO-SUCH-THING\n" });
  assert.throws(
    () => readSettings(parseServerArgs(["--configdir", dir.path])),
    (e: Error) => e.message.startsWith(`${join(dir.path, "mandos.conf")}: priority: bad priority string "NORMAL:+NO-SUCH-THING": `) && !e.message.includes("\n"),
  );
  assert.equal(readSettings(parseServerArgs(["--configdir", dir.path, "--priority", "NORMAL"])).settings.priority, "NORMAL");
  writeConfig(dir.path, { clients: "", port: 1025 });
  assert.throws(
    () => readSettings(parseServerArgs(["--configdir", dir.path, "--priority", "BANANA"])),
    (e: Error) => e instanceof UsageError && /^--priority: bad priority string "BANANA": /.test(e.message),
  );
});

test("a bad priority in mandos.conf stops the start with one line, exit 1", { skip: asRoot, timeout: 30_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  const configDir = writeConfig(join(dir.path, "conf"), { clients: oneClientConf("true"), port: 0, extra: "priority = BANANA\n" });
  const r = await run(process.execPath, [join(BIN, "mandos"), "--debug", "--no-dbus", "--configdir", configDir, "--statedir", serverWritableDir(join(dir.path, "state"))], { timeoutMs: 15_000 });
  assert.equal(r.code, 1, r.stderr);
  const errors = r.stderr.split("\n").filter((l) => / error: /.test(l));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0]!, new RegExp(`^mandos: error: ${join(configDir, "mandos.conf")}: priority: bad priority string "BANANA": `));
});
