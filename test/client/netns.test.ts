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
import { chmodSync, copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, requires, tempDir } from "../helpers/index.js";
import { createNsPair, spawnInNs, type NsPair, type NsProcess } from "../helpers/netns.js";
import { serverWritableDir } from "../helpers/server.js";
import { DEBIAN_CLIENT, debianPeer, debianPeerMissing } from "../helpers/debian-peer.js";
import { keyArgs, makeKeys, passwordSection } from "../helpers/client.js";
import { childPids, commandLine } from "../helpers/proc.js";
import { agentServicePrivileges } from "../helpers/unit-privileges.js";
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
    // The kernel's default, which the client turns off while it holds vethB up.
    execFileSync("ip", ["netns", "exec", pair.nsB, "sysctl", "-q", "-w", "net.ipv6.conf.vethB.accept_dad=1"]);
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
    const dad = execFileSync("ip", ["netns", "exec", pair.nsB, "sysctl", "-n", "net.ipv6.conf.vethB.accept_dad"], { encoding: "utf8" });
    assert.equal(dad.trim(), "1", "DAD as it was");
    assert.ok(!client.stderr.includes("zeroconf password"), "the password is not logged");
    await server.stop();
    assert.match(server.stderr, /Sending secret to bootclient/);
  } finally {
    pair.destroy();
  }
});

/** Every process below `pid`, depth first. */
function descendants(pid: number): number[] {
  return childPids(pid).flatMap((c) => [c, ...descendants(c)]);
}

/** Keys, and an empty hook directory, that user 65534 can read. */
function keysForUser65534(name: string): { keys: string; noHooks: string } {
  chmodSync(dir.path, 0o755);
  const keys = makeKeys(join(dir.path, name), "ours");
  chmodSync(keys, 0o755);
  for (const f of readdirSync(keys)) chmodSync(join(keys, f), 0o644);
  const noHooks = join(dir.path, `${name}-no-network-hooks.d`);
  mkdirSync(noHooks, { mode: 0o755 });
  return { keys, noHooks };
}

/**
 * As the unit runs it at boot: the agent with the unit's privileges (by
 * setpriv; without them, as root in full), answering a real systemd-ask-password question in a private
 * mount namespace, with `client` as the client's command line. The
 * question is asked first, so its answer (the password) is what this
 * prints. Runs in namespace `ns`.
 */
function agentAsAtBoot(ns: string, client: string[], withUnitPrivileges = true): NsProcess {
  const q = (w: string) => `'${w.replace(/'/g, "'\\''")}'`;
  const setpriv = withUnitPrivileges ? ["setpriv", ...agentServicePrivileges().setpriv] : [];
  const agent = [...setpriv, process.execPath, join(BIN, "password-agent"), "--", ...client];
  // A /run of its own: Debian's client keeps its gpg-agent's socket there.
  const script = [
    "set -e",
    "mount -t tmpfs -o mode=0755 tmpfs /run",
    "mkdir -p /run/systemd/ask-password",
    "systemd-ask-password --no-tty --id=cryptsetup:boot --timeout=90 Password: &",
    "asker=$!",
    "until ls /run/systemd/ask-password/ask.* >/dev/null 2>&1; do sleep 0.05; done",
    `${agent.map(q).join(" ")} || echo "agent exited with $?" >&2`,
    "wait $asker",
  ].join("\n");
  return spawnInNs(ns, "unshare", ["--mount", "--propagation", "private", "sh", "-c", script], { timeoutMs: 90_000 });
}

test("as at boot (the agent with the unit's settings): the client runs as 65534 with no capability, the agent brings its interface up and down", {
  skip: skip || requires({ commands: ["setpriv", "unshare", "mount", "systemd-ask-password"] }),
  timeout: 120_000,
}, async () => {
  const { keys, noHooks } = keysForUser65534("keys-boot");
  const pair = await createNsPair();
  try {
    const server = await serverInA(pair, keys, "boot password", HOLD);
    execFileSync("ip", ["-n", pair.nsB, "link", "set", "vethB", "down"]);
    const boot = agentAsAtBoot(pair.nsB, [
      join(BIN, "mandos-client"), "--interface", "vethB", "--delay", "5", "--network-hook-dir", noHooks, ...keyArgs(keys),
    ]);
    await clientWaiting(server, boot);
    // The process that parses what the network sends, as the kernel sees it.
    const isClient = (pid: number) => commandLine(pid).includes("bin/mandos-client") && !commandLine(pid).includes("password-agent");
    const clients = descendants(boot.child.pid!).filter(isClient);
    assert.equal(clients.length, 1, `one client: ${clients.map(commandLine).join(" | ")}`);
    const s = readProcStatus(clients[0]!);
    assert.deepEqual(s.uids, [65534, 65534, 65534, 65534], "real, effective, saved and file system uid");
    assert.deepEqual(s.gids, [65534, 65534, 65534, 65534]);
    assert.deepEqual(s.groups, []);
    assert.deepEqual([s.capInh, s.capPrm, s.capEff, s.capAmb], [0n, 0n, 0n, 0n], "no capability in any set");
    assert.equal(s.noNewPrivs, true);
    assert.deepEqual(childPids(clients[0]!).filter(isClient), [], "no worker: the client is the network part");
    // The agent, root with the unit's bounding set, brought vethB up for it.
    const agent = readProcStatus(descendants(boot.child.pid!).find((pid) => commandLine(pid).includes("password-agent"))!);
    assert.deepEqual([agent.uids[1], agent.capEff], [0, agentServicePrivileges().boundingMask]);
    assert.match(linkState(pair.nsB, "vethB"), /[<,]UP[,>]/, "vethB is up while the client runs");
    const { code } = await boot.exited;
    assert.equal(code, 0, boot.stderr);
    assert.equal(boot.stdout, "boot password\n");
    assert.doesNotMatch(boot.stderr, /agent exited/);
    assert.doesNotMatch(linkState(pair.nsB, "vethB"), /[<,]UP[,>]/, "vethB is down again once the client ended");
    assert.ok(!boot.stderr.includes("boot password"), "the password is not logged");
    await server.stop();
  } finally {
    pair.destroy();
  }
});

