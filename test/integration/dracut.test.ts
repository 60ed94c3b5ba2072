// The dracut module builds a real initramfs (one build, ~30-90 s) from a
// staged install, without writing to the real /usr: dracut's own files are
// copied to a work directory with our module added (dracutbasedir=), and
// the module reads the staged tree (mandos_ts_sysroot=). The host's Mandos
// keys and network hooks stay untouched: in a private mount namespace,
// tmpfs mounts over /etc/keys/mandos and /etc/mandos/network-hooks.d hold
// test keys (dummy, non-secret) and test hooks.
//
// The image is then listed (lsinitrd) and unpacked, and what the boot
// needs is run *inside* it with chroot: the client's and the agent's
// bundles with their code caches under the image's stripped node, the
// client fetching a password from a server on loopback (koffi, GnuTLS and
// openpgp.js all from the image), and the generator, end to end through
// `systemd-analyze verify --generators=yes --root=IMAGE`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, requires, tempDir } from "../helpers/index.js";
import { makeKeys } from "../helpers/client.js";
import { DRACUT_BASE, dracutKernel, dracutRig, installStaged, needsBuild, run, unitSettings } from "../helpers/integration.js";
import { parseListing } from "../../src/check/initramfs.js";
import { trimNodeIcu } from "../../src/boot/trim-icu.js";
import { clientArgs, serveSecrets } from "../../scripts/secret-server.js";

const KVER = dracutKernel();
const KEYS = ["pubkey.txt", "seckey.txt", "tls-pubkey.pem", "tls-privkey.pem"];
const GNUTLS = "libgnutls.so.30";
const MODULE_SETUP = join(ROOT, "dracut", "90mandos-ts", "module-setup.sh");

const skip =
  needsBuild() ||
  requires({
    root: true,
    commands: ["dracut", "lsinitrd", "unshare", "mount", "cpio", "chroot", "ldd", "systemd-analyze", "strip", "readelf"],
    // Mount points for the test keys and hooks (the mandos-client package makes them).
    files: [DRACUT_BASE, "/etc/keys/mandos", "/etc/mandos/network-hooks.d"],
  }) ||
  (KVER === null && "needs a kernel with modules in /lib/modules (apt-get install linux-image-amd64)");

/** The network hook used in the build: it logs how dracut's module calls it. */
function hookScript(log: string, data: string): string {
  return `#!/bin/sh
echo "$1 MODE=$MODE VERBOSITY=$VERBOSITY MANDOSNETHOOKDIR=$MANDOSNETHOOKDIR" >> ${log}
case "$1" in
files)
  echo /usr/bin/cpio
  echo ${data} /etc/mandos-test/hook-data
  ;;
modules) echo 8021q ;;
esac
exit 0
`;
}

