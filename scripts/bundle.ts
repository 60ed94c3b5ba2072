// The boot programs' bundles (`npm run build` runs this after tsc): each
// program that runs in the initramfs becomes one CommonJS file made by
// esbuild from the compiled modules in dist/src, plus a V8 code cache made
// by running it once, and the loader the launchers require. Into dist/boot
// go:
//
//   password-agent.cjs, mandos-client.cjs   the bundles (every dependency inside)
//   password-agent.cache, mandos-client.cache   their V8 code caches
//   launch.cjs                             the loader (src/boot/launch.cts)
//   <platform>_<arch>/koffi.node           koffi's native part, this machine's only
//
// Nothing else is needed at run time: no node_modules, no dist/src.
import { build, type Metafile, type Plugin } from "esbuild";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BUILD_ID_BYTES, buildIdLine, bundleFiles, compileBundle } from "../src/boot/launch.cjs";
import { clientArgs, serveSecrets } from "./secret-server.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const OUT = join(ROOT, "dist", "boot");

/** The programs that run at boot: name → folder of its main.js under dist/src. */
const BOOT_PROGRAMS = { "password-agent": "agent", "mandos-client": "client" } as const;
type Program = keyof typeof BOOT_PROGRAMS;

/** koffi's native package for this machine, and the folder its loader requires the module from. */
const KOFFI_NATIVE = `@koromix/koffi-${process.platform}-${process.arch}`;
const NATIVE_DIR = `${process.platform}_${process.arch}`;

/**
 * Modules that load a CommonJS package synchronously declare
 * `const require = createRequire(import.meta.url);` (import.meta does not
 * exist in a CommonJS bundle). Dropping that line leaves their require()
 * calls to esbuild, which bundles each package and runs it on its first
 * require, so a package loaded on first use still is.
 */
const bundleRequires: Plugin = {
  name: "bundle-requires",
  setup(b) {
    b.onLoad({ filter: /\/dist\/src\/.*\.js$/ }, (args) => ({
      contents: readFileSync(args.path, "utf8").replace(/^const require = createRequire\(import\.meta\.url\);$/m, ""),
      loader: "js",
    }));
  },
};

/**
 * What a bundle may still require at run time: Node's built-in modules,
 * and koffi's per-platform packages, which koffi tries in turn (each in a
 * try block) and esbuild leaves unresolved except this machine's.
 */
function checkExternals(program: string, meta: Metafile): void {
  const builtins = new Set(builtinModules);
  for (const [file, input] of Object.entries(meta.inputs)) {
    for (const imported of input.imports) {
      if (!imported.external) continue;
      const path = imported.path.replace(/^node:/, "");
      if (builtins.has(path) || /^@koromix\/koffi-/.test(path)) continue;
      throw new Error(`${program}: ${file} requires "${imported.path}", which the bundle does not contain`);
    }
  }
}

async function bundle(program: Program): Promise<Buffer> {
  const result = await build({
    entryPoints: [join(ROOT, "dist", "src", BOOT_PROGRAMS[program], "main.js")],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minify: true,
    write: false,
    metafile: true,
    outfile: bundleFiles(OUT, program).code,
    plugins: [bundleRequires],
    logLevel: "warning",
    // A module still reading import.meta would get an empty object.
    logOverride: { "empty-import-meta": "error" },
  });
  checkExternals(program, result.metafile);
  const code = Buffer.from(result.outputFiles[0]!.contents);
  const id = createHash("sha256").update(code).digest().subarray(0, BUILD_ID_BYTES);
  writeFileSync(bundleFiles(OUT, program).code, Buffer.concat([code, Buffer.from(buildIdLine(id))]));
  return id;
}

/**
 * Runs `program` from its bundle once, as a launcher would but without a
 * cache, and returns the code cache V8 makes at its exit: it holds every
 * function that run compiled, not only the bundle's top level. The file is
 * opened first, because the client gives up root before it exits.
 */
async function warmRun(program: Program, args: string[], work: string): Promise<{ cache: Buffer; stdout: string }> {
  const cacheFile = join(work, `${program}.cache`);
  const warm = `
    const { openSync, writeSync } = require("node:fs");
    const { compileBundle, runBundle } = require(${JSON.stringify(join(OUT, "launch.cjs"))});
    const fd = openSync(${JSON.stringify(cacheFile)}, "w", 0o600);
    const compiled = compileBundle(${JSON.stringify(OUT)}, ${JSON.stringify(program)}, false);
    process.on("exit", () => writeSync(fd, compiled.script.createCachedData()));
    process.argv = [process.execPath, compiled.file, ...${JSON.stringify(args)}];
    runBundle(compiled);`;
  // Asynchronous: the client fetches from a server in this process.
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done, fail) => {
    const child = spawn(process.execPath, ["-e", warm], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", fail);
    child.on("close", (exit) => {
      clearTimeout(timer);
      done({ code: exit, stdout, stderr });
    });
  });
  if (code !== 0) throw new Error(`${program} ${args[0]} failed while making its code cache (exit ${code}): ${stderr.trim()}`);
  return { cache: readFileSync(cacheFile), stdout };
}

/**
 * The client's cache comes from a real fetch: keys from our keygen, our
 * listener on loopback in this process, the password checked. A cache made
 * from --help alone holds too little: openpgp.js, GnuTLS's bindings and
 * the TLS code compile only when used (measured: 0.90x the module tree's
 * start against 0.75x; docs/design.md).
 */
async function clientCache(work: string): Promise<Buffer> {
  const keys = join(work, "keys");
  mkdirSync(keys);
  const keygen = spawnSync(process.execPath, [join(ROOT, "dist", "src", "keygen", "main.js"), "--dir", keys, "--force"], {
    stdio: ["ignore", "ignore", "pipe"],
    encoding: "utf8",
  });
  if (keygen.status !== 0) throw new Error(`mandos-keygen failed: ${keygen.stderr.trim()}`);
  const password = randomBytes(12).toString("hex");
  const server = await serveSecrets([keys], password, "127.0.0.1");
  try {
    const run = await warmRun("mandos-client", clientArgs(keys, `127.0.0.1:${server.port}`), work);
    if (run.stdout !== password) throw new Error("mandos-client did not print the password while making its code cache");
    return run.cache;
  } finally {
    await server.close();
  }
}

async function writeCache(program: Program, id: Buffer, work: string): Promise<void> {
  const cache = program === "mandos-client" ? await clientCache(work) : (await warmRun(program, ["--help"], work)).cache;
  writeFileSync(bundleFiles(OUT, program).cache, Buffer.concat([id, cache]));
  const verdict = compileBundle(OUT, program).cache;
  if (verdict !== "accepted") throw new Error(`${program}: the code cache just made was not used (${verdict})`);
}

/** koffi's native module for this platform and architecture, where koffi's loader in the bundle requires it. */
function copyKoffiNative(): void {
  const pkg = dirname(createRequire(join(ROOT, "package.json")).resolve(`${KOFFI_NATIVE}/package.json`));
  mkdirSync(join(OUT, NATIVE_DIR));
  copyFileSync(join(pkg, NATIVE_DIR, "koffi.node"), join(OUT, NATIVE_DIR, "koffi.node"));
}

async function main(): Promise<void> {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  copyFileSync(join(ROOT, "dist", "src", "boot", "launch.cjs"), join(OUT, "launch.cjs"));
  copyKoffiNative();
  const work = mkdtempSync(join(tmpdir(), "mandos-bundle-"));
  try {
    for (const program of Object.keys(BOOT_PROGRAMS) as Program[]) await writeCache(program, await bundle(program), work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bundle: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
