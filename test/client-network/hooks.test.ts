// Network hooks: which files run, in which order, with which arguments and
// environment; failures, hangs and aborts. Hooks here only write files, so
// they run in the test's own namespace; the comparison with Debian's client
// runs that client in a namespace of its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { makeLogger } from "../../src/cli/log.js";
import {
  DEFAULT_HOOK_DIR,
  chooseHooks,
  formatDelay,
  hookDeviceList,
  hookEnvironment,
  isExecutableFormat,
  isValidHookName,
  listHooks,
  runNetworkHooks,
  type HookCandidate,
} from "../../src/client/network/hooks.js";
import { requires, tempDir } from "../helpers/index.js";
import { DEBIAN_CLIENT, debianPeer, debianPeerMissing } from "../helpers/debian-peer.js";
import { Netns } from "../helpers/client-network.js";


/** A hook that appends one record (its argv, our variables, stdin) to $HOOKLOG. */
const RECORDER = `#!/bin/sh
{
  printf 'name=%s\\n' "$(basename "$0")"
  printf 'argc=%s\\n' "$#"
  printf 'arg1=%s\\n' "\${1-<none>}"
  for v in MANDOSNETHOOKDIR DEVICE MODE VERBOSITY DELAY CONNECT; do
    eval "printf '%s=%s\\\\n' $v \\"\\\${$v-<unset>}\\""
  done
  printf 'stdin=%s\\n' "$(readlink /proc/$$/fd/0)"
  printf 'inherited=%s\\n' "\${KEEP_ME-<unset>}"
  echo ---
} >> "$HOOKLOG"
`;

type HookRecord = Record<string, string>;

function readRecords(file: string): HookRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("---\n")
    .filter((chunk) => chunk.trim() !== "")
    .map((chunk) => {
      const rec: HookRecord = {};
      for (const line of chunk.trim().split("\n")) {
        const eq = line.indexOf("=");
        rec[line.slice(0, eq)] = line.slice(eq + 1);
      }
      return rec;
    });
}

function writeHook(dir: string, name: string, body: string, mode = 0o755): void {
  writeFileSync(`${dir}/${name}`, body);
  chmodSync(`${dir}/${name}`, mode);
}

function capture() {
  const lines: string[] = [];
  const log = makeLogger("mandos-client", { level: "debug", write: (l) => lines.push(l) });
  return { lines, log };
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

// ------------------------------------------------------------ pure

test("isExecutableFormat: scripts and ELF only", () => {
  assert.ok(isExecutableFormat(Buffer.from("#!/bin/sh\n")));
  assert.ok(isExecutableFormat(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2])));
  for (const bad of ["", "#", "echo hi", "\x7fEL", "MZ\x90\x00"]) assert.ok(!isExecutableFormat(Buffer.from(bad, "latin1")), JSON.stringify(bad));
});

test("isValidHookName: letters, digits, _ . - only", () => {
  for (const ok of ["a", "10-bridge", "Z_z.9", "openvpn", ".hidden", "x.dpkg-new", "-"]) assert.ok(isValidHookName(ok), ok);
  for (const bad of ["", "bad~", "a b", "#x#", "a/b", "ä", "x\n", "x*", "x;y", "$x"]) assert.ok(!isValidHookName(bad), JSON.stringify(bad));
});

test("chooseHooks: executable regular files with good names, in byte order", () => {
  const f = (name: string, mode = 0o755, kind: HookCandidate["kind"] = "file"): HookCandidate => ({ name, kind, mode });
  const choice = chooseHooks([
    f("b-hook"),
    f("a_hook"),
    f("Z"),
    f("10x"),
    f("B"),
    f("bad~"),
    f("noexec", 0o644),
    f("groupexec", 0o610),
    f("otherexec", 0o601),
    f("subdir", 0o755, "other"),
    f("vanished", 0, "unreadable"),
    f(".", 0o755, "other"),
  ]);
  // C-locale alphasort: digits, then upper case, then lower case.
  assert.deepEqual(choice.run, ["10x", "B", "Z", "a_hook", "b-hook", "groupexec", "otherexec"]);
  assert.deepEqual(choice.skipped, [
    { name: "bad~", reason: "bad name" },
    { name: "noexec", reason: "not executable" },
    { name: "subdir", reason: "not a file" },
    { name: "vanished", reason: "cannot stat it" },
    { name: ".", reason: "not a file" },
  ]);
});

