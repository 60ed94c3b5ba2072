// The configuration reader, the process that keeps root for reloads: it
// answers its one request with both files read (secrets included), a
// broken file with the one-line problem, and anything else by exiting.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { tempDir } from "../helpers/index.js";
import { ROOT } from "../helpers/index.js";
import { fakeKeyId, writeConfig } from "../helpers/server.js";
import { startPrivilegedReader } from "../../src/server/config-reader.js";

const READER = join(ROOT, "dist", "src", "server", "config-reader-main.js");

test("the configuration reader reads both files on request; a broken one is one line", { timeout: 30_000 }, async () => {
  using dir = tempDir();
  writeConfig(dir.path, { clients: `[a]\nkey_id = ${fakeKeyId(1)}\nsecret = aGVsbG8=\n`, port: 0, extra: "priority = NORMAL\n" });
  const reader = startPrivilegedReader(["--configdir", dir.path, "--no-zeroconf"]);
  const first = await reader.read();
  assert.ok(!("problem" in first), JSON.stringify(first));
  assert.equal(first.settings.priority, "NORMAL");
  assert.deepEqual(first.clients.map((c) => [c.name, c.secret.toString()]), [["a", "hello"]]);
  writeConfig(dir.path, { clients: `[a]\nkey_id = nonsense\nsecret = aGVsbG8=\n`, port: 0 });
  const second = await reader.read();
  assert.ok("problem" in second);
  assert.match(second.problem, /clients\.conf:2: \[a\] key_id: must be 64 hexadecimal digits/);
});

test("the configuration reader exits on anything but its one request", { timeout: 30_000 }, async () => {
  using dir = tempDir();
  writeConfig(dir.path, { clients: "", port: 0 });
  const child = spawn(process.execPath, [READER, "--configdir", dir.path], { stdio: ["ignore", "ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  (child.stdio[3] as Duplex).write(`${JSON.stringify({ type: "read", path: "/etc/shadow" })}\n`);
  const code = await new Promise((resolve) => child.on("exit", resolve));
  assert.equal(code, 2);
  assert.match(stderr, /^mandos configuration reader: the server sent something other than a read request\n$/);
});
