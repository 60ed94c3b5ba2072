// The agent's units as installed: `systemd-analyze verify` with the
// installed tree as --root (so ExecStart= paths are checked) must print
// nothing; the settings the boot depends on are there; and the service's
// privilege settings leave the client, spawned by Node as the agent does,
// with none at all.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, requires } from "../helpers/index.js";
import { AGENT_UNITS, installStaged, needsBuild, run, unitSettings } from "../helpers/integration.js";
import { agentServicePrivileges } from "../helpers/unit-privileges.js";

const UNITDIR = "usr/lib/systemd/system";

function verify(root: string, units: string[]) {
  return run("systemd-analyze", ["verify", "--man=no", `--root=${root}`, ...units], { cwd: "/", timeoutMs: 60_000 });
}

test("both units pass systemd-analyze verify against the installed tree, with nothing on stderr", {
  skip: needsBuild() || requires({ commands: ["systemd-analyze"] }),
}, async () => {
  const staged = await installStaged();
  try {
    for (const units of [[...AGENT_UNITS], ["ask-password-mandos.path"], ["ask-password-mandos.service"]]) {
      const r = await verify(staged.path, units.map((u) => join(staged.path, UNITDIR, u)));
      assert.equal(r.stderr, "", units.join(" "));
      assert.equal(r.code, 0);
    }
    // The same check does fail when the agent is missing from the tree.
    // (With --root, verify finds units in the root's unit directories.)
    const text = readFileSync(join(staged.path, UNITDIR, "ask-password-mandos.service"), "utf8");
    const broken = join(staged.path, UNITDIR, "mandos-broken-test.service");
    writeFileSync(broken, text.replaceAll("/usr/lib/mandos-ts/password-agent", "/usr/lib/mandos-ts/no-such-agent"));
    const r = await verify(staged.path, [broken]);
    assert.match(r.stderr, /no-such-agent/);
    assert.notEqual(r.code, 0);
  } finally {
    staged.cleanup();
  }
});

test("the path unit watches the agent directory and is off with mandos=off", () => {
  const s = unitSettings(readFileSync(join(ROOT, "units", "ask-password-mandos.path"), "utf8"));
  for (const line of [
    "DirectoryNotEmpty=/run/systemd/ask-password",
    "MakeDirectory=yes",
    "ConditionKernelCommandLine=!mandos=off",
    "DefaultDependencies=no",
    "WantedBy=sysinit.target",
  ]) assert.ok(s.includes(line), line);
  assert.ok(s.some((l) => /^Before=.*\bcryptsetup\.target\b/.test(l)));
});

test("the service runs our agent with our client, the initramfs keys and the option variables", {
  skip: needsBuild(),
}, async () => {
  const s = unitSettings(readFileSync(join(ROOT, "units", "ask-password-mandos.service"), "utf8"));
  const exec = s.find((l) => l.startsWith("ExecStart="));
  assert.ok(exec);
  const words = exec.slice("ExecStart=".length).split(/\s+/);
  assert.equal(words[0], "/usr/lib/mandos-ts/password-agent");
  // It prefetches (the unit runs only in the initramfs: see its conditions), and is enabled there to start early.
  assert.equal(words[1], "--prefetch");
  assert.ok(s.includes("WantedBy=sysinit.target"));
  assert.ok(s.includes("ConditionPathIsMountPoint=!/sysroot"));
  assert.ok(words.indexOf("$PASSWORD_AGENT_OPTIONS") < words.indexOf("--"));
  const client = words.slice(words.indexOf("--") + 1);
  assert.equal(client[0], "/usr/lib/mandos-ts/mandos-client");
  for (const key of ["pubkey=/etc/mandos/keys/pubkey.txt", "seckey=/etc/mandos/keys/seckey.txt",
    "tls-pubkey=/etc/mandos/keys/tls-pubkey.pem", "tls-privkey=/etc/mandos/keys/tls-privkey.pem"]) {
    assert.ok(client.includes(`--${key}`), key);
    assert.ok(s.includes(`ConditionFileNotEmpty=${key.slice(key.indexOf("=") + 1)}`), key);
  }
  assert.ok(client.includes("$MANDOS_CMDLINE_OPTIONS") && client.includes("$MANDOS_CLIENT_OPTIONS"));
  assert.ok(s.includes("ConditionKernelCommandLine=!mandos=off"));

  // Hooks are systemd's job: the client's hook directory is an existing, empty one.
  const hookDir = client.find((w) => w.startsWith("--network-hook-dir="))?.split("=")[1];
  assert.ok(hookDir);
  const staged = await installStaged();
  try {
    const installed = join(staged.path, hookDir);
    assert.ok(statSync(installed).isDirectory());
    assert.deepEqual(readdirSync(installed), []);
    for (const program of [words[0]!, client[0]!]) assert.ok(existsSync(join(staged.path, program)), program);
  } finally {
    staged.cleanup();
  }
});

test("the service's settings leave the client the agent runs (user 65534) no capability and no way to gain one", {
  skip: requires({ root: true, commands: ["setpriv"] }),
}, async () => {
  const unit = agentServicePrivileges();
  assert.ok(!unit.settings.some((l) => /^(AmbientCapabilities|SecureBits)=/.test(l)), "nothing kept across the switch to the client's user");
  assert.deepEqual([...unit.bounding].sort(), ["CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_ADMIN", "CAP_SETGID", "CAP_SETUID"]);
  assert.equal(unit.noNewPrivileges, true);

  // What systemd sets up for the service, done by setpriv; then a root
  // Node process spawns a child as 65534, as the agent runs the client.
  const probe = `
    const { spawnSync } = require("node:child_process");
    const r = spawnSync("/bin/sh", ["-c", "id -u; grep -E '^(Cap(Inh|Prm|Eff|Amb)|NoNewPrivs):' /proc/self/status"],
      { uid: 65534, gid: 65534, encoding: "utf8" });
    process.stdout.write(r.stdout);
    process.stdout.write(require("node:fs").readFileSync("/proc/self/status", "utf8").match(/^CapEff:.*$/m)[0].replace("CapEff", "AgentCapEff"));`;
  const r = await run("setpriv", [...unit.setpriv, process.execPath, "--input-type=commonjs", "-e", probe], { timeoutMs: 20_000 });
  const lines = r.stdout.toString().trim().split("\n");
  assert.equal(lines[0], "65534", r.stderr.toString());
  const status = Object.fromEntries(lines.slice(1).map((l) => l.split(/:\s+/)));
  const none = "0000000000000000";
  assert.deepEqual(status, {
    CapInh: none,
    CapPrm: none,
    CapEff: none,
    CapAmb: none,
    NoNewPrivs: "1",
    AgentCapEff: unit.boundingMask.toString(16).padStart(16, "0"),
  });
});
