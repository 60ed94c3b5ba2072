// Reload without restart: our server on loopback and a private system bus,
// SIGHUP after clients.conf and mandos.conf change, and Debian's mandos-ctl
// (1.8.16) and mandos-client as the ones who must see the change, or not
// notice it. A broken file changes nothing and says so in one line.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import { requires } from "../helpers/index.js";
import { busRig, ctl, ctlJson, fakeKeyId, readJson, serverWritableDir, startFetch, startServer, waitFor, writeConfig, type BusRig, type RunningServer } from "../helpers/server.js";
import { DEBIAN_CLIENT, DEBIAN_CTL, DEBIAN_KEYGEN, debianPeerMissing } from "../helpers/debian-peer.js";
import { bindDatagram, type DatagramReceiver } from "../../src/sys/unix-dgram.js";

const skip = requires({ commands: ["dbus-daemon"] }) || debianPeerMissing(DEBIAN_CTL, DEBIAN_CLIENT, DEBIAN_KEYGEN);

let rig: BusRig;
let server: RunningServer;
let notify: DatagramReceiver;
let configDir: string;
let stateDir: string;

/** A client that never connects; no checker runs during the test (interval P1D). */
const idle = (name: string, extra = "") => `[${name}]\nhost = ${name}\nkey_id = ${fakeKeyId(name.length * 7)}\nsecret = aGVsbG8=\n${extra}`;
// "kept" has Debian's real keys and waits for approval; the rest never connect.
const HEAD = "[DEFAULT]\nchecker = true\ninterval = P1D\n\n";
let kept: string;

before(async () => {
  if (skip) return;
  rig = await busRig("mandos-reload-", "hunter2");
  kept = rig.keys.section("kept").replace(/^\[kept\]$/m, "[kept]\napproval_delay = PT2M\napproved_by_default = False");
  configDir = writeConfig(join(rig.dir.path, "conf"), { clients: HEAD + kept + "\n" + idle("sleepy") + idle("goes") + idle("edits"), port: 0 });
  stateDir = serverWritableDir(join(rig.dir.path, "state"));
  const notifyPath = join(rig.dir.path, "notify");
  notify = bindDatagram(notifyPath);
  chmodSync(notifyPath, 0o777); // the server sends after dropping root
  server = await startServer({ configDir, stateDir, env: { ...rig.bus.env, NOTIFY_SOCKET: notifyPath } });
  assert.match(notify.receive(5000)?.toString() ?? "", /^READY=1$/m);
});

after(async () => {
  if (skip) return;
  await server?.stop();
  notify?.close();
  rig?.close();
});

const json = () => ctlJson("debian", rig.bus.env);

const lines = (re: RegExp) => server.output().split("\n").filter((l) => re.test(l));

/** SIGHUP, and wait for the server's verdict line (the n-th of its kind). */
async function hangUp(verdict: RegExp): Promise<void> {
  const seen = lines(verdict).length;
  server.proc.kill("SIGHUP");
  await waitFor("the reload", () => lines(verdict).length > seen, 15_000);
}

test("SIGHUP: mandos-ctl sees the added, removed and changed clients; the unchanged keep their state; a waiting client is served", { skip, timeout: 120_000 }, async () => {
  // Run-time state the reload must keep: a client waiting for approval, and
  // one disabled after a CheckedOK.
  const waiting = startFetch(rig.keys, server.port, 90_000);
  await waitFor("a pending approval", async () => (await json()).kept!.ApprovalPending === true, 30_000);
  assert.equal((await ctl("debian", ["--bump-timeout", "sleepy"], rig.bus.env)).code, 0);
  assert.equal((await ctl("debian", ["--disable", "sleepy"], rig.bus.env)).code, 0);
  const before = await json();
  assert.notEqual(before.sleepy!.LastCheckedOK, "");

  writeFileSync(join(configDir, "clients.conf"), HEAD + kept + "\n" + idle("sleepy") + idle("edits", "timeout = PT7M\n") + idle("new"));
  appendFileSync(join(configDir, "mandos.conf"), "servicename = Elsewhere\nmax_connections_per_address = 8\n");
  await hangUp(/Reloaded: /);
  assert.match(notify.receive(5000)?.toString() ?? "", /^RELOADING=1\nMONOTONIC_USEC=\d+$/);
  assert.match(notify.receive(5000)?.toString() ?? "", /^READY=1\nSTATUS=Serving 4 clients on port \d+$/);

  const now = await json();
  assert.deepEqual(Object.keys(now), ["kept", "sleepy", "edits", "new"]);
  assert.equal(now.edits!.Timeout, 420_000);
  assert.equal(now.new!.Enabled, true);
  for (const name of ["kept", "sleepy"]) assert.deepEqual(now[name], before[name], `${name} unchanged`);
  assert.equal((await ctl("debian", ["-V", "sleepy"], rig.bus.env)).code, 1, "still disabled");
  // As Mandos 1.8 emits them, on the server object under both interface names.
  for (const iface of ["se.recompile.Mandos", "se.bsnet.fukt.Mandos"]) {
    assert.ok(rig.signals.some((s) => s.path === "/" && s.iface === iface && s.member === "ClientAdded" && s.body[0] === "/clients/new"), `ClientAdded on ${iface}`);
    assert.ok(
      rig.signals.some((s) => s.path === "/" && s.iface === iface && s.member === "ClientRemoved" && s.body[0] === "/clients/goes" && s.body[1] === "goes"),
      `ClientRemoved on ${iface}`,
    );
  }
  assert.ok(rig.signals.some((s) => s.member === "InterfacesRemoved" && s.body[0] === "/clients/goes"));
  assert.equal(lines(/warning: mandos\.conf: servicename changed, but only a restart applies it/).length, 1, server.output());
  assert.equal(lines(/mandos\.conf: now using the new max_connections_per_address$/).length, 1);
  const state = readJson(join(stateDir, "clients.json")) as { clients: { name: string }[]; config: { name: string }[] };
  assert.deepEqual(state.clients.map((c) => c.name), ["kept", "sleepy", "edits", "new"]);
  assert.deepEqual(state.config.map((c) => c.name), ["kept", "sleepy", "edits", "new"]);

  // The connection that waited through the reload gets its secret once approved.
  assert.equal((await ctl("debian", ["--approve", "kept"], rig.bus.env)).code, 0);
  const got = await waiting.result;
  assert.equal(got.code, 0, got.stderr);
  assert.equal(got.stdout.toString(), "hunter2");
});

