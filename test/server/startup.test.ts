// The server's start-up steps (src/server/startup.ts), each on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tempDir } from "../helpers/index.js";
import { writeConfig } from "../helpers/server.js";
import { parseServerArgs } from "../../src/server/options.js";
import { activationSocket, readSettings } from "../../src/server/startup.js";

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
