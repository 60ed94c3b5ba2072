// mandos-generator run by hand as systemd runs generators (three output
// directories, SYSTEMD_IN_INITRD / SYSTEMD_PROC_CMDLINE as systemd's own
// generators read them), for each kernel command line form and for a hook
// directory with good and bad hooks; then end to end through
// `systemd-analyze verify --generators=yes`, which runs the generator and
// loads what it wrote.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, cpSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requires, tempDir } from "../helpers/index.js";
import { GENERATOR, installStaged, needsBuild, readTree, run, runGenerator, unitSettings } from "../helpers/integration.js";

const SERVICE = "ask-password-mandos.service";
const DROPIN = `normal/${SERVICE}.d/50-mandos-kernel-command-line.conf`;
const hookUnit = (name: string) => `mandos-network-hook-${name}.service`;

/** The client options the drop-in hands the service, or null without a drop-in. */
function cmdlineOptions(files: Record<string, string>): string | null {
  const dropin = files[DROPIN];
  if (dropin === undefined) return null;
  const m = /^Environment="MANDOS_CMDLINE_OPTIONS=(.*)"$/m.exec(dropin);
  assert.ok(m, `no MANDOS_CMDLINE_OPTIONS in the drop-in:\n${dropin}`);
  return m[1]!;
}

async function generate(cmdline: string, extra: NodeJS.ProcessEnv = {}) {
  const dir = tempDir("mandos-gen-");
  try {
    const hooks = join(dir.path, "no-hooks"); // absent unless a test makes it
    const out = await runGenerator(dir.path, {
      SYSTEMD_IN_INITRD: "1",
      SYSTEMD_PROC_CMDLINE: cmdline,
      MANDOS_GENERATOR_HOOK_DIR: hooks,
      ...extra,
    });
    assert.equal(out.result.code, 0, out.result.stderr);
    return { ...out, stderr: out.result.stderr };
  } finally {
    dir.cleanup();
  }
}

test("outside the initramfs the generator writes nothing, whatever the command line", async () => {
  for (const inInitrd of ["0", "no", "false"]) {
    const out = await generate("mandos=off mandos=connect:fe80::1:4711", { SYSTEMD_IN_INITRD: inInitrd });
    assert.deepEqual(out.files, {});
    assert.equal(out.stderr, "");
  }
});

test("without mandos= options there is no drop-in", async () => {
  const out = await generate("root=/dev/mapper/root quiet splash");
  assert.deepEqual(out.files, {});
  assert.equal(out.stderr, "");
});

test("mandos=off masks both units in the early directory, also inside a list", async () => {
  for (const cmdline of ["mandos=off", "quiet mandos=connect,off", "mandos=no", "mandos=0 mandos=debug"]) {
    const out = await generate(cmdline);
    assert.deepEqual(
      out.files,
      { "early/ask-password-mandos.path": "-> /dev/null", [`early/${SERVICE}`]: "-> /dev/null" },
      cmdline,
    );
  }
});

test("mandos=connect:ADDRESS:PORT becomes --connect and waits for network-online.target", async () => {
  const out = await generate("mandos=connect:192.0.2.7:4711");
  assert.equal(cmdlineOptions(out.files), "--connect=192.0.2.7:4711");
  const settings = unitSettings(out.files[DROPIN]!);
  assert.ok(settings.includes("Wants=network-online.target"));
  assert.ok(settings.includes("After=network-online.target"));

  // IPv6: the last colon is the port's; "%" must reach the service as "%".
  const v6 = await generate("mandos=connect:fe80::aede:48ff:fe71:f6f2%eth2:4711");
  assert.equal(cmdlineOptions(v6.files), "--connect=fe80::aede:48ff:fe71:f6f2%%eth2:4711");
});

