// The reference peers the interop tests run are Debian's own files at
// Debian's paths (test/helpers/debian-peer.ts), and a peer that is not
// (our install, or anything else, put another file there) fails the tests
// that use it rather than letting them skip or run against the wrong program.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { BIN, ROOT, requires, run, tempDir } from "../helpers/index.js";
import { DEBIAN_CLIENT, DEBIAN_CTL, DEBIAN_PEERS, debianPeerMissing } from "../helpers/debian-peer.js";

const HELPER = pathToFileURL(join(ROOT, "dist/test/helpers/debian-peer.js")).href;

test("every pinned peer is its Debian package's file, under Debian's multiarch directory", () => {
  const arch = spawnSync("dpkg-architecture", ["-qDEB_HOST_MULTIARCH"], { encoding: "utf8" }).stdout.trim();
  assert.match(arch, /^[a-z0-9_]+-linux-[a-z0-9]+$/);
  assert.equal(DEBIAN_CLIENT, `/usr/lib/${arch}/mandos/plugins.d/mandos-client`);
  assert.equal(debianPeerMissing(...DEBIAN_PEERS), false);
});

test(
  "a peer replaced by another program makes the test that needs it fail, not skip",
  { skip: requires({ root: true, commands: ["unshare", "mount"] }) || debianPeerMissing(DEBIAN_CTL), timeout: 30_000 },
  async () => {
    using dir = tempDir();
    // Our mandos-ctl over Debian's, seen only inside a mount namespace of this test.
    const impostor = join(dir.path, "mandos-ctl");
    copyFileSync(join(BIN, "mandos-ctl"), impostor);
    const testFile = join(dir.path, "needs-debian-ctl.test.mjs");
    writeFileSync(
      testFile,
      `import { test } from "node:test";
import { DEBIAN_CTL, debianPeerMissing } from ${JSON.stringify(HELPER)};
test("uses Debian's mandos-ctl", { skip: debianPeerMissing(DEBIAN_CTL) }, () => {});
`,
    );
    const r = await run(
      "unshare",
      ["--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$1" "$2" && exec "$3" --test "$4"', "sh", impostor, DEBIAN_CTL, process.execPath, testFile],
      // A test runner of its own, reporting in TAP, not to this one.
      { timeoutMs: 20_000, env: { ...process.env, NODE_TEST_CONTEXT: undefined } },
    );
    const report = r.stdout.toString();
    assert.equal(r.code, 1, report);
    assert.match(report, /^# fail 1$/m);
    assert.match(report, /^# skipped 0$/m);
    assert.match(report, /\/usr\/sbin\/mandos-ctl is not Debian's mandos file \(its content differs from the package's md5sums\): has our own install replaced it\?/);
    assert.equal(debianPeerMissing(DEBIAN_CTL), false, "outside that namespace Debian's file is still there");
  },
);
