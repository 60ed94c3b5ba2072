// Our mandos-client against Debian's mandos 1.8.16 server, with keys from
// our keygen and from Debian's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/index.js";
import { debianInteropMissing, startDebianServer } from "../helpers/debian-peer.js";
import { makeKeys, passwordSection, runOurClient } from "../helpers/client.js";

for (const by of ["ours", "debian"] as const) {
  test(`our client unlocks from Debian's server with ${by} keys`, { skip: debianInteropMissing(), timeout: 90_000 }, async () => {
    using dir = tempDir();
    const keys = makeKeys(join(dir.path, "keys"), by);
    const password = `pässword with spaces and a newline\nin it (${by})`;
    const passfile = join(dir.path, "pw");
    writeFileSync(passfile, password, { mode: 0o600 });
    const server = await startDebianServer({ clientsConf: passwordSection(keys, by, "client1", passfile) });
    try {
      const r = await runOurClient(keys, "::1", server.port, ["--debug"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), password, "exactly the password, no trailing newline");
      assert.ok(!r.stderr.includes("pässword"), "the password never reaches the log");
      assert.match(server.log(), /Sending secret to client1/);
    } finally {
      await server.stop();
    }
  });
}
