// The Debian packages (debian/): built once per run with dpkg-buildpackage
// in a copy of the tree, checked with lintian, installed with dpkg -i into
// throwaway roots (an overlay of / in a private mount namespace, so the
// host is untouched): over Debian's mandos and mandos-client, which they
// replace, and on a system without them, which purging ours restores.
// There the units verify, the installed server (on the root's own system
// bus) gives the installed client its password, and dracut builds an
// initramfs with the installed module.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { ROOT, requires, run, tempDir, type RunResult } from "../helpers/index.js";
import { freePort } from "../helpers/server.js";
import { ThrowawayRoot } from "../helpers/throwaway-root.js";

const skip = requires({
  root: true,
  commands: ["dpkg-buildpackage", "dh", "lintian", "fakeroot", "unshare", "nsenter", "systemd-analyze"],
});

const PACKAGES = ["mandos-ts-common", "mandos-ts-server", "mandos-ts-client"] as const;
type Package = (typeof PACKAGES)[number];
interface Built {
  dir: string;
  changes: string;
  debs: Record<Package, string>;
  /** Each package's paths, as dpkg-deb lists them ("./" stripped, no trailing "/"). */
  files: Record<Package, string[]>;
}
let built: Built | undefined;
const work = tempDir("mandos-debian-");

const ok = (r: RunResult, what: string) =>
  assert.equal(r.code, 0, `${what} exited ${r.code}:\n${r.stdout.toString().slice(-3000)}\n${r.stderr.slice(-3000)}`);
const field = (deb: string, name: string) =>
  run("dpkg-deb", ["--field", deb, name]).then((r) => r.stdout.toString().trim());

