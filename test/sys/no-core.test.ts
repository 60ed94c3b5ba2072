// Processes holding secrets: no core files, not dumpable.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, run } from "../helpers/index.js";

test("protectMemory sets the core size limit to 0 and makes the process undumpable", async () => {
  const dist = join(ROOT, "dist", "src", "sys");
  const code = `
    const { protectMemory } = await import(${JSON.stringify(join(dist, "no-core.js"))});
    const { libcFunctions } = await import(${JSON.stringify(join(dist, "libc.js"))});
    const { readFileSync } = await import("node:fs");
    const prctl = libcFunctions({ prctl: "int prctl(int option, unsigned long a, unsigned long b, unsigned long c, unsigned long d)" });
    const before = prctl().prctl(3, 0, 0, 0, 0);
    protectMemory();
    const after = prctl().prctl(3, 0, 0, 0, 0);
    const core = readFileSync("/proc/self/limits", "utf8").split("\\n").find((l) => l.startsWith("Max core file size"));
    console.log(JSON.stringify({ before, after, core }));`;
  const r = await run(process.execPath, ["--input-type=module", "-e", code]);
  assert.equal(r.code, 0, r.stderr);
  const { before, after, core } = JSON.parse(r.stdout.toString()) as { before: number; after: number; core: string };
  assert.equal(before, 1, "dumpable to begin with");
  assert.equal(after, 0, "not dumpable after");
  assert.match(core, /^Max core file size\s+0\s+0\s+bytes/);
});
