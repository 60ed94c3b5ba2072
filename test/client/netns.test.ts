// The whole client as at boot, across two network namespaces joined by a
// veth pair: our server announces itself with Zeroconf in namespace A; the
// client in namespace B brings its interface up, finds the server over IPv6
// link-local, gets the password, and takes the interface down again.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, requires, tempDir } from "../helpers/index.js";
import { createNsPair, spawnInNs, type NsPair, type NsProcess } from "../helpers/netns.js";
import { serverWritableDir } from "../helpers/server.js";
import { DEBIAN_CLIENT } from "../helpers/debian-peer.js";
import { keyArgs, makeKeys, passwordSection } from "../helpers/client.js";

const skip = requires({ root: true, commands: ["ip"] });
const dir = tempDir();
after(() => dir.cleanup());

async function serverInA(pair: NsPair, keys: string, password: string): Promise<NsProcess> {
  const conf = serverWritableDir(join(dir.path, `conf-${pair.nsA}`));
  const passfile = join(dir.path, "pw");
  writeFileSync(passfile, password);
  writeFileSync(join(conf, "clients.conf"), passwordSection(keys, "ours", "bootclient", passfile));
  writeFileSync(join(conf, "mandos.conf"), "[DEFAULT]\nport = 0\n");
  const server = spawnInNs(
    pair.nsA,
    join(BIN, "mandos"),
    ["--foreground", "--debuglevel", "INFO", "--no-dbus", "--configdir", conf, "--statedir", conf, "--servicename", "Mandos test"],
    { timeoutMs: 120_000 },
  );
  await server.waitUntil("the server listens", () => /Now listening/.test(server.stderr), 20_000);
  return server;
}

function linkState(ns: string, ifn: string): string {
  return execFileSync("ip", ["-n", ns, "-o", "link", "show", ifn], { encoding: "utf8" });
}

test("our client brings its interface up, finds our server by Zeroconf, and leaves the interface as it was", { skip, timeout: 120_000 }, async () => {
  const keys = makeKeys(join(dir.path, "keys-ours"), "ours");
  const pair = await createNsPair();
  try {
    const server = await serverInA(pair, keys, "zeroconf password");
    execFileSync("ip", ["-n", pair.nsB, "link", "set", "vethB", "down"]);
    const client = spawnInNs(pair.nsB, join(BIN, "mandos-client"), ["--interface", "vethB", "--debug", "--delay", "5", ...keyArgs(keys)], {
      timeoutMs: 90_000,
    });
    const { code } = await client.exited;
    assert.equal(code, 0, client.stderr);
    assert.equal(client.stdout, "zeroconf password");
    assert.match(client.stderr, /found server .*fe80:[0-9a-f:]+%vethB/i);
    assert.match(client.stderr, /network part running as uid 65534, gid 65534/);
    assert.doesNotMatch(linkState(pair.nsB, "vethB"), /[<,]UP[,>]/, "vethB is down again");
    assert.ok(!client.stderr.includes("zeroconf password"), "the password is not logged");
    await server.stop();
    assert.match(server.stderr, /Sending secret to bootclient/);
  } finally {
    pair.destroy();
  }
});

test("Debian's mandos-client finds our server by Zeroconf and gets its password", { skip: skip || requires({ files: [DEBIAN_CLIENT] }), timeout: 120_000 }, async () => {
  const keys = makeKeys(join(dir.path, "keys-debian-client"), "ours");
  const pair = await createNsPair();
  try {
    const server = await serverInA(pair, keys, "for the C client");
    // Debian's client starts a gpg-agent in /run/tmp: give it a private /run.
    const client = spawnInNs(pair.nsB, DEBIAN_CLIENT, ["--interface", "vethB", ...keyArgs(keys)], { timeoutMs: 60_000, privateRun: true });
    const { code } = await client.exited;
    assert.equal(code, 0, client.stderr);
    assert.equal(client.stdout, "for the C client");
    await server.stop();
  } finally {
    pair.destroy();
  }
});
