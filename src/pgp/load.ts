// Lazy loading of openpgp.js. Parsing and compiling the library costs
// 50-100 ms, which at boot is worth overlapping with network waiting: the
// client calls preload() right after it starts looking for a server, and
// every function in src/pgp awaits the same promise.
//
// We load the package's minified CommonJS build through require() rather
// than `import "openpgp"` (whose ESM entry is the unminified build): it
// compiles measurably faster. All project code reaches openpgp.js through
// this module, so only one copy is ever loaded.
import { createRequire } from "node:module";
import type * as OpenPGP from "openpgp";

export type OpenPGPModule = typeof OpenPGP;

const require = createRequire(import.meta.url);
let loading: Promise<OpenPGPModule> | undefined;

/** The openpgp.js module, loaded once on first use. */
export function openpgpModule(): Promise<OpenPGPModule> {
  loading ??= new Promise<OpenPGPModule>((resolve, reject) => {
    // Loading is synchronous CPU work; deferring it one turn lets a caller
    // that calls preload() first still get its sockets going before we
    // occupy the event loop.
    setImmediate(() => {
      try {
        resolve(require("openpgp") as OpenPGPModule);
      } catch (err) {
        reject(new Error(`cannot load openpgp.js: ${(err as Error).message.split("\n")[0]}`));
      }
    });
  });
  return loading;
}

/** Start loading openpgp.js in the background; resolves when it is ready. */
export async function preload(): Promise<void> {
  await openpgpModule();
}