test("mandos=connect:ADDRESS:PORT may be repeated (a password split over servers): one --connect each, hooks get the first", async () => {
  const dir = tempDir("mandos-gen-");
  try {
    const hooks = join(dir.path, "hooks");
    mkdirSync(hooks);
    writeFileSync(join(hooks, "hook"), "#!/bin/sh\n", { mode: 0o755 });
    chmodSync(join(hooks, "hook"), 0o755);
    const out = await generate("mandos=connect:192.0.2.7:4711 mandos=connect:fe80::1%eth0:4712,connect:192.0.2.9:4713", {
      MANDOS_GENERATOR_HOOK_DIR: hooks,
    });
    assert.equal(cmdlineOptions(out.files), "--connect=192.0.2.7:4711 --connect=fe80::1%%eth0:4712 --connect=192.0.2.9:4713");
    assert.match(out.files[DROPIN]!, /^Wants=network-online\.target$/m);
    const s = unitSettings(out.files[`normal/${hookUnit("hook")}`]!);
    assert.ok(s.some((l) => /^Environment=.* CONNECT=192\.0\.2\.7:4711 MODE=start$/.test(l)), s.join("\n"));
  } finally {
    dir.cleanup();
  }
});

test("bare mandos=connect only waits for the network; no --connect", async () => {
  const out = await generate("mandos=connect");
  assert.equal(cmdlineOptions(out.files), "");
  assert.ok(unitSettings(out.files[DROPIN]!).includes("After=network-online.target"));
});

test("bad connect values and unknown items are ignored with a warning naming them", async () => {
  for (const bad of ["connect:4711", "connect:host:", "connect:host:0", "connect:host:65536", "connect:[::1]:4711", "connect:a;b:1"]) {
    const out = await generate(`mandos=${bad}`);
    assert.equal(out.files[DROPIN], undefined, bad);
    assert.match(out.stderr, new RegExp(`mandos-generator: ignoring bad mandos=${bad.replace(/[[\]]/g, "\\$&")} `), bad);
  }
  const out = await generate("mandos=frobnicate,debug");
  assert.match(out.stderr, /ignoring unknown option mandos=frobnicate/);
  assert.equal(cmdlineOptions(out.files), "--debug");
});

test("interfaces: mandos=interface: items, else the sixth field of ip=", async () => {
  let out = await generate("mandos=interface:eth0,interface:eth1");
  assert.equal(cmdlineOptions(out.files), "--interface=eth0,eth1");

  out = await generate("ip=192.0.2.2::192.0.2.1:255.255.255.0:client:enp1s0:off");
  assert.equal(cmdlineOptions(out.files), "--interface=enp1s0");

  // dracut's form with bracketed IPv6 addresses
  out = await generate("ip=[2001:db8::2]::[2001:db8::1]:64:client:eth3:none");
  assert.equal(cmdlineOptions(out.files), "--interface=eth3");

  // An explicit choice wins; ip= forms without an interface field are ignored.
  out = await generate("ip=:::::eth9:dhcp mandos=interface:eth0");
  assert.equal(cmdlineOptions(out.files), "--interface=eth0");
  out = await generate("ip=dhcp ip=eth0:dhcp");
  assert.equal(out.files[DROPIN], undefined);

  out = await generate("mandos=interface:eth0/../x,interface:averyveryverylongname");
  assert.equal(out.files[DROPIN], undefined);
  assert.equal(out.stderr.split("\n").filter((l) => l.includes("not an interface name")).length, 2);
});

test("all options together, repeated mandos= and quoted values", async () => {
  const out = await generate('quiet "mandos=interface:eth0" mandos="connect:2001:db8::5:4711,debug"');
  assert.equal(cmdlineOptions(out.files), "--connect=2001:db8::5:4711 --interface=eth0 --debug");
});

test("the command line is read from /proc/cmdline without SYSTEMD_PROC_CMDLINE", async () => {
  const dir = tempDir("mandos-gen-");
  try {
    const out = await runGenerator(dir.path, { SYSTEMD_IN_INITRD: "1", MANDOS_GENERATOR_HOOK_DIR: "/nonexistent" });
    assert.equal(out.result.code, 0, out.result.stderr);
    // Whatever this machine booted with: the generator must not fail on it.
    assert.doesNotMatch(out.result.stderr, /not found|syntax error/);
  } finally {
    dir.cleanup();
  }
});

