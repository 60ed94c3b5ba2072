// The agent run as an ordinary user on a directory of its own: it trusts
// its own files, runs the client as itself, and says that systemd's
// askers would ignore it. Questions are written by hand and answered to a
// socket this test binds (no systemd tool involved, so no namespace).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bindDatagram } from "../../src/sys/unix-dgram.js";
import { monotonicMicros } from "../../src/agent/host.js";
import { BIN, requires, tempDir } from "../helpers/index.js";

const USER = 1234;

test("as a non-root user: own files trusted, client run as is, answer sent", { skip: requires({ root: true }), timeout: 30_000 }, async () => {
  using work = tempDir();
  chmodSync(work.path, 0o755);
  const dir = join(work.path, "ask");
  mkdirSync(dir, { mode: 0o755 });
  chownSync(dir, USER, USER);
  const record = join(work.path, "record");
  writeFileSync(record, "", { mode: 0o666 });
  chmodSync(record, 0o666);
  const client = join(work.path, "client");
  // Stand-in for mandos-client (see agent-ns.test.ts).
  writeFileSync(client, `#!/bin/sh\nid -u >> ${record}\nprintf 'pw-unprivileged'\n`, { mode: 0o755 });

  const socket = join(dir, "sck.test");
  const rx = bindDatagram(socket);
  try {
    chmodSync(socket, 0o777); // the agent is not root
    const tmp = join(dir, ".#ask.test");
    writeFileSync(tmp, `[Ask]\nPID=${process.pid}\nSocket=${socket}\nNotAfter=${monotonicMicros() + 20_000_000n}\nId=cryptsetup:test\n`, { mode: 0o644 });
    chownSync(tmp, USER, USER);
    renameSync(tmp, join(dir, "ask.test"));

    const agent = spawn(process.execPath, [join(BIN, "password-agent"), `--agent-directory=${dir}`, "--user=4321", "--", client], {
      uid: USER,
      gid: USER,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    agent.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => agent.on("close", r));
    const killer = setTimeout(() => agent.kill("SIGKILL"), 20_000);
    // Blocking is fine here: the agent is another process.
    const answer = rx.receive(15_000);
    // As an asker would once answered: the agent then has nothing left and exits.
    rmSync(join(dir, "ask.test"));
    const code = await exited;
    clearTimeout(killer);
    assert.deepEqual(answer, Buffer.from("+pw-unprivileged\0"));
    assert.equal(code, 0, stderr);
    assert.equal(readFileSync(record, "utf8"), `${USER}\n`); // not 4321: a non-root agent cannot switch
    assert.match(stderr, /warning: not running as root/);
    assert.ok(!stderr.includes("pw-unprivileged"));
  } finally {
    rx.close();
  }
});