before(async () => {
  if (skip) return;
  // The tree as it is (committed or not), without what the build makes.
  const src = join(work.path, "mandos-ts");
  ok(
    await run("sh", ["-c", `mkdir "$2" && tar -C "$1" --exclude=./.git --exclude=./dist --exclude=./node_modules --exclude=./tmp -cf - . | tar -C "$2" -xf -`, "copy", ROOT, src]),
    "copying the tree",
  );
  symlinkSync(realpathSync(join(ROOT, "node_modules")), join(src, "node_modules"));
  ok(await run("dpkg-buildpackage", ["-us", "-uc", "-b"], { cwd: src, timeoutMs: 600_000 }), "dpkg-buildpackage");
  const out = readdirSync(work.path);
  const deb = (p: Package) => {
    const name = out.find((f) => f.startsWith(`${p}_`) && f.endsWith(".deb"));
    assert.ok(name, `${p}: no .deb among ${out.join(" ")}`);
    return join(work.path, name);
  };
  const debs = { "mandos-ts-common": deb("mandos-ts-common"), "mandos-ts-server": deb("mandos-ts-server"), "mandos-ts-client": deb("mandos-ts-client") };
  const files = {} as Record<Package, string[]>;
  for (const p of PACKAGES) {
    const list = await run("dpkg-deb", ["--fsys-tarfile", debs[p]], { timeoutMs: 60_000 }).then((r) =>
      run("tar", ["-t"], { input: r.stdout }),
    );
    files[p] = list.stdout.toString().split("\n").filter((l) => l && l !== "./").map((l) => l.replace(/^\.\//, "").replace(/\/$/, ""));
  }
  const changes = out.find((f) => f.endsWith(".changes"));
  assert.ok(changes, "no .changes file");
  built = { dir: work.path, changes: join(work.path, changes), debs, files };
});
after(() => work.cleanup());

function packages(): Built {
  assert.ok(built, "the packages were not built");
  return built;
}

/** Which packages hold the path. */
const holders = (b: Built, path: string) => PACKAGES.filter((p) => b.files[p].includes(path));

test("dpkg-buildpackage builds the server, client and common packages, every program and page in one of them", { skip, timeout: 900_000 }, async () => {
  const b = packages();
  assert.equal(await field(b.debs["mandos-ts-server"], "Architecture"), "all");
  const arch = (await run("dpkg", ["--print-architecture"])).stdout.toString().trim();
  assert.equal(await field(b.debs["mandos-ts-client"], "Architecture"), arch);
  assert.equal(await field(b.debs["mandos-ts-common"], "Architecture"), arch);
  for (const [p, debian] of [["mandos-ts-server", "mandos"], ["mandos-ts-client", "mandos-client"]] as const) {
    for (const f of ["Conflicts", "Replaces", "Provides"]) assert.equal(await field(b.debs[p], f), debian, `${p} ${f}`);
  }
  for (const p of PACKAGES) assert.match(await field(b.debs[p], "Depends"), /nodejs \(>= 20\)/, p);

  // Every launcher of bin/ and every man page, in exactly one package.
  for (const name of readdirSync(join(ROOT, "bin")).filter((n) => n !== "package.json")) {
    assert.equal(holders(b, `usr/lib/mandos-ts/${name}`).length, 1, `bin/${name}`);
  }
  for (const page of readdirSync(join(ROOT, "man"))) {
    const section = /\.(\d)[^.]*$/.exec(page)![1];
    assert.equal(holders(b, `usr/share/man/man${section}/${page}.gz`).length, 1, `man/${page}`);
  }
  const server = b.files["mandos-ts-server"];
  const client = b.files["mandos-ts-client"];
  const common = b.files["mandos-ts-common"];
  for (const path of ["usr/sbin/mandos", "usr/sbin/mandos-ctl", "lib/systemd/system/mandos.service", "etc/mandos/mandos.conf",
    "etc/mandos/clients.conf", "usr/share/dbus-1/system.d/mandos.conf", "usr/lib/sysusers.d/mandos-ts.conf", "usr/lib/tmpfiles.d/mandos-ts.conf"]) {
    assert.ok(server.includes(path), `server: ${path}`);
  }
  for (const path of ["usr/sbin/mandos-keygen", "lib/systemd/system/ask-password-mandos.service", "lib/systemd/system/ask-password-mandos.path",
    "lib/systemd/system-generators/mandos-generator", "usr/lib/dracut/modules.d/90mandos-ts/module-setup.sh",
    "usr/lib/mandos-ts/boot/mandos-client.cjs", "usr/lib/mandos-ts/boot/mandos-client.cache", `usr/lib/mandos-ts/boot/linux_${process.arch}/koffi.node`]) {
    assert.ok(client.includes(path), `client: ${path}`);
  }
  const conffiles = await run("sh", ["-c", `dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles`, "x", b.debs["mandos-ts-server"]]);
  assert.deepEqual(conffiles.stdout.toString().trim().split("\n").sort(), ["/etc/mandos/clients.conf", "/etc/mandos/mandos.conf"]);

  // The runtime: production dependencies (etcd3 with the proto files it
  // loads at run time), no sources, no devDependencies, koffi for this
  // architecture only.
  const all = [...server, ...client, ...common];
  assert.deepEqual(all.filter((f) => /\.(ts|mts|cts|map)$/.test(f)), [], "TypeScript sources or maps");
  const modules = "usr/lib/mandos-ts/node_modules/";
  for (const dep of ["koffi", "openpgp", "dbus-next", "ini", "multicast-dns", "dns-packet", "etcd3", "prom-client", "shamir-secret-sharing"]) {
    assert.ok(common.includes(`${modules}${dep}/package.json`), dep);
  }
  assert.ok(common.some((f) => f.startsWith(`${modules}etcd3/proto/`) && f.endsWith(".proto")), "etcd3's proto files");
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
  const devOnly = Object.entries(lock.packages).filter(([path, p]) => p.dev && path.startsWith("node_modules/")).map(([path]) => path);
  assert.ok(devOnly.includes("node_modules/typescript"));
  assert.deepEqual(devOnly.filter((path) => common.includes(`usr/lib/mandos-ts/${path}`)), [], "devDependencies");
  const koffiBuilds = all.filter((f) => f.endsWith("/koffi.node"));
  assert.ok(koffiBuilds.length > 0 && koffiBuilds.every((f) => f.includes(`/linux_${process.arch}/`)), koffiBuilds.join(" "));
  assert.ok(!common.some((f) => f.startsWith(`${modules}@koromix/`) && !f.startsWith(`${modules}@koromix/koffi-linux-${process.arch}`)));
});

test("lintian reports no errors on the packages", { skip, timeout: 900_000 }, async (t) => {
  const b = packages();
  const r = await run("lintian", ["--info", b.changes], { timeoutMs: 300_000 });
  const lines = r.stdout.toString().split("\n");
  const errors = lines.filter((l) => l.startsWith("E:"));
  const warnings = lines.filter((l) => l.startsWith("W:"));
  t.diagnostic(`lintian: ${errors.length} errors, ${warnings.length} warnings`);
  for (const w of warnings) t.diagnostic(w);
  assert.deepEqual(errors, []);
  assert.equal(r.code, 0, r.stderr);
});

const KEYS = ["pubkey.txt", "seckey.txt", "tls-pubkey.pem", "tls-privkey.pem"];
const DEBIAN_DEBS = "/var/cache/apt/archives";

function digest(root: ThrowawayRoot, path: string): string {
  return createHash("sha256").update(readFileSync(root.path(path))).digest("hex");
}

/** The package's state ("installed", "config-files"...), or "" if dpkg does not know it. */
async function dpkgStatus(root: ThrowawayRoot, pkg: string): Promise<string> {
  return (await root.sh(`dpkg-query -W -f='\${db:Status-Status}' ${pkg} 2>/dev/null || true`)).stdout.toString();
}

/** Debian's mandos-client runs update-initramfs when removed (20 s here, and nothing of ours): a no-op in the root. */
const QUICK_UPDATE_INITRAMFS = `printf '#!/bin/sh\\nexit 0\\n' > /usr/sbin/update-initramfs`;

/** Copies our three packages into the root; their paths there. */
const ourDebs = (root: ThrowawayRoot) => root.copyIn(PACKAGES.map((p) => packages().debs[p])).join(" ");

/** The paths a package lists as installed, in the root's dpkg database. */
async function listed(root: ThrowawayRoot, pkg: string): Promise<string[]> {
  return (await root.sh(`dpkg-query -L ${pkg}`)).stdout.toString().split("\n").filter(Boolean);
}

/** The installed server on ::1 with a test configuration, on the root's system bus; resolves once it listens. */
function startServer(root: ThrowawayRoot, confdir: string): Promise<{ stop(): Promise<void> }> {
  const child = root.spawn(`exec /usr/sbin/mandos --foreground --debug --no-zeroconf --configdir ${confdir}`);
  let log = "";
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not listen within 30 s:\n${log}`)), 30_000);
    const onData = (d: Buffer) => {
      log += d.toString();
      if (/Now listening/.test(log)) {
        clearTimeout(timer);
        resolve({ stop: async () => { child.kill("SIGTERM"); await exited; } });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`the server exited ${code}:\n${log}`)); });
  });
}

test("over Debian's mandos and mandos-client, dpkg -i replaces them, keeping the client keys and an edited clients.conf; the installed units, server, client and dracut module work", { skip, timeout: 900_000 }, async () => {
  packages();
  const root = await ThrowawayRoot.start();
  let busStarted = false;
  try {
    for (const p of ["mandos", "mandos-client"]) assert.equal(await dpkgStatus(root, p), "installed", `Debian's ${p} (test/setup.sh installs it)`);
    ok(await root.sh(QUICK_UPDATE_INITRAMFS), "update-initramfs stand-in");
    const keysBefore = KEYS.map((k) => digest(root, `/etc/keys/mandos/${k}`));
    // An administrator's clients.conf: dpkg asks, and keeps it by default.
    ok(await root.sh(`printf '\\n[edited]\\nsecfile = /etc/mandos/edited.secret\\n' >> /etc/mandos/clients.conf`), "editing clients.conf");
    const edited = readFileSync(root.path("/etc/mandos/clients.conf"), "utf8");

    const debs = ourDebs(root);
    const asked = await root.sh(`dpkg -i ${debs} </dev/null 2>&1`, { timeoutMs: 300_000 });
    assert.notEqual(asked.code, 0, "dpkg must ask about the edited clients.conf");
    assert.match(asked.stdout.toString(), /clients\.conf \(Y\/I\/N\/O\/D\/Z\) \[default=N\]/);
    assert.match(asked.stdout.toString(), /will remove mandos in favour of mandos-ts-server/);
    assert.match(asked.stdout.toString(), /will remove mandos-client in favour of mandos-ts-client/);
    const configured = await root.sh("dpkg --force-confdef --force-confold --configure -a </dev/null 2>&1", { timeoutMs: 300_000 });
    ok(configured, "dpkg --configure -a");
    // No dracut kernel hook here (dracut-core only): the client says so.
    assert.match(asked.stdout.toString() + configured.stdout.toString(), /mandos-ts-client: the initramfs was not rebuilt: dracut does not make it/);

    for (const p of PACKAGES) assert.equal(await dpkgStatus(root, p), "installed", p);
    for (const p of ["mandos", "mandos-client"]) assert.equal(await dpkgStatus(root, p), "config-files", p);
    const owner = await root.sh("dpkg-query -S /usr/sbin/mandos /usr/sbin/mandos-keygen /usr/sbin/mandos-ctl /lib/systemd/system/mandos.service /usr/share/man/man8/intro.8mandos.gz");
    assert.deepEqual(owner.stdout.toString().trim().split("\n").map((l) => l.split(":")[0]).sort(),
      ["mandos-ts-client", "mandos-ts-server", "mandos-ts-server", "mandos-ts-server", "mandos-ts-server"]);
    assert.deepEqual(KEYS.map((k) => digest(root, `/etc/keys/mandos/${k}`)), keysBefore, "the client keys are kept");
    assert.equal(readFileSync(root.path("/etc/mandos/clients.conf"), "utf8"), edited, "the edited clients.conf is kept");
    assert.ok(existsSync(root.path("/etc/mandos/clients.conf.dpkg-dist")));
    assert.equal(readFileSync(root.path("/etc/mandos/mandos.conf"), "utf8"), readFileSync(join(ROOT, "debian/conf/mandos.conf"), "utf8"));
    assert.equal(readlinkSync(root.path("/etc/systemd/system/multi-user.target.wants/mandos.service")), "/lib/systemd/system/mandos.service");
    // Debian's packages cannot come back while ours are installed.
    // (Debian's .deb from apt's cache, where test/setup.sh's install left
    // it; else downloaded into the root's /tmp.)
    const back = await root.sh(`deb=$(ls ${DEBIAN_DEBS}/mandos_*_all.deb 2>/dev/null | tail -1); ` +
      `[ -n "$deb" ] || { cd /tmp && apt-get download -q mandos >/dev/null && deb=$(ls /tmp/mandos_*_all.deb); }; dpkg -i "$deb" </dev/null 2>&1`);
    assert.notEqual(back.code, 0);
    assert.match(back.stdout.toString(), /mandos-ts-server conflicts with mandos/);

    // The units verify against the installed tree.
    const verify = await root.sh("systemd-analyze verify --man=no /lib/systemd/system/mandos.service /lib/systemd/system/mandos.socket /lib/systemd/system/ask-password-mandos.path /lib/systemd/system/ask-password-mandos.service");
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.stderr, "");

    // The installed server gives the installed client its password, with
    // Debian's keys (kept) and a section from the installed mandos-keygen;
    // it owns its D-Bus name on a system bus of the root's own (its /run),
    // which reads the installed policy, and keeps its state in
    // /var/lib/mandos as _mandos.
    const port = await freePort();
    ok(await root.sh(`mkdir -m 0700 /tmp/conf && printf 'secret from the package\\n' > /tmp/pw && ` +
      `printf '[DEFAULT]\\naddress = ::1\\nport = ${port}\\nzeroconf = False\\n' > /tmp/conf/mandos.conf && ` +
      `mandos-keygen --dir /etc/keys/mandos --passfile /tmp/pw --name packaged --no-ssh > /tmp/conf/clients.conf`), "configuring the server");
    ok(await root.sh("mkdir -p /run/dbus && dbus-daemon --system --fork"), "the root's system bus");
    busStarted = true;
    const server = await startServer(root, "/tmp/conf");
    try {
      const listed = await root.sh("mandos-ctl");
      ok(listed, "mandos-ctl");
      assert.match(listed.stdout.toString(), /^\s*packaged\s/m);
      const fetched = await root.sh(`/usr/lib/mandos-ts/mandos-client --connect ::1:${port} --interface none ` +
        KEYS.map((k) => `--${k.replace(/\.(txt|pem)$/, "")}=/etc/keys/mandos/${k}`).join(" "), { timeoutMs: 60_000 });
      ok(fetched, "the installed mandos-client");
      assert.equal(fetched.stdout.toString(), "secret from the package\n");
    } finally {
      await server.stop();
    }
    // The dependencies other features load, from the installed tree: etcd3
    // reads its proto files from its package directory as it loads.
    const probe = await root.sh(`cd /usr/lib/mandos-ts/dist && node --input-type=module -e '
      const { Etcd3 } = await import("etcd3"); new Etcd3({ hosts: "127.0.0.1:1" }).close();
      await import("prom-client"); await import("shamir-secret-sharing"); console.log("loaded");'`);
    ok(probe, "loading etcd3, prom-client and shamir-secret-sharing");
    assert.equal(probe.stdout.toString(), "loaded\n");
    // dracut builds a host-only initramfs with the module from the
    // installed paths (units in /lib/systemd, read through merged /usr).
    const kver = readdirSync(root.path("/boot")).find((f) => f.startsWith("vmlinuz-"))!.slice("vmlinuz-".length);
    ok(await root.sh(`dracut --force --hostonly --no-compress --no-early-microcode --omit plymouth --add "systemd mandos-ts" ` +
      `--kver ${kver} /tmp/initrd.img 2>&1`, { timeoutMs: 600_000 }), "dracut");
    const image = (await root.sh("lsinitrd /tmp/initrd.img", { timeoutMs: 120_000 })).stdout.toString();
    for (const path of ["usr/lib/mandos-ts/boot/mandos-client.cjs", "usr/lib/mandos-ts/password-agent", "usr/lib/systemd/system/ask-password-mandos.service",
      "usr/lib/systemd/system-generators/mandos-generator", "etc/mandos/keys/tls-privkey.pem"]) {
      assert.match(image, new RegExp(` ${path.replace(/\./g, "\\.")}$`, "m"), path);
    }
    const state = statSync(root.path("/var/lib/mandos"));
    assert.equal(state.mode & 0o777, 0o700);
    assert.equal((await root.sh("stat -c %U /var/lib/mandos")).stdout.toString().trim(), "_mandos");
  } finally {
    if (busStarted) await root.sh("kill $(cat /run/dbus/pid)");
    await root.close();
  }
});

