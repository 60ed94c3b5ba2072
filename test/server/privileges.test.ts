// The server gives up root once its socket is bound. A drop that fails to
// take effect stops it with one line; only a server that was never root
// goes on, with Mandos's warning.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync } from "node:fs";
import { join } from "node:path";
import { BIN, requires, run, tempDir } from "../helpers/index.js";
import { serverWritableDir, writeConfig } from "../helpers/server.js";
import { unprivilegedIdentity } from "../../src/server/privileges.js";

const skip = requires({ root: true, commands: ["setpriv"] });

/**
 * Run our server (without D-Bus or Zeroconf; its log merged into stdout)
 * under `wrapper` until it exits, or stop it once it listens.
 */
async function serve(dir: string, wrapper: string[], as: { uid: number; gid: number } | null = null) {
  const configDir = writeConfig(join(dir, "conf"), { clients: "", port: 0 });
  chmodSync(join(configDir, "clients.conf"), 0o644);
  const stateDir = serverWritableDir(join(dir, "state"));
  if (as) chownSync(stateDir, as.uid, as.gid);
  const server = [process.execPath, join(BIN, "mandos"), "--debug", "--no-dbus", "--no-zeroconf", "--configdir", configDir, "--statedir", stateDir];
  const r = await run("sh", ["-c", 'exec "$@" 2>&1', "sh", ...wrapper, ...server], {
    ...(as ?? {}),
    timeoutMs: 20_000,
    onLine: (line, pid) => {
      if (/Now listening/.test(line)) process.kill(pid, "SIGTERM");
    },
  });
  return { code: r.code, lines: r.stdout.toString().split("\n").filter((l) => l !== "") };
}

test("as root, a drop that does not take effect stops the server with one line", { skip, timeout: 60_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  const { uid, gid } = unprivilegedIdentity();
  const cases: [string[], RegExp][] = [
    [["setpriv", "--bounding-set", "-setgid,-setuid"], new RegExp(`^mandos: error: cannot drop privileges to uid ${uid}, gid ${gid}: setgroups failed: EPERM$`)],
    [["setpriv", "--securebits", "+no_setuid_fixup"], new RegExp(`^mandos: error: dropped privileges to uid ${uid}, gid ${gid}, but it keeps capabilities \\(.*\\)$`)],
  ];
  for (const [wrapper, line] of cases) {
    const r = await serve(dir.path, wrapper);
    const log = r.lines.join("\n");
    assert.equal(r.code, 1, `${wrapper.join(" ")}: ${log}`);
    const errors = r.lines.filter((l) => l.includes("error"));
    assert.equal(errors.length, 1, log);
    assert.match(errors[0]!, line);
    assert.doesNotMatch(log, /Now listening/);
  }
});

test("not root to begin with: Mandos's warning, and the server runs", { skip, timeout: 60_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  const { uid, gid } = unprivilegedIdentity();
  const r = await serve(dir.path, [], { uid: 1234, gid: 1234 });
  const log = r.lines.join("\n");
  assert.ok(r.lines.includes(`mandos: warning: Failed to setuid/setgid to ${uid}:${gid}: Operation not permitted`), log);
  assert.match(log, /Now listening/);
  assert.equal(r.code, 0, log);
});
