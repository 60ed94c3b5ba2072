// Starts a program from its boot bundle (made by scripts/bundle.ts): one
// CommonJS file, compiled with the V8 code cache made for it at build time,
// so that start-up skips parsing and compiling what the cache holds. This
// module is itself copied next to the bundles, which is where it looks. It
// is CommonJS, as are the launchers that require it: an ES module entry
// costs a few milliseconds more at every start.
//
// A cache is used only with the bundle it was made from: the cache file
// starts with the bundle's build id, which the bundle's last line repeats.
// V8 itself rejects a cache from another V8 version or other V8 flags; the
// bundle then compiles as usual, only slower.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Script } from "node:vm";

/** Node's own CommonJS wrapper: the bundle sees the same five names. */
const HEAD = "(function (exports, require, module, __filename, __dirname) {";
const TAIL = "\n})";
export const BUILD_ID_BYTES = 16;

/** The bundle's last line, naming the build its cache must come from. */
export function buildIdLine(id: Buffer): string {
  return `\n//# mandos-build-id=${id.toString("hex")}\n`;
}

export function bundleFiles(dir: string, program: string): { code: string; cache: string } {
  return { code: join(dir, `${program}.cjs`), cache: join(dir, `${program}.cache`) };
}

export interface Compiled {
  script: Script;
  file: string;
  /** What became of the code cache: none found (or from another build), or V8's verdict. */
  cache: "none" | "accepted" | "rejected";
}

/** Compile `program`'s bundle in `dir`, with its code cache when it has one. */
export function compileBundle(dir: string, program: string, useCache = true): Compiled {
  const files = bundleFiles(dir, program);
  const source = readFileSync(files.code, "utf8");
  const cachedData = useCache ? cacheFor(source, files.cache) : undefined;
  const script = new Script(HEAD + source + TAIL, { filename: files.code, cachedData });
  const cache = cachedData === undefined ? "none" : script.cachedDataRejected ? "rejected" : "accepted";
  return { script, file: files.code, cache };
}

function cacheFor(source: string, path: string): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    return undefined; // no cache: compile from source
  }
  return source.endsWith(buildIdLine(data.subarray(0, BUILD_ID_BYTES))) ? data.subarray(BUILD_ID_BYTES) : undefined;
}

/** Run a compiled bundle as Node runs a CommonJS main module. */
export function runBundle(compiled: Compiled): void {
  const wrapper = compiled.script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} };
  wrapper.call(module.exports, module.exports, createRequire(compiled.file), module, compiled.file, dirname(compiled.file));
}

/** What a launcher calls: run `program` from the bundles beside this module. */
export function launch(program: string): void {
  runBundle(compileBundle(__dirname, program));
}
