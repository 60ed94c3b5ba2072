// koffi, the C calls behind GnuTLS and libc, loaded on first use: its
// native part and setup cost 10-20 ms, which importing a module that may
// need it must not. It is required as CommonJS, synchronously, so that a
// bundle (scripts/bundle.ts) includes it and still runs it only when asked.
import { createRequire } from "node:module";

export type Koffi = typeof import("koffi");

const require = createRequire(import.meta.url);
let koffi: Koffi | undefined;

/** The koffi module, loaded once. */
export function loadKoffi(): Koffi {
  koffi ??= require("koffi") as Koffi;
  return koffi;
}