test("DELAY is printed as C's %f of a float, DEVICE joins the names", () => {
  assert.equal(formatDelay(2.5), "2.500000");
  assert.equal(formatDelay(0), "0.000000");
  assert.equal(formatDelay(3), "3.000000");
  assert.equal(formatDelay(0.3), "0.300000");
  assert.equal(formatDelay(1.1), "1.100000");
  assert.equal(formatDelay(12.3456789), "12.345679");
  assert.equal(hookDeviceList([]), "");
  assert.equal(hookDeviceList(["eth0", "none", "br0"]), "eth0,none,br0");
  assert.equal(hookDeviceList(["", "eth0", ""]), "eth0");
  assert.equal(DEFAULT_HOOK_DIR, "/lib/mandos/network-hooks.d");
});

test("hookEnvironment: our variables replace inherited ones; DELAY/CONNECT only for start/stop", () => {
  const base = { PATH: "/bin", CONNECT: "stale", DELAY: "stale", MODE: "stale", KEEP: "1", UNDEF: undefined };
  const settings = { hookDir: "/h", device: "eth0,none", debug: false, delaySeconds: 2.5, connect: "[fe80::1]:4711" };
  assert.deepEqual(hookEnvironment(settings, "start", base), {
    PATH: "/bin",
    KEEP: "1",
    MANDOSNETHOOKDIR: "/h",
    DEVICE: "eth0,none",
    MODE: "start",
    VERBOSITY: "0",
    DELAY: "2.500000",
    CONNECT: "[fe80::1]:4711",
  });
  const stop = hookEnvironment({ ...settings, debug: true, connect: null }, "stop", base);
  assert.equal(stop.VERBOSITY, "1");
  assert.equal(stop.MODE, "stop");
  assert.equal(stop.DELAY, "2.500000");
  assert.ok(!("CONNECT" in stop), "no CONNECT without --connect, even if inherited");
  for (const mode of ["files", "modules"] as const) {
    const env = hookEnvironment(settings, mode, base);
    assert.equal(env.MODE, mode);
    assert.ok(!("DELAY" in env) && !("CONNECT" in env), mode);
  }
});

// ------------------------------------------------------------ running hooks

test("hooks run in order with the mode as argument, our environment and stdin from /dev/null", async () => {
  using dir = tempDir();
  const hooks = `${dir.path}/hooks.d`;
  mkdirSync(hooks);
  const logFile = `${dir.path}/log`;
  for (const name of ["b-hook", "a_hook", "Z", "10x", "B"]) writeHook(hooks, name, RECORDER);
  writeHook(hooks, "bad~", RECORDER);
  writeHook(hooks, "noexec", RECORDER, 0o644);
  mkdirSync(`${hooks}/subdir`);
  writeHook(dir.path, "elsewhere", RECORDER);
  symlinkSync(`${dir.path}/elsewhere`, `${hooks}/linked`);
  const { lines, log } = capture();
  const settings = { hookDir: hooks, device: "va,none,vb", debug: true, delaySeconds: 0.3, connect: "[fe80::1]:1" };
  const env = { ...process.env, HOOKLOG: logFile, KEEP_ME: "kept", CONNECT: "inherited" };
  const start = await runNetworkHooks({ ...settings, mode: "start", log, env });
  assert.deepEqual(
    start.map((r) => [r.name, r.outcome]),
    ["10x", "B", "Z", "a_hook", "b-hook", "linked"].map((n) => [n, "ok"]),
  );
  const stop = await runNetworkHooks({ ...settings, connect: null, debug: false, mode: "stop", env });
  assert.equal(stop.length, 6);
  const recs = readRecords(logFile);
  assert.deepEqual(
    recs.map((r) => `${r.MODE}:${r.name}`),
    [
      ...["10x", "B", "Z", "a_hook", "b-hook", "linked"].map((n) => `start:${n}`),
      // Mandos runs the stop hooks in the same order as the start hooks.
      ...["10x", "B", "Z", "a_hook", "b-hook", "linked"].map((n) => `stop:${n}`),
    ],
  );
  for (const r of recs) {
    assert.equal(r.argc, "1");
    assert.equal(r.arg1, r.MODE);
    assert.equal(r.MANDOSNETHOOKDIR, hooks);
    assert.equal(r.DEVICE, "va,none,vb");
    assert.equal(r.DELAY, "0.300000");
    assert.equal(r.stdin, "/dev/null");
    assert.equal(r.inherited, "kept");
  }
  assert.ok(recs.filter((r) => r.MODE === "start").every((r) => r.VERBOSITY === "1" && r.CONNECT === "[fe80::1]:1"));
  assert.ok(recs.filter((r) => r.MODE === "stop").every((r) => r.VERBOSITY === "0" && r.CONNECT === "<unset>"));
  // Skipped entries: one debug line each, nothing at warning level.
  assert.ok(lines.includes('mandos-client: debug: ignoring network hook "bad~": bad name\n'), lines.join(""));
  assert.ok(lines.includes('mandos-client: debug: ignoring network hook "noexec": not executable\n'));
  assert.ok(lines.includes('mandos-client: debug: ignoring network hook "subdir": not a file\n'));
  assert.ok(!lines.some((l) => l.includes("warning")), lines.join(""));
});