test("dracut builds a host-only initramfs with everything the agent needs", { skip, timeout: 600_000 }, async (t) => {
  const staged = await installStaged();
  const work = tempDir("mandos-dracut-");
  try {
    const w = work.path;
    // Real keys (throwaway, from our keygen): the client in the image fetches with them.
    const keys = makeKeys(join(w, "keys"), "ours");
    const hooks = join(w, "hooks");
    const hookLog = join(w, "hook.log");
    const hookData = join(w, "hook-data");
    writeFileSync(hookData, "data a hook asked for\n");
    mkdirSync(hooks);
    for (const name of ["10-vlan", "bad@name", "10-vlan~"]) {
      writeFileSync(join(hooks, name), hookScript(hookLog, hookData));
      chmodSync(join(hooks, name), 0o755);
    }
    writeFileSync(join(hooks, "vlan.conf"), "id=5\n");

    const image = join(w, "initrd.img");
    // Early network drivers named, as in dracut.conf: e1000e is no NIC of
    // this host (a host-only build would leave it out), and one is no module.
    const dracut = dracutRig(w, staged.path, KVER!, { mandos_ts_early_net_drivers: "virtio_pci,e1000e no_such_nic_driver" });
    // Only inside its namespace do the tmpfs mounts hide the host's keys and hooks.
    const inNamespace = (dracutArgs: string) => dracut(keys, dracutArgs, hooks);

    await t.test("a non-hostonly build is refused with a clear message", async () => {
      const refused = await inNamespace(`--no-hostonly --omit "plymouth mandos" --add "systemd mandos-ts" "${join(w, "generic.img")}"`);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /mandos-ts: refusing to build a generic \(non-hostonly\) initramfs: .*build with --hostonly/);
      assert.ok(!existsSync(join(w, "generic.img")));
    });

    const launcher = readFileSync(join(staged.path, "usr/lib/mandos-ts/password-agent"), "utf8");
    const node = launcher.slice(2, launcher.indexOf("\n"));
    const nodeHash = () => createHash("sha256").update(readFileSync(node)).digest("hex");
    const hostNode = nodeHash();
    const started = Date.now();
    const build = await inNamespace(`--hostonly --omit "plymouth mandos" --add "systemd mandos-ts" "${image}"`);
    assert.equal(build.code, 0, build.stderr.slice(-4000));
    assert.match(build.stderr, /Including module: mandos-ts/);
    t.diagnostic(`dracut build took ${Math.round((Date.now() - started) / 1000)} s, image ${statSync(image).size} bytes`);

    const listing = await run("lsinitrd", [image], { timeoutMs: 120_000 });
    assert.equal(listing.code, 0, listing.stderr);
    const entries = parseListing(listing.stdout.toString());
    const has = (path: string) => assert.ok(entries.has(path), `${path} missing from the image`);

    await t.test("node and the boot programs' bundles with their caches, and nothing else of the program tree", () => {
      has(node.slice(1));
      const ours = [...entries.keys()].filter((p) => p.startsWith("usr/lib/mandos-ts/")).map((p) => p.slice("usr/lib/mandos-ts/".length));
      assert.deepEqual(ours.sort(), [
        "boot", "boot/launch.cjs", "boot/linux_x64", "boot/linux_x64/koffi.node",
        "boot/mandos-client.cache", "boot/mandos-client.cjs", "boot/password-agent.cache", "boot/password-agent.cjs",
        "mandos-client", "no-network-hooks.d", "password-agent",
      ]);
      for (const program of ["password-agent", "mandos-client"]) {
        assert.match(entries.get(`usr/lib/mandos-ts/${program}`)!.mode, /^-rwxr-xr-x/, program);
      }
      // Anywhere in the image: no node_modules tree, TypeScript, source maps; one koffi native module.
      const all = [...entries.keys()];
      assert.deepEqual(all.filter((p) => /(^|\/)node_modules(\/|$)|\.(ts|map)$/.test(p)), []);
      assert.deepEqual(all.filter((p) => p.endsWith(".node")), ["usr/lib/mandos-ts/boot/linux_x64/koffi.node"]);
      assert.ok(!entries.has("usr/bin/env"), "no interpreter pulled in by scripts");
    });

    await t.test("GnuTLS and every library it links", async () => {
      const libs = [...entries.keys()].filter((p) => p.endsWith(`/${GNUTLS}`));
      assert.equal(libs.length, 1, `one ${GNUTLS}: ${libs.join(" ")}`);
      const ldd = await run("ldd", [`/${libs[0]!}`]);
      const deps = [...ldd.stdout.toString().matchAll(/=> (\/\S+)/g)].map((m) => m[1]!.split("/").pop()!);
      assert.ok(deps.length >= 5, ldd.stdout.toString());
      const names = new Set([...entries.keys()].map((p) => p.split("/").pop()));
      for (const dep of deps) assert.ok(names.has(dep), `${dep} (linked by ${GNUTLS}) missing`);
    });

    await t.test("the keys, readable by user 65534 only", () => {
      assert.match(entries.get("etc/mandos/keys")!.mode, /^dr-x------/);
      for (const k of KEYS) {
        const e = entries.get(`etc/mandos/keys/${k}`);
        assert.ok(e, k);
        assert.equal(e.mode, "-r--------", k);
        assert.match(e.owner, /^(nobody|65534)$/, k);
      }
    });

    await t.test("units, the enabled path unit and prefetching service, the generator and the client's tools", () => {
      has("usr/lib/systemd/system/ask-password-mandos.path");
      has("usr/lib/systemd/system/ask-password-mandos.service");
      has("etc/systemd/system/sysinit.target.wants/ask-password-mandos.path");
      has("etc/systemd/system/sysinit.target.wants/ask-password-mandos.service");
      has("usr/lib/systemd/system-generators/mandos-generator");
      assert.match(entries.get("usr/lib/systemd/system-generators/mandos-generator")!.mode, /^-rwxr-xr-x/);
      has("usr/bin/sed");
      if (existsSync("/usr/bin/ip") || existsSync("/sbin/ip")) {
        assert.ok([...entries.keys()].some((p) => /(^|\/)s?bin\/ip$/.test(p)), "iproute2's ip");
      }
    });

    await t.test("network hooks with the files and kernel modules they list, and network drivers", () => {
      has("usr/lib/mandos/network-hooks.d/10-vlan");
      has("usr/lib/mandos/network-hooks.d/vlan.conf");
      assert.ok(![...entries.keys()].some((p) => /bad@name|10-vlan~/.test(p)), "badly named hooks are left out");
      has("usr/bin/cpio");
      has("etc/mandos-test/hook-data");
      const modules = [...entries.keys()].filter((p) => p.startsWith(`usr/lib/modules/${KVER}/kernel/`));
      assert.ok(modules.some((p) => /\/8021q\.ko/.test(p)), "8021q, from the hook's modules list");
      assert.ok(modules.some((p) => /\/drivers\/net\/.*\.ko/.test(p)), "a network driver");
      if (existsSync("/sys/bus/virtio/drivers/virtio_net")) {
        assert.ok(modules.some((p) => /\/virtio_net\.ko/.test(p)), "virtio_net, this host's NIC driver");
      }
      const calls = readFileSync(hookLog, "utf8").trim().split("\n");
      for (const mode of ["files", "modules"]) {
        assert.ok(
          calls.includes(`${mode} MODE=${mode} VERBOSITY=0 MANDOSNETHOOKDIR=/etc/mandos/network-hooks.d`),
          `hook not called for ${mode}:\n${calls.join("\n")}`,
        );
      }
    });

    // Unpack and run things inside the image, with nothing from the host.
    const root = join(w, "root");
    mkdirSync(root);
    const unpack = await run("sh", ["-c", `cd "${root}" && cpio -id --quiet < "${image}"`], { timeoutMs: 120_000 });
    assert.equal(unpack.code, 0, unpack.stderr);
    const inImage = (args: string[], env: NodeJS.ProcessEnv = {}, user?: string) =>
      run("chroot", [...(user ? [`--userspec=${user}`] : []), root, ...args], { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env }, timeoutMs: 60_000 });

    await t.test("the network drivers named in mandos_ts_early_net_drivers are loaded early, by systemd-modules-load", () => {
      const conf = join(root, "usr/lib/modules-load.d/mandos-ts-network.conf");
      const listed = readFileSync(conf, "utf8").split("\n").filter((l) => l !== "" && !l.startsWith("#"));
      assert.deepEqual(listed, ["virtio_pci", "e1000e"]);
      const modules = [...entries.keys()].filter((p) => p.startsWith(`usr/lib/modules/${KVER}/kernel/`));
      for (const module of listed) assert.ok(modules.some((p) => p.endsWith(`/${module}.ko`) || p.includes(`/${module}.ko.`)), `${module} missing`);
      assert.match(build.stderr, /mandos-ts: module no_such_nic_driver \(mandos_ts_early_net_drivers\) not found for kernel \S+; not loaded early/);
      has("usr/lib/systemd/system/sysinit.target.wants/systemd-modules-load.service");
    });

    await t.test("the image's node is the host's, fully stripped, with English-only ICU data and its zero pages out of the file; the host's node is unchanged", async () => {
      assert.equal(nodeHash(), hostNode);
      const stripped = join(w, "node-stripped");
      const strip = await run("strip", ["-o", stripped, node]);
      assert.equal(strip.code, 0, strip.stderr);
      // Exactly what trim-icu makes of it: dracut's own strip step left it as it was.
      const trimmed = trimNodeIcu(readFileSync(stripped));
      assert.ok(readFileSync(join(root, node)).equals(trimmed.node), "the image's node is the trimmed stripped host node");
      t.diagnostic(`the image's node: ICU data ${trimmed.after} of ${trimmed.before} bytes, ${trimmed.dropped} bytes left out of the file`);
      assert.ok(trimmed.after < 6.5e6, `${trimmed.after} bytes of ICU data`);
      assert.ok(trimmed.dropped > 25e6, `${trimmed.dropped} bytes left out`);
      const shorter = statSync(stripped).size - statSync(join(root, node)).size;
      assert.ok(shorter >= trimmed.dropped && shorter < trimmed.dropped + 65536, `${shorter} bytes shorter: zero pages and section headers`);
      assert.match(build.stderr, /mandos-ts: \S+: ICU data icudt\d+_dat [\d.]+ MB -> [\d.]+ MB \(English only: \d+ items kept, \d+ removed\); [\d.]+ MB of zeros left out of the file; self-test passed/);
      const intl = await inImage([node, "-e",
        `console.log(new Intl.NumberFormat("en-US").format(1234.5), new Intl.NumberFormat("de-DE").format(1234.5), String(new Date(0)))`],
      { LANG: "de_DE.UTF-8", TZ: "UTC" });
      assert.equal(intl.code, 0, intl.stderr);
      assert.match(intl.stdout.toString(), /^1,234\.5 1,234\.5 Thu Jan 01 1970 00:00:00 GMT\+0000 \(.*\)\n$/);
    });

    await t.test("inside the image: the bundles run with their code caches, the client fetches a password", async () => {
      const verdicts = `const { compileBundle } = require("/usr/lib/mandos-ts/boot/launch.cjs");
        for (const p of ["password-agent", "mandos-client"]) console.log(compileBundle("/usr/lib/mandos-ts/boot", p).cache);`;
      const v = await inImage([node, "-e", verdicts]);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(v.stdout.toString(), "accepted\naccepted\n");
      for (const program of ["password-agent", "mandos-client"]) {
        const help = await inImage([`/usr/lib/mandos-ts/${program}`, "--help"]);
        assert.equal(help.code, 0, `${program}: ${help.stderr}`);
      }
      // A chroot shares this network namespace: a server on loopback here.
      // The hooks run as units at boot: the agent's unit points the client elsewhere, as here.
      const server = await serveSecrets([keys], "password from the image", "127.0.0.1");
      try {
        // The client surveys /sys/class/net: /sys and /proc as at boot, in a mount namespace of its own.
        const client = ["/usr/lib/mandos-ts/mandos-client", ...clientArgs("/etc/mandos/keys", `127.0.0.1:${server.port}`),
          "--network-hook-dir=/usr/lib/mandos-ts/no-network-hooks.d"];
        const fetch = await run("unshare", ["--mount", "--propagation", "private", "sh", "-ec",
          `mount --rbind /sys "$0/sys"; mount -t proc proc "$0/proc"; exec chroot "$0" "$@"`, root, ...client],
        { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, timeoutMs: 60_000 });
        assert.equal(fetch.code, 0, fetch.stderr);
        assert.equal(fetch.stdout.toString(), "password from the image");
      } finally {
        await server.close();
      }
      // The client's user can read the keys; another unprivileged user cannot.
      const read = `require("fs").readFileSync("/etc/mandos/keys/seckey.txt"); console.log("read")`;
      const asClient = await inImage([node, "-e", read], {}, "65534:65534");
      assert.equal(asClient.stdout.toString().trim(), "read", asClient.stderr);
      const asOther = await inImage([node, "-e", read], {}, "1000:1000");
      assert.notEqual(asOther.code, 0);
      assert.match(asOther.stderr, /EACCES/);
    });

    await t.test("inside the image: the generator runs with the image's own tools, and its units verify", async () => {
      // systemd-analyze runs this wrapper as the generator; it runs the
      // image's generator inside the image, writing below --root.
      const generators = join(w, "generators");
      mkdirSync(generators);
      writeFileSync(
        join(generators, "mandos-generator-in-image"),
        `#!/bin/sh\nr='${root}'\nexec chroot "$r" /usr/lib/systemd/system-generators/mandos-generator "\${1#$r}" "\${2#$r}" "\${3#$r}"\n`,
        { mode: 0o755 },
      );
      const verify = await run(
        "systemd-analyze",
        ["verify", "--man=no", "--generators=yes", `--root=${root}`,
          "ask-password-mandos.path", "ask-password-mandos.service", "mandos-network-hook-10-vlan.service"],
        {
          cwd: "/",
          env: { ...process.env, SYSTEMD_GENERATOR_PATH: generators, SYSTEMD_IN_INITRD: "1",
            SYSTEMD_PROC_CMDLINE: "mandos=interface:eth0,connect:fe80::1:4711" },
          timeoutMs: 60_000,
        },
      );
      assert.equal(verify.stderr, "");
      assert.equal(verify.code, 0);

      // And by hand, to look at what it wrote.
      const gen = await inImage(["/usr/lib/systemd/system-generators/mandos-generator", "/run/g/n", "/run/g/e", "/run/g/l"], {
        SYSTEMD_IN_INITRD: "1",
        SYSTEMD_PROC_CMDLINE: "mandos=interface:eth0",
      });
      assert.equal(gen.code, 0, gen.stderr);
      const unit = unitSettings(readFileSync(join(root, "run/g/n/mandos-network-hook-10-vlan.service"), "utf8"));
      assert.ok(unit.includes("ExecStart=/lib/mandos/network-hooks.d/10-vlan start"), unit.join("\n"));
      assert.equal(
        readlinkSync(join(root, "run/g/n/ask-password-mandos.service.wants/mandos-network-hook-10-vlan.service")),
        "/run/g/n/mandos-network-hook-10-vlan.service",
      );
    });

    // What the module adds: everything below our paths plus node and the
    // libraries only we need (measured here for the report, not asserted).
    const ours = [...entries.entries()].filter(([p]) =>
      /^usr\/lib\/mandos-ts\/|^usr\/bin\/node$|libgnutls|libp11-kit|libidn2|libunistring|libtasn1|libnettle|libhogweed|libgmp|libffi/.test(p));
    t.diagnostic(`node + program tree + GnuTLS: ${ours.reduce((s, [, e]) => s + e.size, 0)} bytes uncompressed`);
  } finally {
    work.cleanup();
    staged.cleanup();
  }
});

