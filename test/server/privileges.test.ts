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
  // The checker launcher (checker_user, 65534 by default) drops first, while
  // the server is still root: whichever drop fails first stops the start.
  const who = `(cannot run checkers as uid 65534, gid 65534: (?<launcher>)|)`;
  const ids = (m: RegExpMatchArray) => (m.groups?.["launcher"] !== undefined ? "uid 65534, gid 65534" : `uid ${uid}, gid ${gid}`);
  const cases: [string[], RegExp, (m: RegExpMatchArray) => string][] = [
    [["setpriv", "--bounding-set", "-setgid,-setuid"], new RegExp(`^mandos: error: ${who}cannot drop privileges to (uid \\d+, gid \\d+): setgroups failed: EPERM$`), ids],
    [["setpriv", "--securebits", "+no_setuid_fixup"], new RegExp(`^mandos: error: ${who}dropped privileges to (uid \\d+, gid \\d+), but it keeps capabilities \\(.*\\)$`), ids],
  ];
  for (const [wrapper, line, expectedIds] of cases) {
    const r = await serve(dir.path, wrapper);
    const log = r.lines.join("\n");
    assert.equal(r.code, 1, `${wrapper.join(" ")}: ${log}`);
    const errors = r.lines.filter((l) => l.includes("error"));
    assert.equal(errors.length, 1, log);
    const m = line.exec(errors[0]!);
    assert.ok(m, `${errors[0]} !~ ${line}`);
    assert.equal(m[m.length - 1], expectedIds(m));
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
