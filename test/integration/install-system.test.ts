// `npm run install-system` (scripts/install-system.sh) into a temporary
// DESTDIR: the layout and modes, a runnable program tree that uses its
// own node_modules, sysusers/tmpfiles entries that systemd's tools accept,
// re-runs, PREFIX, the message without a build, and that Debian's Mandos
// packages on this machine are left as they were.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import { ROOT, requires, tempDir } from "../helpers/index.js";
import { INSTALL_SCRIPT, installInto, installStaged, needsBuild, run } from "../helpers/integration.js";
import { DEBIAN_CTL, DEBIAN_KEYGEN, DEBIAN_SERVER, debianPeer, debianPeerMissing } from "../helpers/debian-peer.js";

const LIB = "usr/lib/mandos-ts";
const PROGRAMS = { mandos: "server", "mandos-check": "check", "mandos-client": "client", "mandos-ctl": "ctl", "mandos-keygen": "keygen", "password-agent": "agent" };
/** The programs that run at boot, from their bundles in boot/. */
const BOOT_PROGRAMS = new Set(["mandos-client", "password-agent"]);
const built = (program: keyof typeof PROGRAMS) => existsSync(join(ROOT, "dist/src", PROGRAMS[program], "main.js"));

/** Every entry below dir: relative path → "type mode [target|sha256]". */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (abs: string) => {
    for (const entry of readdirSync(abs)) {
      const full = join(abs, entry);
      const st = lstatSync(full);
      const mode = (st.mode & 0o7777).toString(8);
      const rel = relative(dir, full);
      if (st.isSymbolicLink()) out[rel] = `link ${readlinkSync(full)}`;
      else if (st.isDirectory()) {
        out[rel] = `dir ${mode}`;
        walk(full);
      } else out[rel] = `file ${mode} ${createHash("sha256").update(readFileSync(full)).digest("hex")}`;
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

const modeOf = (path: string) => (statSync(path).mode & 0o7777).toString(8);

test("install-system lays out the program tree, launchers, units, generator, dracut module and man pages", {
  skip: needsBuild(),
}, async () => {
  const staged = await installStaged();
  try {
    const d = staged.path;
    // Everything lands below DESTDIR/PREFIX.
    assert.deepEqual(readdirSync(d), ["usr"]);
    for (const program of Object.keys(PROGRAMS)) {
      const launcher = join(d, LIB, program);
      assert.equal(modeOf(launcher), "755", program);
      const text = readFileSync(launcher, "utf8");
      assert.match(text, /^#!\/\S+\n/, program);
      assert.ok(existsSync(text.slice(2, text.indexOf("\n"))), `${program}: interpreter ${text.split("\n")[0]}`);
      const body = text.slice(text.indexOf("\n") + 1);
      assert.equal(
        body,
        BOOT_PROGRAMS.has(program)
          ? `require("./boot/launch.cjs").launch("${program}");\n`
          : `import("./dist/src/${PROGRAMS[program as keyof typeof PROGRAMS]}/main.js");\n`,
        program,
      );
    }
    for (const program of ["mandos", "mandos-ctl", "mandos-keygen", "mandos-check"]) {
      const link = join(d, "usr/sbin", program);
      assert.ok(lstatSync(link).isSymbolicLink(), program);
      assert.equal(readlinkSync(link), `../lib/mandos-ts/${program}`);
      assert.equal(realpathSync(link), realpathSync(join(d, LIB, program)));
    }
    // The launchers are CommonJS: only dist/ says "module".
    assert.ok(!existsSync(join(d, LIB, "package.json")));
    assert.equal(JSON.parse(readFileSync(join(d, LIB, "dist/package.json"), "utf8")).type, "module");
    assert.ok(existsSync(join(d, LIB, "dist/src/agent/main.js")));
    assert.ok(!existsSync(join(d, LIB, "dist/test")), "no compiled tests");
    // The boot programs' bundles, as built.
    assert.deepEqual(snapshot(join(d, LIB, "boot")), snapshot(join(ROOT, "dist/boot")));
    assert.ok(existsSync(join(d, LIB, "boot/mandos-client.cache")));

    // Production dependencies only, pruned, koffi native for linux-x64 only.
    const modules = join(d, LIB, "node_modules");
    for (const pkg of ["koffi", "openpgp", "dbus-next", "ini", "multicast-dns", "dns-packet"]) {
      assert.ok(existsSync(join(modules, pkg, "package.json")), pkg);
    }
    for (const pkg of ["typescript", "@types"]) assert.ok(!existsSync(join(modules, pkg)), pkg);
    assert.deepEqual(readdirSync(join(modules, "@koromix")), ["koffi-linux-x64"]);
    assert.deepEqual(readdirSync(join(modules, "@koromix/koffi-linux-x64")).sort(), ["index.js", "linux_x64", "package.json"]);
    assert.ok(statSync(join(modules, "@koromix/koffi-linux-x64/linux_x64/koffi.node")).size > 100_000);
    const files = Object.keys(snapshot(modules));
    assert.deepEqual(files.filter((f) => /\.(map|d\.ts|cc|hh|md)$/.test(f) && !/LICEN[CS]E/i.test(f)), []);
    assert.ok(existsSync(join(modules, "openpgp/dist/node/openpgp.mjs")));
    assert.ok(!existsSync(join(modules, "openpgp/dist/lightweight")));

    // systemd, D-Bus, sysusers, tmpfiles, dracut, man
    const unitsDir = join(d, "usr/lib/systemd/system");
    for (const unit of readdirSync(join(ROOT, "units")).filter((u) => /\.(service|socket|path)$/.test(u))) {
      assert.equal(readFileSync(join(unitsDir, unit), "utf8"), readFileSync(join(ROOT, "units", unit), "utf8"), unit);
      assert.equal(modeOf(join(unitsDir, unit)), "644", unit);
    }
    assert.ok(existsSync(join(unitsDir, "ask-password-mandos.path")));
    const generator = join(d, "usr/lib/systemd/system-generators/mandos-generator");
    assert.equal(modeOf(generator), "755");
    assert.equal(readFileSync(generator, "utf8"), readFileSync(join(ROOT, "generators/mandos-generator"), "utf8"));
    const moduleSetup = join(d, "usr/lib/dracut/modules.d/90mandos-ts/module-setup.sh");
    assert.equal(modeOf(moduleSetup), "755");
    assert.match(readFileSync(moduleSetup, "utf8"), /^mandos_ts_prefix=\/usr$/m);
    if (existsSync(join(ROOT, "units/dbus-mandos.conf"))) {
      assert.equal(modeOf(join(d, "usr/share/dbus-1/system.d/mandos.conf")), "644");
    }
    assert.match(readFileSync(join(d, "usr/lib/sysusers.d/mandos-ts.conf"), "utf8"), /^u _mandos /m);
    assert.match(readFileSync(join(d, "usr/lib/tmpfiles.d/mandos-ts.conf"), "utf8"), /^d \/var\/lib\/mandos 0700 _mandos _mandos /m);
    for (const page of readdirSync(join(ROOT, "man"))) {
      const section = /\.(\d)[^.]*$/.exec(page)?.[1];
      assert.ok(section, page);
      assert.equal(modeOf(join(d, `usr/share/man/man${section}`, page)), "644", page);
    }
    assert.ok(existsSync(join(d, "usr/share/man/man8/mandos-generator.8")));
    assert.ok(existsSync(join(d, "usr/share/man/man8/intro.8mandos")));
  } finally {
    staged.cleanup();
  }
});

test("the installed programs run from the installed tree with its own node_modules", { skip: needsBuild() }, async () => {
  const staged = await installStaged();
  try {
    const d = staged.path;
    const env = { PATH: "/usr/bin:/bin" }; // no NODE_PATH, nothing from the repository
    // Module resolution from inside the installed tree, and the native part
    // of koffi loading GnuTLS from there.
    const probe = join(d, LIB, "dist", "probe.mjs");
    writeFileSync(
      probe,
      `const names = ["koffi", "openpgp", "dbus-next", "multicast-dns", "dns-packet", "ini"];
       const resolved = names.map((n) => import.meta.resolve(n));
       const koffi = (await import("koffi")).default;
       const gnutls = koffi.load("libgnutls.so.30");
       const version = gnutls.func("const char *gnutls_check_version(const char *)")(null);
       console.log(JSON.stringify({ resolved, version }));`,
    );
    const r = await run(process.execPath, [probe], { cwd: "/", env, timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const { resolved, version } = JSON.parse(r.stdout.toString()) as { resolved: string[]; version: string };
    for (const url of resolved) assert.ok(url.startsWith(`file://${join(d, LIB, "node_modules")}/`), url);
    assert.match(version, /^3\./);

    const cases: [keyof typeof PROGRAMS, string, string[], RegExp][] = [
      ["mandos-client", join(d, LIB, "mandos-client"), ["--help"], /--connect/],
      ["password-agent", join(d, LIB, "password-agent"), ["--help"], /--agent-directory/],
      ["mandos-keygen", join(d, "usr/sbin/mandos-keygen"), ["--version"], /\d+\.\d+/],
      ["mandos", join(d, "usr/sbin/mandos"), ["--version"], /\d+\.\d+/],
      ["mandos-ctl", join(d, "usr/sbin/mandos-ctl"), ["--version"], /\d+\.\d+/],
      ["mandos-check", join(d, "usr/sbin/mandos-check"), ["--help"], /--crypttab/],
    ];
    let ran = 0;
    for (const [program, path, args, expected] of cases) {
      if (!built(program)) continue; // written in parallel; checked once it is built
      const out = await run(path, args, { cwd: "/", env, timeoutMs: 30_000 });
      assert.equal(out.code, 0, `${program} ${args.join(" ")}: ${out.stderr}`);
      assert.match(out.stdout.toString() + out.stderr, expected, program);
      ran++;
    }
    assert.ok(ran >= 2, "mandos-client and password-agent are built");
  } finally {
    staged.cleanup();
  }
});

test("the sysusers.d and tmpfiles.d entries make Debian's _mandos user own the state directory, with or without Debian's lines", {
  skip: needsBuild() || requires({ root: true, commands: ["systemd-sysusers", "systemd-tmpfiles"] }),
}, async () => {
  const staged = await installStaged();
  try {
    const ours = { users: join(staged.path, "usr/lib/sysusers.d/mandos-ts.conf"), files: join(staged.path, "usr/lib/tmpfiles.d/mandos-ts.conf") };
    // Debian's mandos package's own lines, as it ships them (when installed).
    const debian = { users: "/usr/lib/sysusers.d/mandos.conf", files: "/usr/lib/tmpfiles.d/mandos.conf" };
    const combos: Array<[string, string[], string[]]> = [["ours alone", [ours.users], [ours.files]]];
    if (existsSync(debian.files)) {
      // systemd reads them in file name order: mandos-ts.conf before mandos.conf.
      combos.push(["ours, then Debian's", [ours.users, debian.users], [ours.files, debian.files]]);
      combos.push(["Debian's, then ours", [debian.users, ours.users], [debian.files, ours.files]]);
    }
    for (const [what, users, files] of combos) {
      const target = tempDir("mandos-sysroot-");
      try {
        mkdirSync(join(target.path, "etc"));
        const u = await run("systemd-sysusers", [`--root=${target.path}`, ...users]);
        assert.equal(u.code, 0, u.stderr);
        const entry = /^_mandos:x:(\d+):(\d+):/m.exec(readFileSync(join(target.path, "etc/passwd"), "utf8"));
        assert.ok(entry, what);
        const f = await run("systemd-tmpfiles", [`--root=${target.path}`, "--create", ...files]);
        assert.equal(f.code, 0, f.stderr);
        const st = statSync(join(target.path, "var/lib/mandos"));
        assert.ok(st.isDirectory(), what);
        assert.equal(st.mode & 0o7777, 0o700, what);
        assert.deepEqual([st.uid, st.gid], [Number(entry[1]), Number(entry[2])], what);
      } finally {
        target.cleanup();
      }
    }
  } finally {
    staged.cleanup();
  }
});

test("installing onto a system with Debian's Mandos packages refuses, names their files, and writes nothing", {
  skip: needsBuild() || requires({ root: true, files: ["/usr/sbin/mandos", "/usr/sbin/mandos-keygen"] }),
}, async () => {
  for (const prefix of ["/usr", "/usr/local"]) {
    // A real install (no DESTDIR), but in a mount namespace where /usr is
    // read-only: should the refusal ever fail, nothing is written anyway.
    const guarded = "mount --bind /usr /usr && mount -o remount,bind,ro /usr && exec bash \"$0\"";
    const r = await run("unshare", ["--mount", "--propagation", "private", "sh", "-c", guarded, INSTALL_SCRIPT], {
      env: { ...process.env, DESTDIR: "", PREFIX: prefix },
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^install-system: refusing to install into ${prefix}: these files belong to Debian packages`));
    for (const [pkg, path] of [["mandos", "/usr/sbin/mandos"], ["mandos", "/usr/sbin/mandos-ctl"], ["mandos-client", "/usr/sbin/mandos-keygen"], ["mandos", "/lib/systemd/system/mandos.service"]]) {
      assert.match(r.stderr, new RegExp(`^  ${pkg}: ${path}$`, "m"), `${prefix}: ${path}`);
    }
    assert.ok(!existsSync(join(prefix, "lib/mandos-ts")), prefix);
    assert.ok(!existsSync(join(prefix, "lib/sysusers.d/mandos-ts.conf")), prefix);
  }
});

test("re-running install-system gives the same tree and removes stale files", { skip: needsBuild() }, async () => {
  const staged = await installStaged();
  try {
    const first = snapshot(staged.path);
    writeFileSync(join(staged.path, LIB, "node_modules", "stale.js"), "old\n");
    writeFileSync(join(staged.path, "usr/lib/dracut/modules.d/90mandos-ts/stale.sh"), "old\n");
    const again = await installInto(staged.path);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(snapshot(staged.path), first);
  } finally {
    staged.cleanup();
  }
});

test("PREFIX relocates the files and the paths inside units and the dracut module", { skip: needsBuild() }, async () => {
  const staged = await installStaged({ PREFIX: "/usr/local" });
  try {
    const d = staged.path;
    assert.deepEqual(readdirSync(join(d, "usr")), ["local"]);
    const service = readFileSync(join(d, "usr/local/lib/systemd/system/ask-password-mandos.service"), "utf8");
    assert.match(service, /^ExecStart=\/usr\/local\/lib\/mandos-ts\/password-agent .* \/usr\/local\/lib\/mandos-ts\/mandos-client /m);
    assert.doesNotMatch(service, /[^l]\/usr\/lib\/mandos-ts/);
    assert.match(
      readFileSync(join(d, "usr/local/lib/dracut/modules.d/90mandos-ts/module-setup.sh"), "utf8"),
      /^mandos_ts_prefix=\/usr\/local$/m,
    );
    for (const bad of ["relative/prefix", "/"]) {
      const r = await installInto(join(d, "never"), { PREFIX: bad });
      assert.notEqual(r.code, 0, bad);
      assert.match(r.stderr, /PREFIX/);
    }
    assert.ok(!existsSync(join(d, "never")));
  } finally {
    staged.cleanup();
  }
});

test("without a build, install-system says to run the build and installs nothing", async () => {
  const repo = tempDir("mandos-nobuild-");
  try {
    mkdirSync(join(repo.path, "scripts"));
    copyFileSync(INSTALL_SCRIPT, join(repo.path, "scripts", "install-system.sh"));
    copyFileSync(join(ROOT, "package.json"), join(repo.path, "package.json"));
    const destdir = join(repo.path, "dest");
    const r = await installInto(destdir, {}, join(repo.path, "scripts", "install-system.sh"));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /dist\/src or dist\/boot is missing: build first with `npm run build`/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.ok(!existsSync(destdir));
  } finally {
    repo.cleanup();
  }
});

test("Debian's Mandos packages are untouched and still work after an install", {
  skip: needsBuild() || debianPeerMissing(DEBIAN_SERVER, DEBIAN_CTL, DEBIAN_KEYGEN),
}, async () => {
  const watched = [DEBIAN_SERVER, DEBIAN_CTL, DEBIAN_KEYGEN, "/lib/systemd/system/mandos.service",
    "/usr/lib/sysusers.d/mandos.conf", "/usr/lib/tmpfiles.d/mandos.conf", "/usr/lib/mandos-ts", "/usr/share/man/man8/intro.8mandos.gz"];
  const state = () =>
    watched.map((p) => {
      if (!existsSync(p)) return `${p}: absent`;
      const st = lstatSync(p);
      return `${p}: ${st.ino} ${st.mtimeMs} ${st.isFile() ? createHash("sha256").update(readFileSync(p)).digest("hex") : ""}`;
    });
  const before = state();
  const staged = await installStaged();
  try {
    assert.deepEqual(state(), before);
    const server = await run(debianPeer(DEBIAN_SERVER), ["--version"], { timeoutMs: 30_000 });
    assert.equal(server.code, 0, server.stderr);
    assert.match(server.stdout.toString() + server.stderr, /1\.8\.\d+/);
    const keygen = await run(debianPeer(DEBIAN_KEYGEN), ["--version"], { timeoutMs: 30_000 });
    assert.equal(keygen.code, 0, keygen.stderr);
    assert.match(keygen.stdout.toString(), /1\.8\.\d+/);
  } finally {
    staged.cleanup();
  }
});