/** A hook directory with hooks named to be taken and to be left out. */
function makeHooks(dir: string): string {
  const hooks = join(dir, "hooks");
  mkdirSync(hooks);
  const script = "#!/bin/sh\nexit 0\n";
  for (const name of ["20-vlan.sh", "10-bridge", "Z_tun.0", "30-wifi"]) {
    writeFileSync(join(hooks, name), script);
    chmodSync(join(hooks, name), 0o755);
  }
  // Left out: bad names (editor backup, "@", space, non-ASCII), not
  // executable, a directory, a dangling link.
  for (const name of ["10-bridge~", "bad@name", "with space", "ümlaut"]) {
    writeFileSync(join(hooks, name), script);
    chmodSync(join(hooks, name), 0o755);
  }
  writeFileSync(join(hooks, "vlan.conf"), "data\n");
  mkdirSync(join(hooks, "subdir.d"));
  symlinkSync("/nonexistent/hook", join(hooks, "dangling"));
  // A link to an executable counts, as stat(2) sees the target.
  symlinkSync(join(hooks, "30-wifi"), join(hooks, "40-link"));
  return hooks;
}

test("network hooks become ordered units wanted by the agent, with Mandos's hook environment", async () => {
  const dir = tempDir("mandos-gen-");
  try {
    const hooks = makeHooks(dir.path);
    const out = await runGenerator(dir.path, {
      SYSTEMD_IN_INITRD: "1",
      SYSTEMD_PROC_CMDLINE: "mandos=interface:br0,interface:eth0,connect:fe80::1:4711",
      MANDOS_GENERATOR_HOOK_DIR: hooks,
    });
    assert.equal(out.result.code, 0, out.result.stderr);
    const order = ["10-bridge", "20-vlan.sh", "30-wifi", "40-link", "Z_tun.0"]; // byte order: digits < upper case
    const units = Object.keys(out.files)
      .filter((f) => /^normal\/mandos-network-hook-.*\.service$/.test(f))
      .sort();
    assert.deepEqual(units, order.map((n) => `normal/${hookUnit(n)}`).sort());
    for (const [i, name] of order.entries()) {
      assert.equal(out.files[`normal/${SERVICE}.wants/${hookUnit(name)}`], `-> ${join(out.normal, hookUnit(name))}`);
      const s = unitSettings(out.files[`normal/${hookUnit(name)}`]!);
      assert.ok(s.includes(`Before=${SERVICE}`), name);
      assert.ok(s.includes("StopWhenUnneeded=yes"), name);
      assert.ok(s.includes("Type=oneshot") && s.includes("RemainAfterExit=yes"), name);
      assert.equal(s.filter((l) => /^After=mandos-network-hook-/.test(l)).join(), i === 0 ? "" : `After=${hookUnit(order[i - 1]!)}`);
      assert.ok(s.includes(`ExecStart=${hooks}/${name} start`), name);
      assert.ok(s.includes(`ExecStop=/bin/sh -c 'MODE=stop exec ${hooks}/${name} stop'`), name);
      assert.ok(
        s.includes(
          `Environment=MANDOSNETHOOKDIR=${hooks} "DEVICE=br0,eth0" VERBOSITY=0 DELAY=2.500000 CONNECT=fe80::1:4711 MODE=start`,
        ),
        s.join("\n"),
      );
    }
    // Nothing for the ones left out, and no chatter about them without debug.
    assert.equal(Object.keys(out.files).filter((f) => /bridge~|bad@|space|mlaut|vlan\.conf|subdir|dangling/.test(f)).length, 0);
    assert.equal(out.result.stderr, "");
  } finally {
    dir.cleanup();
  }
});

test("with mandos=debug, hooks get VERBOSITY=1 and left-out hooks are reported", async () => {
  const dir = tempDir("mandos-gen-");
  try {
    const hooks = makeHooks(dir.path);
    const out = await runGenerator(dir.path, {
      SYSTEMD_IN_INITRD: "1",
      SYSTEMD_PROC_CMDLINE: "mandos=debug",
      MANDOS_GENERATOR_HOOK_DIR: hooks,
    });
    assert.equal(out.result.code, 0, out.result.stderr);
    const s = unitSettings(out.files[`normal/${hookUnit("10-bridge")}`]!);
    assert.ok(s.includes(`Environment=MANDOSNETHOOKDIR=${hooks} "DEVICE=" VERBOSITY=1 DELAY=2.500000 MODE=start`), s.join("\n"));
    for (const name of ["10-bridge~", "bad@name", "with space", "vlan.conf", "subdir.d", "dangling"]) {
      assert.ok(out.result.stderr.includes(name), `${name} not reported:\n${out.result.stderr}`);
    }
  } finally {
    dir.cleanup();
  }
});

