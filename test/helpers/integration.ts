// Rigs for the systemd/dracut integration tests: a staged install
// (`npm run install-system` into a temporary DESTDIR), running the
// generator by hand, reading the trees they produce, and the kernel that
// dracut can build for.
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir, which, type RunResult } from "./index.js";

import { run } from "./index.js";
export { run };

export const GENERATOR = join(ROOT, "generators", "mandos-generator");
export const INSTALL_SCRIPT = join(ROOT, "scripts", "install-system.sh");
export const AGENT_UNITS = ["ask-password-mandos.path", "ask-password-mandos.service"] as const;

/** Why install-system cannot run here, or false. */
export function needsBuild(): string | false {
  if (!existsSync(join(ROOT, "dist", "src"))) return "needs the build (npx tsc -p tsconfig.json)";
  if (!existsSync(join(ROOT, "node_modules", "@koromix", "koffi-linux-x64"))) return "needs node_modules (npm ci)";
  if (!which("npm")) return "needs npm";
  return false;
}

export interface Staged {
  /** The DESTDIR. */
  path: string;
  result: RunResult;
  cleanup(): void;
}

/** `npm run install-system`'s script into a fresh DESTDIR (PREFIX as given). */
export async function installStaged(env: NodeJS.ProcessEnv = {}): Promise<Staged> {
  const dir = tempDir("mandos-install-");
  try {
    const result = await installInto(dir.path, env);
    if (result.code !== 0) throw new Error(`install-system failed (${result.code}): ${result.stderr}`);
    return { path: dir.path, result, cleanup: dir.cleanup };
  } catch (err) {
    dir.cleanup();
    throw err;
  }
}

/** `npm run install-system` with DESTDIR (and env); with `script`, that copy of the script run directly. */
export function installInto(destdir: string, env: NodeJS.ProcessEnv = {}, script?: string): Promise<RunResult> {
  const opts = { cwd: ROOT, env: { ...process.env, DESTDIR: destdir, ...env }, timeoutMs: 120_000 };
  return script ? run("bash", [script], opts) : run("npm", ["run", "--silent", "install-system"], opts);
}

export interface GeneratorRun {
  result: RunResult;
  normal: string;
  early: string;
  late: string;
  /** Every file and link the generator wrote, relative to its directory, with content or target. */
  files: Record<string, string>;
}

/** Runs the generator as systemd would (three output directories), in a fresh temporary directory. */
export async function runGenerator(
  base: string,
  env: NodeJS.ProcessEnv,
  generator = GENERATOR,
): Promise<GeneratorRun> {
  const normal = join(base, "normal");
  const early = join(base, "early");
  const late = join(base, "late");
  // A clean environment, as at boot: only what the test passes in.
  const result = await run(generator, [normal, early, late], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    timeoutMs: 10_000,
  });
  const files: Record<string, string> = {};
  for (const [name, dir] of [["normal", normal], ["early", early], ["late", late]] as const) {
    for (const [rel, value] of Object.entries(readTree(dir))) files[`${name}/${rel}`] = value;
  }
  return { result, normal, early, late, files };
}

/**
 * A directory's files as relative path → content (text), symlinks as
 * "-> target", directories left out. Missing directory: empty.
 */
export function readTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  const walk = (rel: string) => {
    for (const entry of readdirSync(join(dir, rel))) {
      const relPath = rel ? `${rel}/${entry}` : entry;
      const full = join(dir, relPath);
      const st = lstatSync(full);
      if (st.isSymbolicLink()) out[relPath] = `-> ${readlinkSync(full)}`;
      else if (st.isDirectory()) walk(relPath);
      else out[relPath] = readFileSync(full, "utf8");
    }
  };
  walk("");
  return out;
}

/** The `Key=value` lines of a unit file (comments and section headers dropped), in order. */
export function unitSettings(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("["));
}

/** A kernel with modules that dracut can build an image for, newest first, or null. */
export function dracutKernel(): string | null {
  if (!existsSync("/lib/modules")) return null;
  const kvers = readdirSync("/lib/modules")
    .filter((k) => existsSync(join("/lib/modules", k, "modules.dep")) || existsSync(join("/lib/modules", k, "modules.order")))
    .sort()
    .reverse();
  return kvers[0] ?? null;
}

export const DRACUT_BASE = "/usr/lib/dracut";

/**
 * Real dracut with our staged module, never writing to the real /usr:
 * dracut's own files are copied into `work` with 90mandos-ts added
 * (dracutbasedir=), and the module reads the staged tree
 * (mandos_ts_sysroot=). Each build runs in a private mount namespace
 * where tmpfs mounts over /etc/keys/mandos and /etc/mandos/network-hooks.d
 * hold the test's keys and hooks, so the host's stay untouched.
 */
export function dracutRig(work: string, staged: string, kver: string, extraEnv: NodeJS.ProcessEnv = {}) {
  const dracutBase = join(work, "dracut");
  cpSync(DRACUT_BASE, dracutBase, { recursive: true, verbatimSymlinks: true });
  cpSync(join(staged, "usr/lib/dracut/modules.d/90mandos-ts"), join(dracutBase, "modules.d/90mandos-ts"), { recursive: true });
  const env = { ...process.env, mandos_ts_sysroot: staged, dracutbasedir: dracutBase, ...extraEnv };
  const empty = join(work, "no-hooks");
  mkdirSync(empty, { recursive: true });
  /**
   * dracut with `args` (options and the image's path), with `keys` and
   * `hooks` (directories) in place, and `dropIn` (text) as an
   * administrator's drop-in for the agent's unit, if given.
   */
  return (keys: string, args: string, hooks = empty, dropIn?: string): Promise<RunResult> => {
    let units = "";
    if (dropIn !== undefined) {
      const dir = join(work, "systemd-system");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(work, "admin-drop-in.conf"), dropIn);
      units = `mount -t tmpfs tmpfs "${dir}"
         cp -a /etc/systemd/system/. "${dir}/"
         mkdir -p "${dir}/ask-password-mandos.service.d"
         cp "${join(work, "admin-drop-in.conf")}" "${dir}/ask-password-mandos.service.d/"
         mount --bind "${dir}" /etc/systemd/system`;
    }
    return run(
      "unshare",
      ["--mount", "--propagation", "private", "sh", "-ec",
        `mount -t tmpfs -o mode=0700 tmpfs /etc/keys/mandos
         cp -a "${keys}/." /etc/keys/mandos/
         mount -t tmpfs tmpfs /etc/mandos/network-hooks.d
         cp -a "${hooks}/." /etc/mandos/network-hooks.d/
         ${units}
         exec dracut --force --no-compress --no-early-microcode --tmpdir "${work}" --kver "${kver}" ${args}`],
      { env, timeoutMs: 400_000 },
    );
  };
}
