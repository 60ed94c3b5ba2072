// The agent as root, with the Mandos client where its unprivileged user
// cannot reach: a checkout in a 0700 root-owned directory, as a new user's
// clone in /root is, or keys it cannot read. The agent must say so at once,
// in one line naming the path and the user, and not retry until the
// question times out. The questions are written by hand to a directory of
// the test's own (no systemd tool involved, so no namespace).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bindDatagram } from "../../src/sys/unix-dgram.js";
import { monotonicMicros } from "../../src/agent/host.js";
import { BIN, ROOT, requires, tempDir } from "../helpers/index.js";

interface AgentExit {
  code: number | null;
  stderr: string;
  ms: number;
  received: Buffer | null;
}

/** One question in a fresh agent directory; run the agent with `client`. */
async function askWith(work: string, client: string[]): Promise<AgentExit> {
  const dir = join(work, "ask");
  mkdirSync(dir, { mode: 0o755 });
  const socket = join(dir, "sck.test");
  const rx = bindDatagram(socket);
  try {
    const tmp = join(dir, ".#ask.test");
    writeFileSync(tmp, `[Ask]\nPID=${process.pid}\nSocket=${socket}\nNotAfter=${monotonicMicros() + 60_000_000n}\nId=cryptsetup:test\n`, { mode: 0o644 });
    renameSync(tmp, join(dir, "ask.test"));
    const started = Date.now();
    const agent = spawn(process.execPath, [join(BIN, "password-agent"), `--agent-directory=${dir}`, "--", ...client], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    agent.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => agent.kill("SIGKILL"), 30_000);
    const code = await new Promise<number | null>((r) => agent.on("close", r));
    clearTimeout(killer);
    let received: Buffer | null = null;
    try {
      received = rx.receive(0);
    } catch {
      // nothing was sent: as it must be
    }
    return { code, stderr, ms: Date.now() - started, received };
  } finally {
    rx.close();
  }
}

/** The agent's own lines (the client's, passed on, start with its name). */
const agentLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("password-agent: "));

test("a client program in a 0700 directory: one line naming it and the user, at once", { skip: requires({ root: true }), timeout: 60_000 }, async () => {
  using work = tempDir();
  chmodSync(work.path, 0o755);
  const locked = join(work.path, "home");
  mkdirSync(locked, { mode: 0o700 }); // as /root
  const client = join(locked, "client");
  writeFileSync(client, "#!/bin/sh\nprintf pw\n", { mode: 0o755 });
  const r = await askWith(work.path, [client]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.received, null);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
  const lines = agentLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.equal(
    lines[0],
    `password-agent: error: the Mandos client ${client} cannot run as user 65534: directory ${locked} (mode 0700, owner 0:0) is not searchable by it`,
  );
});

test("our real client, its program tree copied into a 0700 directory and reached through a link", { skip: requires({ root: true }), timeout: 60_000 }, async () => {
  using work = tempDir();
  chmodSync(work.path, 0o755);
  const locked = join(work.path, "home");
  mkdirSync(locked, { mode: 0o700 });
  const tree = join(locked, "mandos-ts");
  for (const part of ["bin", "dist/src", "package.json"]) cpSync(join(ROOT, part), join(tree, part), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"));
  // The program itself is reachable (a link outside), its modules are not.
  const visible = join(work.path, "mandos-client");
  writeFileSync(visible, `#!/bin/sh\nexec ${process.execPath} ${join(tree, "dist/src/client/main.js")} "$@"\n`, { mode: 0o755 });
  const r = await askWith(work.path, [visible, "--connect=[::1]:1", "--interface=none"]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.received, null);
  assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
  const lines = agentLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, new RegExp(`^password-agent: error: the Mandos client ${visible} cannot run as user 65534: cannot (read|load) ${tree}/dist/src/client/main\\.js .*; not retrying$`));
});

test("key files the user cannot read: the client's own line, at once, not retried", { skip: requires({ root: true }), timeout: 60_000 }, async () => {
  using work = tempDir();
  chmodSync(work.path, 0o755);
  const keys = join(work.path, "keys");
  mkdirSync(keys, { mode: 0o700 });
  for (const f of ["pubkey.txt", "seckey.txt", "tls-pubkey.pem", "tls-privkey.pem"]) writeFileSync(join(keys, f), "x", { mode: 0o600 });
  const r = await askWith(work.path, [
    join(BIN, "mandos-client"),
    "--connect=[::1]:1",
    "--interface=none",
    `--pubkey=${keys}/pubkey.txt`,
    `--seckey=${keys}/seckey.txt`,
    `--tls-pubkey=${keys}/tls-pubkey.pem`,
    `--tls-privkey=${keys}/tls-privkey.pem`,
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.received, null);
  assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
  const lines = agentLines(r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, new RegExp(`^password-agent: error: the Mandos client .* cannot run as user 65534: exited with status 78: .*${keys}/pubkey.txt: permission denied; not retrying$`));
});
