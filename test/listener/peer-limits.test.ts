// One host must not be able to keep the clients of a reboot storm out:
// each source address holds at most max_connections_per_address
// connections, and a peer that sends nothing gives its slot back early.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { chmodSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startListener } from "../../src/server/listener.js";
import { PeerSlots } from "../../src/server/peer-slots.js";
import { Credentials, TlsConnection, keyIdFromPem } from "../../src/tls/index.js";
import { CLIENT_HELLO_LINE } from "../../src/protocol/version-line.js";
import { makeLogger } from "../../src/cli/log.js";
import { fetchOverTls, tlsKeyPair } from "../helpers/tls-keys.js";
import { tempDir } from "../helpers/index.js";
import { serverWritableDir, startServer } from "../helpers/server.js";

const SECRET = Buffer.from("the secret of the real client");

test("PeerSlots: a cap per address, released slots reusable, a refusal reported once per saturation", () => {
  const slots = new PeerSlots(2);
  assert.equal(slots.take("a"), "taken");
  assert.equal(slots.take("a"), "taken");
  assert.equal(slots.take("a"), "refused");
  assert.equal(slots.take("a"), "refused again");
  assert.equal(slots.take("b"), "taken", "another address is not affected");
  slots.release("a");
  assert.equal(slots.holding("a"), 1);
  assert.equal(slots.take("a"), "taken");
  assert.equal(slots.take("a"), "refused", "full again: reported again");
  slots.release("a");
  slots.release("a");
  assert.equal(slots.holding("a"), 0);
});

/** How many sockets a process has open. */
function openSockets(pid: number): number {
  const fds = readdirSync(`/proc/${pid}/fd`);
  return fds.filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:");
    } catch {
      return false; // closed meanwhile
    }
  }).length;
}

/** Open `n` connections from `localAddress` and leave them idle; resolves once each has connected or failed. */
async function idleConnections(port: number, localAddress: string, n: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  let settled = 0;
  await new Promise<void>((resolve) => {
    for (let i = 0; i < n; i++) {
      const s = net.connect({ host: "127.0.0.1", port, localAddress });
      let done = false;
      const settle = () => {
        if (done) return;
        done = true;
        if (++settled === n) resolve();
      };
      s.on("connect", settle);
      s.on("error", settle);
      s.on("close", settle);
      sockets.push(s);
    }
  });
  return sockets;
}

test("one address holding 5,000 idle connections: another address's client is still served within 2 s", { timeout: 120_000 }, async (t) => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  const keys = tlsKeyPair();
  const conf = serverWritableDir(join(dir.path, "conf"));
  writeFileSync(join(conf, "mandos.conf"), "[DEFAULT]\naddress = 127.0.0.1\nport = 0\nzeroconf = False\n");
  writeFileSync(
    join(conf, "clients.conf"),
    `[real]\nhost = localhost\nkey_id = ${keyIdFromPem(keys.publicPem)}\nsecret = ${SECRET.toString("base64")}\nchecker = true\n`,
  );
  const server = await startServer({ configDir: conf, stateDir: conf, env: process.env, args: ["--no-dbus"] });
  let flood: net.Socket[] = [];
  try {
    flood = await idleConnections(server.port, "127.0.0.2", 5000);
    const started = performance.now();
    const got = await fetchOverTls("127.0.0.1", server.port, keys);
    const ms = performance.now() - started;
    assert.deepEqual(got, SECRET);
    assert.ok(ms < 2000, `served in ${ms.toFixed(0)} ms`);
    const sockets = openSockets(server.proc.pid!);
    t.diagnostic(`served in ${ms.toFixed(0)} ms; the server holds ${sockets} sockets`);
    assert.ok(sockets <= 64 + 8, `the server holds ${sockets} sockets: the cap, its listening socket and a few of its own`);
    const refusals = server.output().split("\n").filter((l) => l.includes("refusing connections from 127.0.0.2: it holds 64 already"));
    assert.equal(refusals.length, 1, "said once, not per connection");
  } finally {
    for (const s of flood) s.destroy();
    await server.stop();
  }
});

function listenerFor(keys: { publicPem: string }, lines: string[], opts: { lineTimeoutMs?: number } = {}) {
  const id = keyIdFromPem(keys.publicPem);
  return startListener({
    address: "127.0.0.1",
    useIpv6: false,
    ...opts,
    log: makeLogger("mandos", { level: "debug", write: (l) => lines.push(l) }),
    handler: {
      async requestSecret(req) {
        return req.keyId === id ? { secret: Buffer.from(SECRET), sent() {} } : null;
      },
    },
  });
}

test("a peer that sends nothing is dropped after 3 s, long before the 10 s handshake deadline", { timeout: 30_000 }, async () => {
  const lines: string[] = [];
  const listener = await listenerFor(tlsKeyPair(), lines);
  try {
    const s = net.connect(listener.port, "127.0.0.1");
    await once(s, "connect");
    const started = performance.now();
    s.on("data", () => {});
    s.on("error", () => {});
    await once(s, "close");
    const ms = performance.now() - started;
    assert.ok(ms > 2800 && ms < 4500, `dropped after ${ms.toFixed(0)} ms`);
    assert.ok(lines.some((l) => /no protocol line within 3000 ms/.test(l)), lines.join(""));
  } finally {
    await listener.close();
  }
});

test("a version line that arrived while the server was busy past its deadline still counts", { timeout: 30_000 }, async () => {
  const keys = tlsKeyPair();
  const lines: string[] = [];
  const listener = await listenerFor(keys, lines, { lineTimeoutMs: 200 });
  const creds = Credentials.rawKey(keys.publicPem, keys.privatePem);
  const s = net.connect(listener.port, "127.0.0.1");
  try {
    await once(s, "connect");
    // The server has accepted it and its deadline runs.
    await new Promise((r) => setTimeout(r, 50));
    // The line reaches the server's socket at once, but the event loop is
    // blocked past the deadline: the expired timer runs before the read.
    s.write(CLIENT_HELLO_LINE);
    const until = Date.now() + 500;
    while (Date.now() < until);
    const c = await TlsConnection.accept(s, creds, { handshakeTimeoutMs: 5000 });
    assert.deepEqual(await c.readAll(1 << 20, 5000), SECRET);
    c.destroy();
    assert.ok(!lines.some((l) => /no protocol line/.test(l)), lines.join(""));
  } finally {
    s.destroy();
    creds.dispose();
    await listener.close();
  }
});