test("generated units and drop-ins pass systemd-analyze verify, end to end through --generators", {
  skip: needsBuild() || requires({ commands: ["systemd-analyze"] }),
}, async () => {
  const staged = await installStaged();
  try {
    const root = staged.path;
    // Generated ExecStart= paths are host paths that verify looks up
    // inside --root: keep the hooks at the same path inside and outside.
    const hooks = join(root, "hooks");
    makeHooks(root);
    mkdirSync(join(root, root), { recursive: true });
    cpSync(hooks, join(root, hooks), { recursive: true, verbatimSymlinks: true });
    mkdirSync(join(root, "bin"), { recursive: true });
    copyFileSync("/bin/sh", join(root, "bin", "sh"));
    chmodSync(join(root, "bin", "sh"), 0o755);
    // A directory with only our generator, so that the host's other
    // generators stay out of it.
    const generators = join(root, "generators-under-test");
    mkdirSync(generators);
    copyFileSync(GENERATOR, join(generators, "mandos-generator"));
    chmodSync(join(generators, "mandos-generator"), 0o755);

    const units = [SERVICE, ...["10-bridge", "20-vlan.sh", "30-wifi", "40-link", "Z_tun.0"].map(hookUnit)];
    const verify = (cmdline: string) =>
      run("systemd-analyze", ["verify", "--man=no", "--generators=yes", `--root=${root}`, ...units], {
        cwd: "/",
        env: {
          ...process.env,
          SYSTEMD_GENERATOR_PATH: generators,
          SYSTEMD_IN_INITRD: "1",
          SYSTEMD_PROC_CMDLINE: cmdline,
          MANDOS_GENERATOR_HOOK_DIR: hooks,
        },
        timeoutMs: 60_000,
      });
    for (const cmdline of ["", "mandos=connect:fe80::1%eth0:4711,interface:eth0,debug", "ip=:::::eth1:dhcp mandos=connect"]) {
      const r = await verify(cmdline);
      // With debug the generator reports the hooks it leaves out; nothing else may appear.
      const stderr = r.stderr
        .split("\n")
        .filter((l) => l !== "" && !/^mandos-generator: ignoring network hook /.test(l))
        .join("\n");
      assert.equal(stderr, "", `verify with "${cmdline}"`);
      assert.equal(r.code, 0, `verify with "${cmdline}": ${r.stderr}`);
    }
    // The hook units exist only through the generator: with it disabled
    // (outside the initramfs), verify must not find them.
    const off = await run("systemd-analyze", ["verify", "--man=no", "--generators=yes", `--root=${root}`, hookUnit("10-bridge")], {
      cwd: "/",
      env: { ...process.env, SYSTEMD_GENERATOR_PATH: generators, SYSTEMD_IN_INITRD: "0", MANDOS_GENERATOR_HOOK_DIR: hooks },
      timeoutMs: 60_000,
    });
    assert.notEqual(off.code, 0);
    assert.match(off.stderr, /not found/);
  } finally {
    staged.cleanup();
  }
});

test("the generator is POSIX sh: dash and bash --posix agree", { skip: requires({ commands: ["dash", "bash"] }) }, async () => {
  const dir = tempDir("mandos-gen-");
  try {
    const hooks = makeHooks(dir.path);
    const outputs: Record<string, string>[] = [];
    for (const shell of [["dash"], ["bash", "--posix"]]) {
      const base = join(dir.path, shell[0]!);
      const r = await run(shell[0]!, [...shell.slice(1), GENERATOR, join(base, "n"), join(base, "e"), join(base, "l")], {
        env: {
          PATH: "/usr/bin:/bin",
          SYSTEMD_IN_INITRD: "1",
          SYSTEMD_PROC_CMDLINE: 'mandos=interface:eth0,connect:fe80::1:4711,debug "ip=:::::eth1" mandos=bogus',
          MANDOS_GENERATOR_HOOK_DIR: hooks,
        },
        timeoutMs: 10_000,
      });
      assert.equal(r.code, 0, `${shell[0]}: ${r.stderr}`);
      const tree = readTree(base);
      // Symlink targets name the shell's own directory.
      outputs.push(Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, v.replaceAll(base, "BASE")])));
    }
    assert.ok(Object.keys(outputs[0]!).length > 5);
    assert.deepEqual(outputs[0], outputs[1]);
  } finally {
    dir.cleanup();
  }
});