test("SIGHUP with a broken clients.conf or mandos.conf changes nothing and says why in one line", { skip, timeout: 60_000 }, async () => {
  const before = await json();
  const clientsConf = join(configDir, "clients.conf");
  const good = readFileSync(clientsConf, "utf8");
  // Line 9 of the new file; "kept" and "new" would also be removed if it were taken.
  writeFileSync(clientsConf, HEAD + idle("edits", "timeout = banana\n") + idle("sleepy"));
  await hangUp(/Reload refused/);
  const refused = lines(/Reload refused/);
  assert.equal(refused.length, 1, server.output());
  assert.match(refused[0]!, /^mandos: error: Reload refused, configuration unchanged: \S+\/clients\.conf:9: \[edits\] timeout: not a duration: "banana"/);
  assert.deepEqual(await json(), before);

  writeFileSync(clientsConf, good.replace("timeout = PT7M", "timeout = PT9M"));
  const mandosConf = join(configDir, "mandos.conf");
  writeFileSync(mandosConf, readFileSync(mandosConf, "utf8").replace(/^port = 0$/m, "port = banana"));
  await hangUp(/Reload refused/);
  const last = lines(/Reload refused/).at(-1)!;
  assert.match(last, /Reload refused, configuration unchanged: \S+\/mandos\.conf:\d+: \[DEFAULT\] port: must be a port number/);
  assert.equal((await json()).edits!.Timeout, 420_000, "clients.conf is not taken either");
  assert.equal(lines(/Reload refused/).length, 2);

  // A priority string GnuTLS refuses would fail every handshake from then on.
  writeFileSync(mandosConf, readFileSync(mandosConf, "utf8").replace(/^port = banana$/m, "port = 0\npriority = NORMAL:+NO-SUCH-THING"));
  await hangUp(/Reload refused/);
  assert.match(lines(/Reload refused/).at(-1)!, /Reload refused, configuration unchanged: \S+\/mandos\.conf: priority: bad priority string "NORMAL:\+NO-SUCH-THING": /);
  assert.equal(lines(/Reload refused/).length, 3);
  writeFileSync(mandosConf, readFileSync(mandosConf, "utf8").replace(/^priority = .*\n/m, ""));
});

test("a restart after the reloads restores what the last good reload left", { skip, timeout: 60_000 }, async () => {
  const before = await json();
  const mandosConf = join(configDir, "mandos.conf");
  writeFileSync(mandosConf, readFileSync(mandosConf, "utf8").replace(/^port = banana$/m, "port = 0"));
  const clientsConf = join(configDir, "clients.conf");
  writeFileSync(clientsConf, readFileSync(clientsConf, "utf8").replace("timeout = PT9M", "timeout = PT7M"));
  await server.stop();
  server = await startServer({ configDir, stateDir, env: rig.bus.env });
  const after = await json();
  assert.deepEqual(Object.keys(after), ["kept", "sleepy", "edits", "new"]);
  assert.equal(after.sleepy!.Enabled, false);
  assert.equal(after.sleepy!.LastCheckedOK, before.sleepy!.LastCheckedOK);
  assert.equal(after.edits!.Timeout, 420_000);
  assert.equal(after.new!.Created, before.new!.Created);
});
