// --interface: the server listens on one network interface only
// (SO_BINDTODEVICE), in a pair of network namespaces with two links.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, requires, tempDir } from "../helpers/index.js";
import { createNsPair, nodeInNs, spawnInNs } from "../helpers/netns.js";
import { serverWritableDir } from "../helpers/server.js";
import { keyArgs, makeKeys, passwordSection } from "../helpers/client.js";
import { sockaddr } from "../../src/sys/listen-device.js";

const dir = tempDir();
after(() => dir.cleanup());

test("sockaddr encodes IPv6 (with scope) and IPv4 addresses", () => {
  const v6 = sockaddr("fe80::1:2", 0x1234, 7);
  assert.equal(v6.length, 28);
  assert.equal(v6.readUInt16LE(0), 10);
  assert.equal(v6.readUInt16BE(2), 0x1234);
  assert.equal(v6.subarray(8, 24).toString("hex"), "fe800000000000000000000000010002");
  assert.equal(v6.readUInt32LE(24), 7);
  assert.equal(sockaddr("::ffff:10.0.0.1", 1).subarray(8, 24).toString("hex"), "00000000000000000000ffff0a000001");
  assert.equal(sockaddr("::", 1).subarray(8, 24).toString("hex"), "0".repeat(32));
  const v4 = sockaddr("127.0.0.1", 80);
  assert.equal(v4.length, 16);
  assert.equal(v4.subarray(4, 8).toString("hex"), "7f000001");
  assert.throws(() => sockaddr("not-an-address", 1), /not an IP address/);
});

test("--interface serves that interface only", { skip: requires({ root: true, commands: ["ip"] }), timeout: 90_000 }, async () => {
  const keys = makeKeys(join(dir.path, "keys"), "ours");
  const pair = await createNsPair();
  try {
    const second = await pair.addLink();
    const first = pair.links[0]!;
    const conf = serverWritableDir(join(dir.path, "conf"));
    writeFileSync(join(dir.path, "pw"), "one interface");
    writeFileSync(join(conf, "clients.conf"), passwordSection(keys, "ours", "c", join(dir.path, "pw")));
    writeFileSync(join(conf, "mandos.conf"), "[DEFAULT]\nport = 0\n");
    const server = spawnInNs(pair.nsA, join(BIN, "mandos"), [
      "--foreground", "--debuglevel", "INFO", "--no-dbus", "--no-zeroconf", "--interface", first.ifA, "--configdir", conf, "--statedir", conf,
    ]);
    const port = Number(await server.waitUntil("listening", () => /port (\d+)/.exec(server.stderr)?.[1], 20_000));
    const client = spawnInNs(pair.nsB, join(BIN, "mandos-client"), [
      `--connect=${first.llA}:${port}`, `--interface=${first.ifB}`, ...keyArgs(keys),
    ]);
    assert.equal((await client.exited).code, 0, client.stderr);
    assert.equal(client.stdout, "one interface");
    const probe = nodeInNs(
      pair.nsB,
      `import net from "node:net";
       const s = net.connect({ host: ${JSON.stringify(`${second.llA}%${second.ifB}`)}, port: ${port} });
       s.on("connect", () => { console.log("connected"); s.destroy(); });
       s.on("error", (e) => console.log(e.code));`,
    );
    await probe.exited;
    assert.equal(probe.stdout.trim(), "ECONNREFUSED", "not served on the other interface");
    await server.stop();
  } finally {
    pair.destroy();
  }
});

test("a missing interface is a one-line start-up error", { skip: requires({ root: true }), timeout: 30_000 }, async () => {
  const conf = serverWritableDir(join(dir.path, "conf2"));
  writeFileSync(join(conf, "clients.conf"), "");
  writeFileSync(join(conf, "mandos.conf"), "[DEFAULT]\naddress = ::1\nport = 0\n");
  const { run } = await import("../helpers/index.js");
  const r = await run(join(BIN, "mandos"), ["--foreground", "--no-dbus", "--no-zeroconf", "--interface", "nosuchif0", "--configdir", conf, "--statedir", conf], {
    timeoutMs: 20_000,
  });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot listen: cannot bind to interface nosuchif0: ENODEV/);
  assert.ok(!/\n\s+at /.test(r.stderr), r.stderr);
});
