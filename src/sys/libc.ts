// libc through koffi, for the few system calls Node has no API for. koffi
// is required as CommonJS (so it loads synchronously) on first use, once per
// process: loading it costs 10-20 ms, which importing a module that may need
// it should not.
import { createRequire } from "node:module";
import { getSystemErrorMap } from "node:util";

type Koffi = typeof import("koffi");
/** A bound libc function; what it returns depends on its prototype. */
export type LibcFunction = (...args: unknown[]) => number;

let loaded: { koffi: Koffi; lib: ReturnType<Koffi["load"]> } | undefined;

function load(): NonNullable<typeof loaded> {
  if (!loaded) {
    const koffi = createRequire(import.meta.url)("koffi") as Koffi;
    loaded = { koffi, lib: koffi.load("libc.so.6") };
  }
  return loaded;
}

/**
 * A getter for the libc functions named by their C prototypes, bound on its
 * first call (loading koffi and libc if nothing has yet), with `errno` to
 * read the errno the last of them left.
 */
export function libcFunctions<K extends string>(
  prototypes: Record<K, string>,
): () => Record<K, LibcFunction> & { errno(): number } {
  let bound: (Record<K, LibcFunction> & { errno(): number }) | undefined;
  return () => {
    if (bound) return bound;
    const { koffi, lib } = load();
    const fns = {} as Record<K, LibcFunction>;
    for (const name of Object.keys(prototypes) as K[]) fns[name] = lib.func(prototypes[name]) as LibcFunction;
    bound = Object.assign(fns, { errno: () => koffi.errno() });
    return bound;
  };
}

/** errno's symbolic name, e.g. "ENOENT"; "errno N" for one Node does not know. */
export function errnoCode(errno: number): string {
  return getSystemErrorMap().get(-errno)?.[0] ?? `errno ${errno}`;
}

/** errno as a log line shows it: "ENOENT (no such file or directory)". */
export function describeErrno(errno: number): string {
  const [code, text] = getSystemErrorMap().get(-errno) ?? [`errno ${errno}`, "unknown error"];
  return `${code} (${text})`;
}
