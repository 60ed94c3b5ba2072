// The whole client as at boot, across two network namespaces joined by a
// veth pair: our server announces itself with Zeroconf in namespace A; the
// client in namespace B brings its interface up, finds the server over IPv6
// link-local, gets the password, and takes the interface down again. The
// server holds each request for a few seconds (approval_delay), and while
// it does, the test reads the privileges of the client process that talks
// to it from /proc.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, ROOT, requires, tempDir } from "../helpers/index.js";
import { createNsPair, spawnInNs, type NsPair, type NsProcess } from "../helpers/netns.js";
import { serverWritableDir } from "../helpers/server.js";
import { DEBIAN_CLIENT } from "../helpers/debian-peer.js";
import { keyArgs, makeKeys, passwordSection } from "../helpers/client.js";
import { childPids, commandLine } from "../helpers/proc.js";
import { readProcStatus } from "../../src/sys/proc-status.js";

const skip = requires({ root: true, commands: ["ip"] });
const dir = tempDir();
after(() => dir.cleanup());

/** Long enough to look at the client while the server keeps it waiting. */
const HOLD = "approval_delay = PT4S\n";

async function serverInA(pair: NsPair, keys: string, password: string, extra = ""): Promise<NsProcess> {
  const conf = serverWritableDir(join(dir.path, `conf-${pair.nsA}`));
  const passfile = join(dir.path, "pw");
  writeFileSync(passfile, password);
  writeFileSync(join(conf, "clients.conf"), passwordSection(keys, "ours", "bootclient", passfile) + extra);
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

/** Wait until the server holds the client's request (it is connected and waiting for the secret). */
const clientWaiting = (server: NsProcess, client: NsProcess) =>
  Promise.race([
    server.waitUntil("the client's request", () => /Client bootclient needs approval/.test(server.stderr), 60_000),
    client.exited.then(() => assert.fail(`the client exited first: ${client.stderr}`)),
  ]);

test("our client brings its interface up, finds our server by Zeroconf, and leaves the interface as it was", { skip, timeout: 120_000 }, async () => {
  const keys = makeKeys(join(dir.path, "keys-ours"), "ours");
  const pair = await createNsPair();
  try {
    const server = await serverInA(pair, keys, "zeroconf password", HOLD);
    execFileSync("ip", ["-n", pair.nsB, "link", "set", "vethB", "down"]);
    const client = spawnInNs(pair.nsB, join(BIN, "mandos-client"), ["--interface", "vethB", "--debug", "--delay", "5", ...keyArgs(keys)], {
      timeoutMs: 90_000,
    });
    await clientWaiting(server, client);
    // Root brought vethB up and stays to take it down: the network part is
    // its one child, and that is the process talking to the server.
    const supervisor = readProcStatus(client.child.pid!);
    assert.deepEqual(supervisor.uids, [0, 0, 0, 0]);
    const workers = childPids(client.child.pid!).filter((pid) => commandLine(pid).includes("mandos-client"));
    assert.equal(workers.length, 1, `one network worker: ${workers.map(commandLine).join(" | ")}`);
    const worker = readProcStatus(workers[0]!);
    assert.deepEqual(worker.uids, [65534, 65534, 65534, 65534], "real, effective, saved and file system uid");
    assert.deepEqual(worker.gids, [65534, 65534, 65534, 65534]);
    assert.deepEqual(worker.groups, [], "none of root's groups");
    assert.deepEqual([worker.capInh, worker.capPrm, worker.capEff, worker.capAmb], [0n, 0n, 0n, 0n], "no capability");
    assert.equal(worker.noNewPrivs, true);
    const { code } = await client.exited;
    assert.equal(code, 0, client.stderr);
    assert.equal(client.stdout, "zeroconf password");
    assert.match(client.stderr, /found server .*fe80:[0-9a-f:]+%vethB/i);
    assert.doesNotMatch(linkState(pair.nsB, "vethB"), /[<,]UP[,>]/, "vethB is down again");
    assert.ok(!client.stderr.includes("zeroconf password"), "the password is not logged");
    await server.stop();
    assert.match(server.stderr, /Sending secret to bootclient/);
  } finally {
    pair.destroy();
  }
});

/** Capability numbers (linux/capability.h) of the names the unit uses. */
const CAP_NUMBERS: Record<string, number> = { CAP_DAC_OVERRIDE: 1, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7, CAP_NET_ADMIN: 12, CAP_NET_RAW: 13 };

/**
 * What units/ask-password-mandos.service gives the agent, as setpriv
 * arguments that also switch to user 65534 the way the agent does (so
 * no-setuid-fixup keeps the ambient set), and as the capability masks.
 */
function bootPrivileges(): { setpriv: string[]; ambient: bigint; bounding: bigint } {
  const unit = readFileSync(join(ROOT, "units", "ask-password-mandos.service"), "utf8");
  const setting = (key: string): string[] => {
    const m = new RegExp(`^${key}=(.*)$`, "m").exec(unit);
    assert.ok(m, `${key}= in the unit`);
    return m[1]!.trim().split(/\s+/);
  };
  const names = (caps: string[]) => caps.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`).join(",");
  const mask = (caps: string[]) =>
    caps.reduce((m, c) => {
      assert.ok(c in CAP_NUMBERS, `capability ${c} known to the test`);
      return m | (1n << BigInt(CAP_NUMBERS[c]!));
    }, 0n);
  const ambient = setting("AmbientCapabilities");
  const bounding = setting("CapabilityBoundingSet");
  const securebits = setting("SecureBits").map((b) => `+${b.replace(/-/g, "_")}`).join(",");
  return {
    setpriv: [
      "--bounding-set", `-all,${names(bounding)}`,
      "--securebits", securebits,
      // systemd makes the ambient capabilities inheritable too.
      "--inh-caps", `-all,${names(ambient)}`,
      "--ambient-caps", `-all,${names(ambient)}`,
      "--reuid", "65534", "--regid", "65534", "--clear-groups",
    ],
    ambient: mask(ambient),
    bounding: mask(bounding),
  };
}

test("as at boot (user 65534 with the unit's capabilities): our client brings its interface up and gets the password", { skip: skip || requires({ commands: ["setpriv"] }), timeout: 120_000 }, async () => {
  // User 65534 must read the keys and the (empty) hook directory.
  chmodSync(dir.path, 0o755);
  const keys = makeKeys(join(dir.path, "keys-boot"), "ours");
  chmodSync(keys, 0o755);
  for (const f of readdirSync(keys)) chmodSync(join(keys, f), 0o644);
  const noHooks = join(dir.path, "no-network-hooks.d");
  mkdirSync(noHooks, { mode: 0o755 });
  const boot = bootPrivileges();
  const pair = await createNsPair();
  try {
    const server = await serverInA(pair, keys, "boot password", HOLD);
    execFileSync("ip", ["-n", pair.nsB, "link", "set", "vethB", "down"]);
    const client = spawnInNs(
      pair.nsB,
      "setpriv",
      [...boot.setpriv, join(BIN, "mandos-client"), "--interface", "vethB", "--delay", "5", "--network-hook-dir", noHooks, ...keyArgs(keys)],
      { timeoutMs: 90_000 },
    );
    await clientWaiting(server, client);
    // One process brought vethB up and now talks to the server: it holds
    // the two network capabilities, and nothing else of root's.
    const s = readProcStatus(client.child.pid!);
    assert.deepEqual(s.uids, [65534, 65534, 65534, 65534], "real, effective, saved and file system uid");
    assert.deepEqual(s.gids, [65534, 65534, 65534, 65534]);
    assert.deepEqual(s.groups, []);
    assert.equal(boot.ambient, (1n << 12n) | (1n << 13n), "CAP_NET_ADMIN and CAP_NET_RAW");
    assert.deepEqual([s.capInh, s.capPrm, s.capEff, s.capAmb], [boot.ambient, boot.ambient, boot.ambient, boot.ambient]);
    assert.equal(s.capBnd, boot.bounding);
    assert.deepEqual(childPids(client.child.pid!).filter((pid) => commandLine(pid).includes("mandos-client")), [], "no worker");
    const { code } = await client.exited;
    assert.equal(code, 0, client.stderr);
    assert.equal(client.stdout, "boot password");
    assert.doesNotMatch(linkState(pair.nsB, "vethB"), /[<,]UP[,>]/, "vethB is down again");
    await server.stop();
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