test("a failing hook is one warning line and the others still run", async () => {
  using dir = tempDir();
  const logFile = `${dir.path}/log`;
  writeHook(dir.path, "1-fails", "#!/bin/sh\necho 'some output' >&2\nexit 3\n");
  writeHook(dir.path, "2-signal", "#!/bin/sh\nkill -USR1 $$\n");
  writeHook(dir.path, "3-noexec-format", "not a script at all\n");
  writeHook(dir.path, "4-works", RECORDER);
  const { lines, log } = capture();
  const errFile = `${dir.path}/stderr`;
  const { openSync, closeSync } = await import("node:fs");
  const fd = openSync(errFile, "w");
  let results;
  try {
    results = await runNetworkHooks({
      hookDir: dir.path,
      device: "",
      debug: false,
      delaySeconds: 2.5,
      mode: "start",
      log,
      env: { ...process.env, HOOKLOG: logFile },
      outputFd: fd,
    });
  } finally {
    closeSync(fd);
  }
  assert.deepEqual(
    results.map((r) => [r.name, r.outcome]),
    [
      ["1-fails", "failed"],
      ["2-signal", "failed"],
      ["3-noexec-format", "error"],
      ["4-works", "ok"],
    ],
  );
  const warnings = lines.filter((l) => l.includes(": warning: "));
  assert.deepEqual(warnings, [
    'mandos-client: warning: network hook "1-fails" exited with status 3\n',
    'mandos-client: warning: network hook "2-signal" died by signal SIGUSR1\n',
    'mandos-client: warning: cannot run network hook "3-noexec-format": not a program (no "#!" or ELF header)\n',
  ]);
  assert.equal(readRecords(logFile).length, 1);
  // The hook's own output went where we said (Mandos: our stderr).
  assert.match(readFileSync(errFile, "utf8"), /some output/);
});

