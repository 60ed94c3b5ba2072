// The boot programs' bundles (scripts/bundle.ts, in dist/boot): they run
// with the code cache made at build time, on their own (no node_modules,
// no dist/src), they fall back to compiling when a cache does not fit, and
// starting them (or importing any module) neither loads koffi nor parses
// IPv6 text, whose regular expression Node compiles on first use.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, cpSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, run, tempDir } from "../helpers/index.js";
import { makeKeys } from "../helpers/client.js";
import { clientArgs, serveSecrets } from "../../scripts/secret-server.js";

const BOOT = join(ROOT, "dist", "boot");
const PROGRAMS = ["password-agent", "mandos-client"] as const;

/** What a fresh node reports for each bundle's code cache in `dir`: "accepted", "rejected" or "none". */
async function cacheVerdicts(dir: string): Promise<string[]> {
  const probe = `const { compileBundle } = require(${JSON.stringify(join(dir, "launch.cjs"))});
    for (const p of ${JSON.stringify(PROGRAMS)}) console.log(compileBundle(${JSON.stringify(dir)}, p).cache);`;
  const r = await run(process.execPath, ["-e", probe]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.toString().trim().split("\n");
}

/** A copy of dist/boot with a launcher per program, as the initramfs has them (CommonJS, outside the checkout). */
function bootCopy(dir: string): string {
  const boot = join(dir, "boot");
  cpSync(BOOT, boot, { recursive: true });
  for (const p of PROGRAMS) writeFileSync(join(dir, p), `require("./boot/launch.cjs").launch(${JSON.stringify(p)});\n`);
  return boot;
}

test("dist/boot holds the bundles, their caches, the loader and koffi's native module for this machine only", () => {
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)).map((g) => `${f}/${g}`) : [f]));
  assert.deepEqual(files(BOOT).sort(), [
    "launch.cjs",
    "mandos-client.cache",
    "mandos-client.cjs",
    `${process.platform}_${process.arch}/koffi.node`,
    "password-agent.cache",
    "password-agent.cjs",
  ].sort());
  for (const p of PROGRAMS) {
    const code = readFileSync(join(BOOT, `${p}.cjs`), "utf8");
    assert.doesNotMatch(code, /import\.meta|sourceMappingURL/, p);
  }
});

test("the bundles run with their code caches", async () => {
  assert.deepEqual(await cacheVerdicts(BOOT), ["accepted", "accepted"]);
});

test("a cache from another build is not used, a cache V8 refuses is ignored, and the programs still run", async () => {
  using dir = tempDir();
  const boot = bootCopy(dir.path);
  const agentCache = join(boot, "password-agent.cache");
  const stale = readFileSync(agentCache);
  stale[0] ^= 0xff; // another build id
  writeFileSync(agentCache, stale);
  const clientCache = join(boot, "mandos-client.cache");
  const corrupt = readFileSync(clientCache);
  corrupt.fill(0x5a, 16, 64); // this build's id, damaged V8 data
  writeFileSync(clientCache, corrupt);
  assert.deepEqual(await cacheVerdicts(boot), ["none", "rejected"]);
  for (const p of PROGRAMS) {
    const r = await run(process.execPath, [join(dir.path, p), "--version"]);
    assert.equal(r.code, 0, `${p}: ${r.stderr}`);
    assert.match(r.stdout.toString(), new RegExp(`^${p} \\d`));
  }
});

test("a copy of dist/boot alone fetches a password: every dependency is inside the bundle", { timeout: 60_000 }, async () => {
  using dir = tempDir();
  chmodSync(dir.path, 0o755); // the client gives up root after reading its keys
  bootCopy(dir.path);
  const keys = makeKeys(join(dir.path, "keys"), "ours");
  const server = await serveSecrets([keys], "bundled password", "127.0.0.1");
  try {
    const r = await run(process.execPath, [join(dir.path, "mandos-client"), ...clientArgs(keys, `127.0.0.1:${server.port}`)], {
      cwd: "/",
      env: { PATH: "/usr/bin:/bin" },
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), "bundled password");
  } finally {
    await server.close();
  }
});

// Preloaded into a node: reports every shared object loaded (koffi's native
// module is one) and every IPv6 text given to net.isIP or net.isIPv6.
const WATCH = `
const net = require("node:net");
for (const name of ["isIP", "isIPv6"]) {
  const original = net[name];
  net[name] = (text) => {
    if (String(text).includes(":")) process.stderr.write("WATCH: net." + name + "(" + text + ")\\n" + new Error().stack + "\\n");
    return original(text);
  };
}
require("node:module").syncBuiltinESMExports();
const dlopen = process.dlopen;
process.dlopen = function (module, file, ...rest) {
  process.stderr.write("WATCH: dlopen " + file + "\\n");
  return dlopen.call(this, module, file, ...rest);
};
`;
const watched = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("WATCH:"));

test("starting the boot programs and importing any module loads no koffi and parses no IPv6 text", async () => {
  using dir = tempDir();
  const watch = join(dir.path, "watch.cjs");
  writeFileSync(watch, WATCH);
  for (const p of PROGRAMS) {
    const r = await run(process.execPath, ["--require", watch, join(ROOT, "bin", p), "--help"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(watched(r.stderr), [], `${p} --help:\n${r.stderr}`);
  }
  // Every module of the program tree; the main modules (main.js, *-main.js) run their program.
  const modules: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const path = join(d, f);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.c?js$/.test(f) && !/(^|-)main\.js$/.test(f)) modules.push(path);
    }
  };
  walk(join(ROOT, "dist", "src"));
  assert.ok(modules.length > 50, `${modules.length} modules`);
  const importAll = join(dir.path, "import-all.mjs");
  writeFileSync(importAll, `for (const m of ${JSON.stringify(modules)}) await import(m);\nconsole.log("imported");\n`);
  const r = await run(process.execPath, ["--require", watch, importAll], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), "imported\n");
  assert.deepEqual(watched(r.stderr), [], r.stderr);
});
