// Both TLS roles of our GnuTLS engine against each other over loopback.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { Credentials, TlsConnection, TlsError, keyIdFromPem, keyIdFromSpki, tlsResources } from "../../src/tls/index.js";
import { tlsKeyPair } from "../helpers/tls-keys.js";

async function socketPair(): Promise<{ a: net.Socket; b: net.Socket; close(): void }> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, "connection");
  const a = net.connect(port, "127.0.0.1");
  await once(a, "connect");
  const [b] = (await accepted) as [net.Socket];
  server.close();
  return { a, b, close: () => (a.destroy(), b.destroy()) };
}

/** Our raw-key side accepting, an anonymous side connecting, handshaken; all released after `body` (a session lives until destroyed). */
async function withSessions(body: (server: TlsConnection, client: TlsConnection, publicPem: string) => Promise<void>) {
  const keys = tlsKeyPair();
  const own = Credentials.rawKey(keys.publicPem, keys.privatePem);
  const anon = Credentials.anonymous();
  const { a, b, close } = await socketPair();
  const sessions: TlsConnection[] = [];
  try {
    const [server, client] = await Promise.all([TlsConnection.accept(a, own), TlsConnection.connect(b, anon)]);
    sessions.push(server, client);
    await body(server, client, keys.publicPem);
  } finally {
    for (const s of sessions) s.destroy();
    close();
    own.dispose();
    anon.dispose();
  }
}

/** Anonymous credentials and a socket pair (`a` for our side, `b` for the peer), released after `body`. */
async function withAnonymous(body: (anon: Credentials, a: net.Socket, b: net.Socket) => Promise<void>) {
  const anon = Credentials.anonymous();
  const { a, b, close } = await socketPair();
  try {
    await body(anon, a, b);
  } finally {
    close();
    anon.dispose();
  }
}

test("raw public key handshake both ways, key id and data", async () => {
  await withSessions(async (server, client, publicPem) => {
    assert.equal(client.peerKeyType(), "rawpk");
    const peer = client.peerPublicKey();
    assert.ok(peer);
    assert.equal(keyIdFromSpki(peer), keyIdFromPem(publicPem));
    assert.match(keyIdFromSpki(peer), /^[0-9A-F]{64}$/);
    const payload = Buffer.alloc(100_000, 7); // spans several TLS records
    const reading = server.readAll(200_000, 5000);
    client.write(payload);
    client.close();
    assert.deepEqual(await reading, payload);
    server.destroy();
  });
});

/** Sessions that fail, each asserting how: tests of their own, and repeated by the leak test. */
const failing = {
  async overLimit() {
    await withSessions(async (server, client) => {
      const reading = server.readAll(1000, 5000);
      client.write(Buffer.alloc(5000, 1));
      await assert.rejects(reading, /more than 1000 bytes/);
    });
  },
  async silentPeer() {
    await withAnonymous(async (anon, a) => {
      const started = Date.now();
      await assert.rejects(TlsConnection.connect(a, anon, { handshakeTimeoutMs: 300 }), /timed out after 300 ms/);
      assert.ok(Date.now() - started < 3000);
      assert.ok(a.destroyed, "socket released after failure");
    });
  },
  async garbage() {
    await withAnonymous(async (anon, a, b) => {
      const hs = TlsConnection.connect(a, anon, { handshakeTimeoutMs: 5000 });
      b.write(Buffer.alloc(4096, 0x41));
      await assert.rejects(hs, (err: Error) => err.message.length > 0 && !/timed out/.test(err.message));
    });
  },
  async badPriority() {
    await withAnonymous(async (anon, a) => {
      await assert.rejects(TlsConnection.connect(a, anon, { priority: "NO-SUCH-PRIORITY" }), /bad priority string/);
    });
  },
  async peerLeaves() {
    await withAnonymous(async (anon, a, b) => {
      const hs = TlsConnection.connect(a, anon, { handshakeTimeoutMs: 5000 });
      b.end();
      await assert.rejects(hs, /closed|terminat/i);
    });
  },
};

test("readAll refuses more than the limit", failing.overLimit);

test("a peer flooding a session that is not reading is cut off: memory stays bounded", { timeout: 20_000 }, async () => {
  await withSessions(async (server, client) => {
    // After the handshake nothing reads on the server side (as while a
    // request waits for approval); the peer streams raw bytes.
    const closed = new Promise<void>((resolve) => server.socket.once("close", () => resolve()));
    const flood = Buffer.alloc(64 * 1024, 0x17);
    let written = 0;
    while (written < 8 * 1024 * 1024 && !server.socket.destroyed) {
      client.socket.write(flood);
      written += flood.length;
      await new Promise((r) => setImmediate(r));
    }
    await closed;
    assert.ok(server.socket.destroyed, "the flooded side let go of the socket");
    await assert.rejects(server.readAll(10, 1000), /too much data|closed/);
  });
});

test("a peer that never answers the handshake times out", failing.silentPeer);

test("garbage instead of TLS fails the handshake with a GnuTLS reason", failing.garbage);

test("the peer closing during the handshake is reported", failing.peerLeaves);

test("a bad priority string and a bad key are clear errors", async () => {
  const keys = tlsKeyPair();
  assert.throws(() => Credentials.rawKey(keys.publicPem, "not a key"), TlsError);
  await failing.badPriority();
});

test("many sessions, served or failed, share the registered callbacks and release everything", async () => {
  const keys = tlsKeyPair();
  const own = Credentials.rawKey(keys.publicPem, keys.privatePem);
  const anon = Credentials.anonymous();
  try {
    // GnuTLS is loaded by now, with its callbacks registered once.
    const base = tlsResources();
    assert.ok(base.callbacks > 0, "callbacks registered at load");
    assert.deepEqual([base.sessions, base.transports], [0, 0], "the tests before this one released their sessions");
    for (let i = 0; i < 50; i++) {
      const { a, b, close } = await socketPair();
      try {
        const [s, c] = await Promise.all([TlsConnection.accept(a, own), TlsConnection.connect(b, anon)]);
        assert.deepEqual(tlsResources(), { ...base, sessions: base.sessions + 2, transports: base.transports + 2 }, "both ends counted");
        const r = s.readAll(10, 2000);
        c.write(Buffer.from([i]));
        c.close();
        assert.deepEqual(await r, Buffer.from([i]));
        s.destroy();
      } finally {
        close();
      }
    }
    // Failures release their sessions too.
    for (let i = 0; i < 5; i++) for (const fail of Object.values(failing)) await fail();
    assert.deepEqual(tlsResources(), base, "sessions, transports and callbacks back where they were");
  } finally {
    own.dispose();
    anon.dispose();
  }
});
