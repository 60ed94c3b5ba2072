// The server as a process: command line, readiness for systemd, running
// without D-Bus, checkers as the unprivileged user, bad input on its port,
// and the systemd units.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { bindDatagram } from "../../src/sys/unix-dgram.js";
import { BIN, ROOT, requires, run, tempDir } from "../helpers/index.js";
import { POLICY, asNobody, fakeKeyId, mandosIds, serverWritableDir, sleep, startBus, startServer, waitFor, writeConfig } from "../helpers/server.js";

const mandos = (args: string[], env: NodeJS.ProcessEnv = process.env) => run(process.execPath, [join(BIN, "mandos"), ...args], { env, timeoutMs: 20_000 });

const clients = (checker: string) => `[one]
host = one.example
key_id = ${fakeKeyId(1)}
secret = aGVsbG8=
checker = ${checker}
interval = PT1S
`;

test("command line: --version, --help, bad options, no port without Zeroconf", { timeout: 30_000 }, async () => {
  const v = await mandos(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout.toString(), /^mandos \d/);
  const h = await mandos(["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout.toString(), /--no-zeroconf/);
  const bad = await mandos(["--bogus"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /mandos: error: .*bogus/);
  assert.equal(bad.stderr.trim().split("\n").length, 2, "usage line and one error line");
  using dir = tempDir();
  writeConfig(dir.path, { clients: "" });
  const noPort = await mandos(["--configdir", dir.path, "--no-zeroconf", "--foreground"]);
  assert.equal(noPort.code, 2);
  assert.match(noPort.stderr, /Needs port or socket to work without Zeroconf/);
  const check = await mandos(["--check"]);
  assert.equal(check.code, 0, check.stdout.toString());
});

test("without D-Bus: serves, tells systemd READY=1 then STOPPING=1, exits 0 on SIGTERM", { timeout: 30_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  const configDir = writeConfig(join(dir.path, "conf"), { clients: clients("true"), port: 0 });
  const stateDir = serverWritableDir(join(dir.path, "state"));
  const notifyPath = join(dir.path, "notify");
  const receiver = bindDatagram(notifyPath);
  // systemd's socket is writable by all; the server sends after dropping root.
  chmodSync(notifyPath, 0o777);
  try {
    const env = { ...process.env, NOTIFY_SOCKET: notifyPath, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${join(dir.path, "no-bus")}` };
    const server = await startServer({ configDir, stateDir, env, args: ["--no-dbus"] });
    const ready = receiver.receive(5000)?.toString() ?? "";
    assert.match(ready, /^READY=1$/m);
    assert.match(ready, /^STATUS=Serving 1 clients on port \d+$/m);
    assert.ok(!/D-Bus/.test(server.output()), "no D-Bus attempted");
    server.proc.kill("SIGTERM");
    assert.equal(await server.exited, 0, server.output());
    assert.equal(receiver.receive(5000)?.toString(), "STOPPING=1");
  } finally {
    receiver.close();
  }
});

test("checkers run as checker_user (nobody by default, not the server's user), in /, with the client's attributes", { skip: requires({ root: true }), timeout: 30_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  const out = join(dir.path, "out");
  mkdirSync(out);
  chmodSync(out, 0o777); // the checker's user writes here
  const configDir = writeConfig(join(dir.path, "conf"), {
    clients: clients(`echo "$(id -u) $(pwd) %%(host)s %%(name)s" > ${out}/checker.out`),
    port: 0,
  });
  const stateDir = serverWritableDir(join(dir.path, "state"));
  const server = await startServer({ configDir, stateDir, env: process.env, args: ["--no-dbus"] });
  try {
    await waitFor("the first checker", () => existsSync(join(out, "checker.out")), 10_000);
    await sleep(100);
    assert.equal(readFileSync(join(out, "checker.out"), "utf8"), "65534 / one.example one\n");
    assert.match(server.output(), /Checker for one succeeded/);
  } finally {
    await server.stop();
  }
});

test("garbage on the port does not disturb the server", { timeout: 30_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755);
  const configDir = writeConfig(join(dir.path, "conf"), { clients: clients("true"), port: 0 });
  const stateDir = serverWritableDir(join(dir.path, "state"));
  const server = await startServer({ configDir, stateDir, env: process.env, args: ["--no-dbus"] });
  try {
    for (const payload of ["\x00\xff\xfe garbage\r\n", "1\r\n\x16\x03\x01\x00\x05hello", "2\r\n", "x".repeat(100_000)]) {
      await new Promise<void>((resolve) => {
        const s = connect({ host: "::1", port: server.port }, () => {
          s.end(payload);
        });
        s.on("error", () => resolve());
        s.on("close", () => resolve());
        setTimeout(() => s.destroy(), 3000);
      });
    }
    await sleep(200);
    assert.equal(server.proc.exitCode, null, server.output());
    assert.ok(!server.output().includes("    at "), "no stack trace");
  } finally {
    await server.stop();
  }
});

test("systemd units pass systemd-analyze verify without complaint", { skip: requires({ commands: ["systemd-analyze"] }), timeout: 60_000 }, async () => {
  using dir = tempDir();
  // ExecStart must name an executable; point it at a stand-in.
  const stub = join(dir.path, "mandos");
  writeFileSync(stub, "#!/bin/sh\n", { mode: 0o755 });
  const service = readFileSync(join(ROOT, "units", "mandos.service"), "utf8").replaceAll("/usr/sbin/mandos", stub);
  writeFileSync(join(dir.path, "mandos.service"), service);
  copyFileSync(join(ROOT, "units", "mandos.socket"), join(dir.path, "mandos.socket"));
  const r = await run("systemd-analyze", ["verify", "--man=no", join(dir.path, "mandos.service"), join(dir.path, "mandos.socket")], { timeoutMs: 60_000 });
  assert.equal(r.stderr, "");
  assert.equal(r.code, 0);
  assert.match(service, /^Type=notify$/m);
  assert.match(service, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
});

test(
  "dbus-daemon runs with the shipped D-Bus policy: root and the server's group may own the server's names, other users may not",
  { skip: requires({ root: true, commands: ["dbus-daemon", "busctl", "setpriv"] }) || (mandosIds() ? false : "needs user _mandos"), timeout: 30_000 },
  async () => {
    using dir = tempDir();
    chmodSync(dir.path, 0o755);
    const bus = startBus(join(dir.path, "bus"), POLICY);
    try {
      // Each busctl exits at once, giving the name back.
      const requestName = (who: "root" | "member" | "stranger", name: string) =>
        run(
          who === "root" ? "busctl" : "setpriv",
          [...(who === "root" ? [] : [...asNobody(who), "busctl"]), `--address=${bus.address}`, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su", name, "4"],
          { timeoutMs: 10_000 },
        );
      for (const name of ["se.recompile.Mandos", "se.bsnet.fukt.Mandos"]) {
        for (const who of ["root", "member"] as const) {
          const r = await requestName(who, name);
          assert.equal(r.stdout.toString(), "u 1\n", `${who} owns ${name}: ${r.stderr}`); // PRIMARY_OWNER
        }
        const stranger = await requestName("stranger", name);
        assert.equal(stranger.code, 1);
        assert.match(stranger.stderr, /^Call failed: Access denied$/m);
      }
    } finally {
      bus.stop();
    }
    // A policy dbus-daemon cannot read stops it from starting: the test above can fail.
    const broken = join(dir.path, "broken.conf");
    writeFileSync(broken, readFileSync(POLICY, "utf8").replace("</busconfig>", ""));
    assert.throws(() => startBus(join(dir.path, "broken-bus"), broken), /dbus-daemon failed/);
  },
);
