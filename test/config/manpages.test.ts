// The two configuration man pages' examples are files our code reads the
// way the pages say (every page is linted in test/integration/man.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../helpers/index.js";
import { parseClientsConf } from "../../src/config/clients.js";
import { parseServerConf } from "../../src/config/server.js";

const SERVER_PAGE = join(ROOT, "man", "mandos.conf.5");
const CLIENTS_PAGE = join(ROOT, "man", "mandos-clients.conf.5");

/** The text of the .EX/.EE blocks in the EXAMPLES section, roff escapes undone. */
function examples(page: string): string[] {
  const source = readFileSync(page, "utf8");
  const section = /^\.SH EXAMPLES\n([\s\S]*?)^\.SH /m.exec(source)?.[1] ?? "";
  return [...section.matchAll(/^\.EX\n([\s\S]*?)^\.EE$/gm)].map((m) =>
    m[1]!.replaceAll("\\-", "-").replaceAll("\\&", "").replaceAll("\\e", "\\"),
  );
}

test("mandos.conf(5)'s example reads as described", () => {
  const [example] = examples(SERVER_PAGE);
  assert.ok(example);
  const config = parseServerConf(example, "example");
  assert.equal(config.interface, "enp1s0");
  assert.equal(config.port, 1025);
  assert.equal(config.zeroconf, false);
  assert.equal(config.useDbus, false);
});

test("mandos-clients.conf(5)'s example reads as described", () => {
  const [example] = examples(CLIENTS_PAGE);
  assert.ok(example);
  const read: string[] = [];
  const { clients, errors } = parseClientsConf(example, "example", {
    readFile: (p) => {
      read.push(p);
      return Buffer.from("bar's secret");
    },
  });
  assert.deepEqual(errors, []);
  assert.deepEqual(read, ["/etc/keys/mandos/bar.secret"]);
  const [foo, bar] = clients;
  assert.equal(foo!.name, "foo");
  assert.equal(foo!.secret.length, 129);
  assert.equal(foo!.intervalMs, 60_000);
  assert.equal(foo!.timeoutMs, 300_000);
  assert.equal(foo!.checker, "fping -q -- %(host)s");
  assert.equal(bar!.keyId, "CF88691F14D276178A8C13A188840F13C5848BE2D92004C84A7F4A2EF26102DE");
  assert.equal(bar!.timeoutMs, 900_000);
  assert.equal(bar!.approvedByDefault, false);
  assert.equal(bar!.approvalDelayMs, 30_000);
  // Its example diagnostic matches what a missing secfile really gives.
  const missing = parseClientsConf(example, "/etc/mandos/clients.conf", { readFile: () => { throw Object.assign(new Error("x"), { code: "ENOENT" }); } });
  assert.match(missing.errors[0]!, /^\/etc\/mandos\/clients\.conf:\d+: \[bar\] secfile: cannot read "\/etc\/keys\/mandos\/bar\.secret": no such file or directory$/);
});