test("the host's network drivers: for each physical interface, its device's and those of the bound devices above it", async () => {
  const work = tempDir("mandos-dracut-sysfs-");
  try {
    const sys = work.path;
    /** A device below sys/devices, bound to sys/bus/BUS/drivers/DRIVER (with module MODULE unless built in). */
    const device = (path: string, bus?: string, driver?: string, module?: string) => {
      mkdirSync(join(sys, "devices", path), { recursive: true });
      if (!bus || !driver) return;
      const dir = join(sys, "bus", bus, "drivers", driver);
      mkdirSync(dir, { recursive: true });
      if (module && !existsSync(join(dir, "module"))) {
        mkdirSync(join(sys, "module", module), { recursive: true });
        symlinkSync(join(sys, "module", module), join(dir, "module"));
      }
      symlinkSync(dir, join(sys, "devices", path, "driver"));
    };
    /** An interface, at sys/class/net/NAME, of the device at PATH (virtual if none). */
    const iface = (name: string, parent: string | null) => {
      const dir = join(sys, "devices", parent ?? "virtual", "net", name);
      mkdirSync(dir, { recursive: true });
      if (parent) symlinkSync(join(sys, "devices", parent), join(dir, "device"));
      mkdirSync(join(sys, "class", "net"), { recursive: true });
      symlinkSync(dir, join(sys, "class", "net", name));
    };
    // virtio: the PCI function (virtio-pci, built into the running kernel) and the virtio device.
    device("pci0000:00");
    device("pci0000:00/0000:00:03.0", "pci", "virtio-pci");
    device("pci0000:00/0000:00:03.0/virtio2", "virtio", "virtio_net", "virtio_net");
    iface("eth0", "pci0000:00/0000:00:03.0/virtio2");
    // USB: the host controller, the hub, the NIC's USB interface.
    device("pci0000:00/0000:00:14.0", "pci", "xhci_hcd", "xhci_pci");
    device("pci0000:00/0000:00:14.0/usb1", "usb", "usb");
    device("pci0000:00/0000:00:14.0/usb1/1-1");
    device("pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0", "usb", "r8152", "r8152");
    iface("enx00e04c680001", "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0");
    // Virtual interfaces: no device, no driver.
    iface("lo", null);
    iface("br0", null);
    const inModule = async (call: string, env: Record<string, string> = {}) => {
      const { mandos_ts_early_net_drivers: _, ...inherited } = process.env;
      const r = await run("bash", ["-c", `dinfo() { echo "info: $*" >&2; }; source "$0" && ${call} "$1"`, MODULE_SETUP, sys], {
        env: { ...inherited, ...env },
      });
      assert.equal(r.code, 0, r.stderr);
      return { lines: r.stdout.toString().split("\n").filter(Boolean), stderr: r.stderr };
    };
    const found = await inModule("mandos_ts_host_net_drivers");
    assert.equal(found.stderr, "");
    assert.deepEqual(found.lines, ["r8152", "usb", "virtio_net", "virtio_pci", "xhci_pci"]);

    if (KVER === null) return;
    // What goes into the image: loadable modules of the kernel built for
    // ("usb" is no module name), unless udev renames interfaces there.
    const sysroot = join(work.path, "root");
    mkdirSync(join(sysroot, "lib"), { recursive: true });
    symlinkSync("/lib/modules", join(sysroot, "lib", "modules"));
    const env = { kernel: KVER, dracutsysrootdir: sysroot };
    assert.deepEqual((await inModule("mandos_ts_early_modules", env)).lines, ["r8152", "virtio_net", "virtio_pci", "xhci_pci"]);
    mkdirSync(join(sysroot, "etc/udev/rules.d"), { recursive: true });
    writeFileSync(join(sysroot, "etc/udev/rules.d/70-persistent-net.rules"), 'SUBSYSTEM=="net", NAME="lan0"\n');
    const renaming = await inModule("mandos_ts_early_modules", env);
    assert.deepEqual(renaming.lines, []);
    assert.match(renaming.stderr, /info: mandos-ts: udev renames network interfaces here \(70-persistent-net\.rules\)/);
    const named = await inModule("mandos_ts_early_modules", { ...env, mandos_ts_early_net_drivers: "virtio_net" });
    assert.deepEqual(named.lines, ["virtio_net"]);
  } finally {
    work.cleanup();
  }
});

