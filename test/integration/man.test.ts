// Every man page is clean under mandoc's linter; the generator's names
// what it documents.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT, requires } from "../helpers/index.js";
import { run } from "../helpers/integration.js";

const PAGES = readdirSync(join(ROOT, "man")).sort();
const EXPECTED = [
  "intro.8mandos", "mandos-check.8", "mandos-client.8mandos", "mandos-clients.conf.5", "mandos-ctl.8", "mandos-generator.8",
  "mandos-keygen.8", "mandos.8", "mandos.conf.5", "password-agent.8mandos",
];

test("mandoc -Tlint -W warning finds nothing in our man pages", { skip: requires({ commands: ["mandoc"] }) }, async () => {
  assert.deepEqual(PAGES, EXPECTED, "a page for every program and file");
  for (const page of PAGES) {
    const r = await run("mandoc", ["-Tlint", "-W", "warning", join(ROOT, "man", page)]);
    assert.equal(r.stdout.toString() + r.stderr, "", page);
    assert.equal(r.code, 0, page);
  }
});

test("the generator's page documents every kernel option and variable the generator reads", () => {
  const page = readFileSync(join(ROOT, "man", "mandos-generator.8"), "utf8").replaceAll("\\-", "-");
  const generator = readFileSync(join(ROOT, "generators", "mandos-generator"), "utf8");
  for (const item of ["off", "connect", "interface:", "debug"]) {
    assert.ok(generator.includes(`${item}`), item);
    assert.ok(page.includes(`mandos=${item}`), `mandos=${item} undocumented`);
  }
  for (const variable of ["SYSTEMD_IN_INITRD", "SYSTEMD_PROC_CMDLINE", "MANDOS_GENERATOR_HOOK_DIR",
    "MANDOSNETHOOKDIR", "DEVICE", "MODE", "VERBOSITY", "DELAY", "CONNECT", "MANDOS_CMDLINE_OPTIONS"]) {
    assert.ok(generator.includes(variable), `${variable} not in the generator`);
    assert.ok(page.includes(variable), `${variable} undocumented`);
  }
});
