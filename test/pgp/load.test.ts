// openpgp.js is loaded lazily: importing the OpenPGP core costs nothing,
// preload() starts the load without blocking the caller's current turn,
// and the module is loaded once. Checked in a fresh Node process.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, run } from "../helpers/index.js";

const SCRIPT = `
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const loaded = () => Object.keys(require.cache).some((p) => p.includes("/openpgp/"));
const pgp = await import(process.argv[1]);
const afterImport = loaded();
const t0 = performance.now();
const ready = pgp.preload();
const sameTurn = loaded();
await ready;
const ms = performance.now() - t0;
await pgp.preload();
console.log(JSON.stringify({ afterImport, sameTurn, afterPreload: loaded(), ms }));
`;

test("importing src/pgp does not load openpgp.js; preload() does, after the current turn", async (t) => {
  const r = await run(process.execPath, ["--input-type=module", "-e", SCRIPT, join(ROOT, "dist/src/pgp/index.js")], {
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.toString()) as { afterImport: boolean; sameTurn: boolean; afterPreload: boolean; ms: number };
  t.diagnostic(`openpgp.js load via preload(): ${out.ms.toFixed(1)} ms`);
  assert.equal(out.afterImport, false);
  assert.equal(out.sameTurn, false, "preload() returns before loading");
  assert.equal(out.afterPreload, true);
});