/**
 * An interface that appears 5 s after the client started: a veth pair
 * made then, its end in B down. The client's pattern list leaves out
 * vethB, so the server can only be found on the new one.
 */
async function lateInterfaceRun(start: (pair: NsPair, clientArgs: string[]) => NsProcess, password: string) {
  const { keys, noHooks } = keysForUser65534(`keys-late-${password.replace(/\W/g, "")}`);
  const pair = await createNsPair();
  try {
    const server = await serverInA(pair, keys, password);
    execFileSync("ip", ["netns", "exec", pair.nsB, "sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0"]);
    const client = start(pair, ["--interface", "!vethB", "--debug", "--network-hook-dir", noHooks, ...keyArgs(keys)]);
    await new Promise((r) => setTimeout(r, 5000));
    assert.ok(client.running, `the client still waits for an interface: ${client.stderr}`);
    execFileSync("ip", ["-n", pair.nsA, "link", "add", "vethA2", "type", "veth", "peer", "name", "late0", "netns", pair.nsB]);
    execFileSync("ip", ["netns", "exec", pair.nsA, "sysctl", "-q", "-w", "net.ipv6.conf.vethA2.accept_dad=0"]);
    execFileSync("ip", ["-n", pair.nsA, "link", "set", "vethA2", "up"]);
    assert.doesNotMatch(linkState(pair.nsB, "late0"), /[<,]UP[,>]/, "late0 appears down");
    const { code } = await client.exited;
    assert.equal(code, 0, client.stderr);
    assert.match(client.stdout, new RegExp(`^${password}\n?$`));
    assert.match(client.stderr, /using interface "late0", which appeared after the start/);
    assert.match(client.stderr, /found server .*fe80:[0-9a-f:]+%late0/i);
    assert.doesNotMatch(client.stderr, /found server .*%vethB/i, "vethB is excluded");
    assert.doesNotMatch(linkState(pair.nsB, "late0"), /[<,]UP[,>]/, "late0 is down again: brought up for this run only");
    await server.stop();
  } finally {
    pair.destroy();
  }
}

test("an interface created 5 s after our client (root) started: it is brought up, the server found on it, the password printed", { skip, timeout: 120_000 }, async () => {
  await lateInterfaceRun((pair, args) => spawnInNs(pair.nsB, join(BIN, "mandos-client"), args, { timeoutMs: 90_000 }), "late for root");
});

test("as at boot, an interface created 5 s after the client started: the agent brings it up on the client's request", {
  skip: skip || requires({ commands: ["setpriv", "unshare", "mount", "systemd-ask-password"] }),
  timeout: 120_000,
}, async () => {
  await lateInterfaceRun((pair, args) => agentAsAtBoot(pair.nsB, [join(BIN, "mandos-client"), ...args]), "late at boot");
});

test("Debian's mandos-client run by our agent as root: offered a channel it does not know, it brings its interface up itself", {
  skip: skip || debianPeerMissing(DEBIAN_CLIENT) || requires({ commands: ["unshare", "mount", "systemd-ask-password"] }),
  timeout: 120_000,
}, async () => {
  const { keys, noHooks } = keysForUser65534("keys-debian-by-agent");
  // Its package keeps it in a directory only root may enter: a set-user-ID copy the agent may run as 65534.
  const program = join(dir.path, "debian-mandos-client");
  copyFileSync(debianPeer(DEBIAN_CLIENT), program);
  chmodSync(program, 0o4755);
  const pair = await createNsPair();
  try {
    const server = await serverInA(pair, keys, "for the C client by our agent");
    execFileSync("ip", ["-n", pair.nsB, "link", "set", "vethB", "down"]);
    const boot = agentAsAtBoot(pair.nsB, [program, "--interface", "vethB", "--delay", "5", "--network-hook-dir", noHooks, ...keyArgs(keys)], false);
    const { code } = await boot.exited;
    assert.equal(code, 0, boot.stderr);
    assert.equal(boot.stdout, "for the C client by our agent\n");
    assert.doesNotMatch(boot.stderr, /agent exited|stopped it/);
    await server.stop();
  } finally {
    pair.destroy();
  }
});

test("Debian's mandos-client finds our server by Zeroconf and gets its password", { skip: skip || debianPeerMissing(DEBIAN_CLIENT), timeout: 120_000 }, async () => {
  const keys = makeKeys(join(dir.path, "keys-debian-client"), "ours");
  const pair = await createNsPair();
  try {
    const server = await serverInA(pair, keys, "for the C client");
    // Debian's client starts a gpg-agent in /run/tmp: give it a private /run.
    const client = spawnInNs(pair.nsB, debianPeer(DEBIAN_CLIENT), ["--interface", "vethB", ...keyArgs(keys)], { timeoutMs: 60_000, privateRun: true });
    const { code } = await client.exited;
    assert.equal(code, 0, client.stderr);
    assert.equal(client.stdout, "for the C client");
    await server.stop();
  } finally {
    pair.destroy();
  }
});