/** Every path where packages install or keep state (dpkg's own database aside). */
async function tree(root: ThrowawayRoot): Promise<Set<string>> {
  const r = await root.sh("find /etc /usr /var/lib /boot -xdev -path /var/lib/dpkg -prune -o -print", { timeoutMs: 120_000 });
  ok(r, "find");
  return new Set(r.stdout.toString().split("\n").filter(Boolean));
}

test("without Debian's packages, installing makes the _mandos user, the state directory and client keys and rebuilds the initramfs; purging removes all of it", { skip, timeout: 900_000 }, async () => {
  packages();
  const root = await ThrowawayRoot.start();
  try {
    ok(await root.sh(`${QUICK_UPDATE_INITRAMFS} && dpkg --purge mandos mandos-client </dev/null 2>&1 && ` +
      "userdel _mandos && (getent group _mandos >/dev/null && groupdel _mandos || true) && rm -rf /var/lib/mandos /etc/keys/mandos"), "purging Debian's packages");
    // dracut's kernel hook, as the dracut package installs it, recording
    // the kernels it is asked to rebuild the initramfs of.
    ok(await root.sh(`mkdir -p /etc/kernel/postinst.d && printf '#!/bin/sh\\necho "$1" >> /tmp/rebuilt\\n' > /etc/kernel/postinst.d/dracut && chmod 0755 /etc/kernel/postinst.d/dracut`), "hook");
    const kernels = readdirSync(root.path("/boot")).filter((f) => /^vmlinu[xz]-/.test(f)).map((f) => f.replace(/^vmlinu[xz]-/, ""));
    assert.ok(kernels.length > 0, "no kernel in /boot (test/setup.sh installs linux-image-amd64)");
    // Files at our paths that no package owns (say, from an earlier
    // `npm run install-system` on this host) would be taken over by dpkg
    // and purged with ours: remove them from the root first.
    const strays = PACKAGES.flatMap((p) => packages().files[p]).map((f) => `/${f}`).filter((f) => {
      if (!lstatSync(root.path(f), { throwIfNoEntry: false })) return false;
      return !statSync(root.path(f), { throwIfNoEntry: false })?.isDirectory(); // /lib is a link to a directory
    });
    if (strays.length > 0) ok(await root.sh(`rm -f ${strays.join(" ")}`), "removing strays");
    const before = await tree(root);

    const install = await root.sh(`dpkg -i ${ourDebs(root)} </dev/null 2>&1`, { timeoutMs: 300_000 });
    ok(install, "dpkg -i");
    assert.match(install.stdout.toString(), /mandos-ts-client: made client keys in \/etc\/keys\/mandos/);
    assert.equal(readFileSync(root.path("/tmp/rebuilt"), "utf8"), kernels.map((k) => `${k}\n`).join(""));
    assert.match((await root.sh("getent passwd _mandos")).stdout.toString(), /^_mandos:/);
    assert.equal((await root.sh("stat -c '%U %G %a' /var/lib/mandos")).stdout.toString().trim(), "_mandos _mandos 700");
    for (const k of KEYS) assert.ok(statSync(root.path(`/etc/keys/mandos/${k}`)).size > 0, k);
    assert.equal(readlinkSync(root.path("/etc/systemd/system/multi-user.target.wants/mandos.service")), "/lib/systemd/system/mandos.service");
    const installed = new Set((await Promise.all(PACKAGES.map((p) => listed(root, p)))).flat());
    assert.ok(installed.has("/usr/lib/mandos-ts/node_modules/koffi/package.json"));

    ok(await root.sh("dpkg --purge mandos-ts-client mandos-ts-server mandos-ts-common </dev/null 2>&1", { timeoutMs: 300_000 }), "dpkg --purge");
    // Removing the client rebuilt the initramfs again, without the module.
    assert.equal(readFileSync(root.path("/tmp/rebuilt"), "utf8"), kernels.map((k) => `${k}\n`).join("").repeat(2));
    const afterPurge = await tree(root);
    assert.deepEqual([...afterPurge].filter((p) => !before.has(p)).sort(), [], "left behind by the purge");
    assert.deepEqual([...before].filter((p) => !afterPurge.has(p)).sort(), [], "removed by the purge though not ours");
    // The user stays, as Debian's policy wants for system users.
    assert.match((await root.sh("getent passwd _mandos")).stdout.toString(), /^_mandos:/);
  } finally {
    await root.close();
  }
});
