// libc through koffi, for the few system calls Node has no API for, bound
// on first use (see koffi.ts).
import { getSystemErrorMap } from "node:util";
import { loadKoffi, type Koffi } from "./koffi.js";

/** A bound libc function; what it returns depends on its prototype. */
export type LibcFunction = (...args: unknown[]) => number;

let loaded: { koffi: Koffi; lib: ReturnType<Koffi["load"]> } | undefined;

function load(): NonNullable<typeof loaded> {
  if (!loaded) {
    const koffi = loadKoffi();
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
