// Hostile and broken peers against the server's listener: each is dropped
// with a logged reason within bounded time, while a real client is served.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { once } from "node:events";
import { execFileSync } from "node:child_process";
import { startListener } from "../../src/server/listener.js";
import { keyIdFromPem } from "../../src/tls/index.js";
import { makeLogger } from "../../src/cli/log.js";
import { fetchOverTls, tlsKeyPair } from "../helpers/tls-keys.js";
import { requires, tempDir } from "../helpers/index.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const SECRET = Buffer.from("not-a-real-pgp-message-but-secret");

async function harness() {
  const good = tlsKeyPair();
  const goodId = keyIdFromPem(good.publicPem);
  const lines: string[] = [];
  const listener = await startListener({
    address: "127.0.0.1",
    useIpv6: false,
    lineTimeoutMs: 400,
    handshakeTimeoutMs: 400,
    log: makeLogger("mandos", { level: "debug", write: (l) => lines.push(l) }),
    handler: {
      async requestSecret(req) {
        return req.keyId === goodId ? { secret: Buffer.from(SECRET), sent() {} } : null;
      },
    },
  });
  const connect = async () => {
    const s = net.connect(listener.port, "127.0.0.1");
    await once(s, "connect");
    return s;
  };
  const fetch = (keys = good) => fetchOverTls("127.0.0.1", listener.port, keys);
  /** Resolves when the server closes the socket; rejects after `ms`. */
  const closedWithin = (s: net.Socket, ms: number) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`not dropped within ${ms} ms`)), ms);
      s.on("data", () => {});
      s.on("error", () => {});
      s.once("close", () => (clearTimeout(t), resolve()));
    });
  const logged = (re: RegExp) => lines.some((l) => re.test(l));
  return { listener, connect, fetch, closedWithin, logged, lines };
}

test("broken protocol lines are dropped with a reason", async () => {
  const h = await harness();
  try {
    const cases: [string | Buffer, RegExp][] = [
      [Buffer.from([0x16, 0x03, 0x01, 0xff, 0x00, 0x0a]), /bad protocol line/],
      ["2\r\n", /unsupported protocol version 2/],
      ["\r\n", /bad protocol line/],
      ["\n", /bad protocol line/],
    ];
    for (const [input, reason] of cases) {
      const s = await h.connect();
      s.write(input);
      await h.closedWithin(s, 2000);
      assert.ok(h.logged(reason), `logged ${reason}`);
    }
  } finally {
    await h.listener.close();
  }
});

test("a 4 MB line without newline is cut off early", async () => {
  const h = await harness();
  try {
    const s = await h.connect();
    const closed = h.closedWithin(s, 3000);
    s.write(Buffer.alloc(4 * 1024 * 1024, 0x31), () => {});
    await closed;
    assert.ok(h.logged(/no newline in the first 1024 bytes|longer than 1024/));
  } finally {
    await h.listener.close();
  }
});

test("stalls before the line and during the handshake time out", async () => {
  const h = await harness();
  try {
    const idle = await h.connect();
    await h.closedWithin(idle, 2000);
    assert.ok(h.logged(/no protocol line within 400 ms/));
    const half = await h.connect();
    half.write("1\r\n"); // then silence: the server's ClientHello is never answered
    await h.closedWithin(half, 2000);
    assert.ok(h.logged(/handshake timed out after 400 ms/));
  } finally {
    await h.listener.close();
  }
});

test("TLS garbage after a valid line is dropped", async () => {
  const h = await harness();
  try {
    const s = await h.connect();
    s.write("1\r\n");
    s.write(Buffer.alloc(2000, 0x17));
    await h.closedWithin(s, 2000);
    assert.ok(h.lines.some((l) => /dropped/.test(l)));
  } finally {
    await h.listener.close();
  }
});

test("an unknown key gets nothing; the real client is served", async () => {
  const h = await harness();
  try {
    assert.equal((await h.fetch(tlsKeyPair())).length, 0);
    assert.deepEqual(await h.fetch(), SECRET);
  } finally {
    await h.listener.close();
  }
});

test(
  "an X.509 peer is dropped for presenting a certificate",
  { skip: requires({ commands: ["openssl"] }) },
  async () => {
    const h = await harness();
    try {
      using dir = tempDir();
      const keyFile = join(dir.path, "key.pem");
      execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", keyFile]);
      const key = readFileSync(keyFile, "utf8");
      const cert = execFileSync("openssl", ["req", "-new", "-x509", "-key", keyFile, "-subj", "/CN=x", "-days", "1"]).toString();
      const s = await h.connect();
      s.write("1\r\n");
      const t = new tls.TLSSocket(s, { isServer: true, key, cert });
      t.on("error", () => {});
      await h.closedWithin(s, 3000);
      // Dropped for presenting a certificate, not for anything the handshake did.
      const dropped = h.lines.filter((l) => / dropped: /.test(l));
      assert.equal(dropped.length, 1, dropped.join(""));
      assert.match(dropped[0]!, /^mandos: 127\.0\.0\.1:\d+: dropped: the peer presented an X\.509 certificate, not a raw public key\n$/);
      assert.ok(!h.lines.some((l) => l.includes(SECRET.toString())));
    } finally {
      await h.listener.close();
    }
  },
);

test("hundreds of idle connections do not stop a real client being served", async () => {
  const h = await harness();
  const idle: net.Socket[] = [];
  const dropped: Promise<void>[] = [];
  try {
    for (let i = 0; i < 300; i++) {
      const s = await h.connect();
      dropped.push(h.closedWithin(s, 5000));
      if (i % 2) s.write("1\r\n"); // half stall in the handshake
      idle.push(s);
    }
    const started = Date.now();
    assert.deepEqual(await h.fetch(), SECRET);
    assert.ok(Date.now() - started < 2000, "served promptly");
    await Promise.all(dropped);
    assert.ok(!h.lines.some((l) => l.includes(SECRET.toString())), "the secret is never logged");
  } finally {
    for (const s of idle) s.destroy();
    await h.listener.close();
  }
});