test("the image's node gets English-only ICU data unless mandos_ts_trim_icu=no; a failure leaves it as it was, with one warning", { skip: needsBuild(), timeout: 120_000 }, async () => {
  const work = tempDir("mandos-dracut-icu-");
  try {
    // The installed tree as module-setup.sh finds it: the launcher names node, dist/ holds the tool.
    const libdir = join(work.path, "usr/lib/mandos-ts");
    mkdirSync(libdir, { recursive: true });
    writeFileSync(join(libdir, "password-agent"), `#!${process.execPath}\n`);
    symlinkSync(join(ROOT, "dist"), join(libdir, "dist"));
    const copy = join(work.path, "node");
    const sha = () => createHash("sha256").update(readFileSync(copy)).digest("hex");
    const { mandos_ts_trim_icu: _, ...inherited } = process.env;
    const trim = async (env: Record<string, string> = {}) => {
      const r = await run("bash", ["-c",
        `dinfo() { echo "info: $*" >&2; }; dwarning() { echo "warning: $*" >&2; }; source "$0" && mandos_ts_trim_node_icu "$1"`,
        MODULE_SETUP, copy], { env: { ...inherited, mandos_ts_sysroot: work.path, ...env }, timeoutMs: 100_000 });
      assert.equal(r.code, 0, r.stderr);
      return r.stderr;
    };

    copyFileSync(process.execPath, copy);
    const full = sha();
    assert.equal(await trim({ mandos_ts_trim_icu: "no" }), "");
    assert.equal(sha(), full);
    assert.match(await trim(), /^info: mandos-ts: \S+\/node: ICU data icudt\d+_dat [\d.]+ MB -> [\d.]+ MB .*self-test passed\n$/);
    assert.notEqual(sha(), full);

    // No ICU data to trim (as in a node linked to the system's libicu).
    const other = ["/usr/bin/true", "/bin/true"].find((p) => existsSync(p))!;
    copyFileSync(other, copy);
    const before = sha();
    assert.equal(await trim(), "warning: mandos-ts: node keeps all of its ICU data: trim-icu: no embedded ICU data (no icudt*_dat symbol): this node uses a shared libicu or has no ICU\n");
    assert.equal(sha(), before);
  } finally {
    work.cleanup();
  }
});