test("a hook that hangs is killed at the time limit, with its children", async () => {
  using dir = tempDir();
  const pidFile = `${dir.path}/child.pid`;
  writeHook(dir.path, "hangs", `#!/bin/sh\nsleep 60 &\necho $! > ${pidFile}\nwait\n`);
  writeHook(dir.path, "ignores-term", "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 1; done\n");
  writeHook(dir.path, "zz-after", "#!/bin/sh\nexit 0\n");
  const { lines, log } = capture();
  const t0 = Date.now();
  const results = await runNetworkHooks({
    hookDir: dir.path,
    device: "",
    debug: false,
    delaySeconds: 1,
    mode: "start",
    log,
    timeoutMs: 300,
    killGraceMs: 300,
  });
  const took = Date.now() - t0;
  assert.deepEqual(
    results.map((r) => [r.name, r.outcome, r.signal]),
    [
      ["hangs", "timeout", "SIGTERM"],
      ["ignores-term", "timeout", "SIGKILL"],
      ["zz-after", "ok", null],
    ],
  );
  assert.ok(took < 5000, `took ${took} ms`);
  assert.ok(lines.includes('mandos-client: warning: network hook "hangs" did not finish within 0.3 s; killed\n'), lines.join(""));
  const grandchild = Number(readFileSync(pidFile, "utf8"));
  // Give init a moment to reap the orphan.
  for (let i = 0; i < 50 && alive(grandchild); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(!alive(grandchild), "the hook's background child was killed too");
});

test("an abort (SIGTERM) stops the running hook and skips the rest", async () => {
  using dir = tempDir();
  writeHook(dir.path, "a-slow", "#!/bin/sh\nsleep 60\n");
  writeHook(dir.path, "b-never", `#!/bin/sh\ntouch ${dir.path}/ran\n`);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const t0 = Date.now();
  const results = await runNetworkHooks({ hookDir: dir.path, device: "", debug: false, delaySeconds: 1, mode: "start", signal: ac.signal });
  assert.ok(Date.now() - t0 < 5000);
  assert.deepEqual(
    results.map((r) => [r.name, r.outcome]),
    [["a-slow", "aborted"]],
  );
  assert.ok(!existsSync(`${dir.path}/ran`));
});

test('"files" and "modules" modes return what the hooks print', async () => {
  using dir = tempDir();
  writeHook(dir.path, "vpn", '#!/bin/sh\ncase "$1:$MODE" in files:files) echo /usr/sbin/openvpn;; modules:modules) echo tun;; esac\n');
  const files = await runNetworkHooks({ hookDir: dir.path, device: "", debug: false, delaySeconds: 1, mode: "files" });
  const modules = await runNetworkHooks({ hookDir: dir.path, device: "", debug: false, delaySeconds: 1, mode: "modules" });
  assert.equal(files[0].output, "/usr/sbin/openvpn\n");
  assert.equal(modules[0].output, "tun\n");
});

test("a missing hook directory is not an error; listHooks says so at debug level", async () => {
  using dir = tempDir();
  const { lines, log } = capture();
  assert.equal(await listHooks(`${dir.path}/nope`, log), null);
  assert.deepEqual(await runNetworkHooks({ hookDir: `${dir.path}/nope`, device: "", debug: false, delaySeconds: 1, mode: "start", log }), []);
  assert.ok(lines.every((l) => l.includes(": debug: network hook directory")), lines.join(""));
  writeFileSync(`${dir.path}/file`, "");
  const bad = capture();
  assert.deepEqual(await runNetworkHooks({ hookDir: `${dir.path}/file`, device: "", debug: false, delaySeconds: 1, mode: "start", log: bad.log }), []);
  assert.deepEqual(bad.lines, [`mandos-client: warning: cannot read network hook directory "${dir.path}/file": ENOTDIR\n`]);
});

// Debian's client, run in a namespace of our own with "--interface none"
// (nothing is brought up), gives its hooks the same variables in the same
// order as we do. (It passes no argument; we pass the mode as the manual says.)
test(
  "hook order and environment match Debian's mandos-client",
  { skip: requires({ root: true, commands: ["ip"] }) || debianPeerMissing(DEBIAN_CLIENT) },
  async () => {
    using dir = tempDir();
    chmodSync(dir.path, 0o755);
    const hooks = `${dir.path}/hooks.d`;
    mkdirSync(hooks);
    for (const name of ["b-hook", "a_hook", "Z", "10x", "B", "bad~"]) writeHook(hooks, name, RECORDER);
    const debLog = `${dir.path}/debian.log`;
    const ourLog = `${dir.path}/ours.log`;
    const ns = Netns.create();
    try {
      const args = [
        "HOOKLOG=" + debLog,
        "KEEP_ME=kept",
        debianPeer(DEBIAN_CLIENT),
        "--debug",
        `--network-hook-dir=${hooks}`,
        "--delay=0.3",
        "--interface=gone,none",
        "--connect=[fe80::1]:1",
        "--pubkey=/nonexistent/p",
        "--seckey=/nonexistent/s",
        "--tls-pubkey=/nonexistent/t",
        "--tls-privkey=/nonexistent/k",
      ];
      const r = ns.exec("env", args);
      assert.notEqual(r.status, null, "Debian's client finished");
      const settings = { hookDir: hooks, device: "none", debug: true, delaySeconds: 0.3, connect: "[fe80::1]:1" };
      const env = { ...process.env, HOOKLOG: ourLog, KEEP_ME: "kept" };
      await runNetworkHooks({ ...settings, mode: "start", env });
      await runNetworkHooks({ ...settings, mode: "stop", env });
      const strip = (recs: HookRecord[]) =>
        recs.map(({ name: _name, argc: _argc, arg1: _arg1, ...rest }) => rest);
      const deb = readRecords(debLog);
      const ours = readRecords(ourLog);
      assert.equal(deb.length, 10, r.stderr);
      // Debian drops the missing "gone" from DEVICE before running hooks, as we
      // do not (the manual: DEVICE is --interface as given); compare the rest.
      assert.ok(deb.every((d) => d.DEVICE === "none"));
      assert.deepEqual(strip(ours), strip(deb));
      assert.deepEqual(
        ours.map((o) => o.name),
        ["10x", "B", "Z", "a_hook", "b-hook", "10x", "B", "Z", "a_hook", "b-hook"],
      );
      assert.ok(deb.every((d) => d.argc === "0"), "Debian passes no argument");
    } finally {
      ns.delete();
    }
  },
);
