// The agent's units as installed: `systemd-analyze verify` with the
// installed tree as --root (so ExecStart= paths are checked) must print
// nothing; the settings the boot depends on are there; and the kernel
// mechanism the service uses to give the unprivileged client its network
// capabilities works with Node's spawn (as the agent runs the client).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, requires } from "../helpers/index.js";
import { AGENT_UNITS, installStaged, needsBuild, run, unitSettings } from "../helpers/integration.js";

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

test("the service's capability settings leave the unprivileged client exactly CAP_NET_ADMIN and CAP_NET_RAW", {
  skip: requires({ root: true, commands: ["setpriv"] }),
}, async () => {
  const s = unitSettings(readFileSync(join(ROOT, "units", "ask-password-mandos.service"), "utf8"));
  const ambient = s.find((l) => l.startsWith("AmbientCapabilities="))?.split("=")[1]?.split(/\s+/) ?? [];
  assert.deepEqual(ambient.sort(), ["CAP_NET_ADMIN", "CAP_NET_RAW"]);
  assert.ok(s.includes("SecureBits=no-setuid-fixup"));
  const bounding = s.find((l) => l.startsWith("CapabilityBoundingSet="))?.split("=")[1]?.split(/\s+/) ?? [];
  for (const cap of ["CAP_SETUID", "CAP_SETGID", "CAP_KILL", ...ambient]) assert.ok(bounding.includes(cap), cap);

  // What systemd sets up for the service, done by setpriv; then a root
  // Node process spawns a child as 65534, as the agent runs the client.
  const caps = ambient.map((c) => `+${c.slice(4).toLowerCase()}`).join(",");
  const probe = `
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync("/bin/sh", ["-c", "id -u; grep -E '^Cap(Eff|Prm|Amb):' /proc/self/status"],
      { uid: 65534, gid: 65534, encoding: "utf8" });
    process.stdout.write(r.stdout);`;
  const withFixup = await run("setpriv", ["--inh-caps", caps, "--ambient-caps", caps,
    process.execPath, "--input-type=module", "-e", probe], { timeoutMs: 20_000 });
  const without = await run("setpriv", ["--securebits", "+no_setuid_fixup", "--inh-caps", caps, "--ambient-caps", caps,
    process.execPath, "--input-type=module", "-e", probe], { timeoutMs: 20_000 });
  const parse = (out: Buffer) => Object.fromEntries(out.toString().trim().split("\n").slice(1).map((l) => l.split(/:\s+/)));
  const netAdminRaw = "0000000000003000"; // bits 12 and 13
  assert.equal(without.stdout.toString().split("\n")[0], "65534", without.stderr);
  assert.deepEqual(parse(without.stdout), { CapPrm: netAdminRaw, CapEff: netAdminRaw, CapAmb: netAdminRaw });
  // Without no-setuid-fixup the switch to 65534 drops them: the setting is needed.
  assert.deepEqual(parse(withFixup.stdout), { CapPrm: "0000000000000000", CapEff: "0000000000000000", CapAmb: "0000000000000000" });
});
