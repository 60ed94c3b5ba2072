// Debian's C mandos-client (1.8.16) fetching its password from our TLS
// module in the server role (the Mandos server is the TLS client).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startListener, type SecretRequest } from "../../src/server/listener.js";
import { keyIdFromPem } from "../../src/tls/keyid.js";
import { makeLogger } from "../../src/cli/log.js";
import { requires, tempDir } from "../helpers/index.js";
import { gpgEncrypt } from "../helpers/gpg.js";
import { DEBIAN_CLIENT, DEBIAN_KEYGEN, debianPeerMissing, makeDebianKeys, runDebianClient } from "../helpers/debian-peer.js";

test(
  "Debian's mandos-client gets its password from our listener",
  { skip: requires({ commands: ["gpg"] }) || debianPeerMissing(DEBIAN_KEYGEN, DEBIAN_CLIENT), timeout: 60_000 },
  async () => {
    using dir = tempDir();
    const keys = join(dir.path, "keys");
    mkdirSync(keys);
    await makeDebianKeys(keys);
    const secret = gpgEncrypt(join(keys, "pubkey.txt"), "correct horse battery staple");
    const keyId = keyIdFromPem(readFileSync(join(keys, "tls-pubkey.pem")));
    const requests: SecretRequest[] = [];
    let sent = 0;
    const lines: string[] = [];
    const listener = await startListener({
      address: "::1",
      useIpv6: true,
      log: makeLogger("test", { level: "debug", write: (l) => lines.push(l) }),
      handler: {
        async requestSecret(req) {
          requests.push(req);
          return req.keyId === keyId ? { secret: Buffer.from(secret), sent: () => sent++ } : null;
        },
      },
    });
    try {
      const r = await runDebianClient(keys, listener.port, { timeoutMs: 20_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), "correct horse battery staple");
      assert.equal(requests.length, 1);
      assert.equal(requests[0]!.keyId, keyId);
      assert.equal(requests[0]!.address, "::1");
      assert.equal(sent, 1);
      assert.ok(!lines.join("").includes("correct horse"), "the password is never logged");
    } finally {
      await listener.close();
    }
  },
);
