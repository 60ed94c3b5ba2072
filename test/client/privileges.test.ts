// The client started as root with --connect and --interface none: nothing
// privileged is left to do, so it drops to the unprivileged user for good
// before it touches the network. Checked from outside, in /proc, while the
// client is connected; and it never runs anything as root on request.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { readProcStatus } from "../../src/sys/proc-status.js";
import { unprivilegedIds } from "../../src/client/privileges.js";
import { requires, tempDir } from "../helpers/index.js";
import { OUR_CLIENT, keyArgs, makeKeys } from "../helpers/client.js";
import { childPids } from "../helpers/proc.js";

const dir = tempDir();
after(() => dir.cleanup());
const skip = requires({ root: true });

/** A TCP listener on loopback that takes connections and holds them without a word. */
async function silentServer(): Promise<{ server: Server; port: number; connected: Promise<Socket> }> {
  const server = createServer();
  const connected = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as { port: number }).port, connected };
}

function startClient(port: number, keys: string, env: NodeJS.ProcessEnv = {}) {
  const child = spawn(OUR_CLIENT, ["--connect", `127.0.0.1:${port}`, "--interface", "none", ...keyArgs(keys)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  return { child, exited, stderr: () => stderr };
}

test("unprivilegedIds: 65534 by default; never root, never (uid_t)-1, only decimal ids", () => {
  assert.deepEqual(unprivilegedIds({}), { uid: 65534, gid: 65534 });
  assert.deepEqual(unprivilegedIds({ MANDOS_CLIENT_UID: "1000", MANDOS_CLIENT_GID: "" }), { uid: 1000, gid: 65534 });
  for (const [name, value] of [
    ["MANDOS_CLIENT_UID", "0"],
    ["MANDOS_CLIENT_GID", "0"],
    ["MANDOS_CLIENT_UID", "00"],
    ["MANDOS_CLIENT_UID", "-1"],
    ["MANDOS_CLIENT_UID", "4294967295"],
    ["MANDOS_CLIENT_GID", "1e3"],
    ["MANDOS_CLIENT_GID", "0x10"],
    ["MANDOS_CLIENT_UID", " 1000"],
  ] as const) {
    assert.throws(() => unprivilegedIds({ [name]: value }), {
      message: `${name} must be a numeric id from 1 to 4294967294 (not root), got ${JSON.stringify(value)}`,
    });
  }
});

test("as root with --connect: dropped for good in the process that talks to the server", { skip, timeout: 60_000 }, async () => {
  const keys = makeKeys(join(dir.path, "keys"), "ours");
  const { server, port, connected } = await silentServer();
  const client = startClient(port, keys);
  try {
    const socket = await Promise.race([connected, client.exited.then(() => assert.fail(`the client exited: ${client.stderr()}`))]);
    // Connected, waiting for the server to speak: this process parses what comes.
    const s = readProcStatus(client.child.pid!);
    assert.deepEqual(s.uids, [65534, 65534, 65534, 65534], "real, effective, saved and file system uid");
    assert.deepEqual(s.gids, [65534, 65534, 65534, 65534]);
    assert.deepEqual(s.groups, [65534], "none of root's groups");
    // No capability in any set, and no set-user-ID program can give any back:
    // with the saved uid gone too, root cannot be regained.
    assert.deepEqual([s.capInh, s.capPrm, s.capEff, s.capAmb], [0n, 0n, 0n, 0n]);
    assert.equal(s.noNewPrivs, true);
    assert.deepEqual(childPids(client.child.pid!), [], "no root supervisor, no worker: one process");
    socket.destroy();
  } finally {
    client.child.kill("SIGKILL");
    await client.exited;
    server.close();
  }
});

test("as root, MANDOS_CLIENT_UID=0 or MANDOS_CLIENT_GID=0 is refused before the network is touched", { skip, timeout: 60_000 }, async () => {
  const keys = makeKeys(join(dir.path, "keys-zero"), "ours");
  for (const name of ["MANDOS_CLIENT_UID", "MANDOS_CLIENT_GID"]) {
    const { server, port } = await silentServer();
    let connections = 0;
    server.on("connection", (c: Socket) => {
      connections++;
      c.destroy();
    });
    const client = startClient(port, keys, { [name]: "0" });
    const killer = setTimeout(() => client.child.kill("SIGKILL"), 20_000);
    const code = await client.exited;
    clearTimeout(killer);
    server.close();
    assert.equal(code, 1, client.stderr());
    assert.equal(client.stderr(), `mandos-client: error: ${name} must be a numeric id from 1 to 4294967294 (not root), got "0"\n`);
    assert.equal(connections, 0);
  }
});
