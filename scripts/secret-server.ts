// A Mandos server on loopback that knows a fixed set of clients: our own
// listener, handing each client key directory's owner its secret. For a
// real fetch where no configured server is wanted: the build, which runs
// the client once to make its code cache (scripts/bundle.ts), and
// bench:client.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { makeLogger } from "../src/cli/log.js";
import { encryptSecret } from "../src/pgp/index.js";
import { startListener, type Listener } from "../src/server/listener.js";
import { keyIdFromPem } from "../src/tls/keyid.js";

/** Serve `password` (or a share of one), encrypted to each key directory's OpenPGP key, to that directory's TLS key. */
export async function serveSecrets(keyDirs: string[], password: string | Uint8Array, address: string): Promise<Listener> {
  const secrets = new Map<string, Buffer>();
  for (const dir of keyDirs) {
    const id = keyIdFromPem(readFileSync(join(dir, "tls-pubkey.pem")));
    secrets.set(id, await encryptSecret(Buffer.from(password), readFileSync(join(dir, "pubkey.txt"), "utf8")));
  }
  return startListener({
    address,
    useIpv6: address.includes(":"),
    log: makeLogger("secret-server", { level: "error" }),
    handler: {
      async requestSecret(req) {
        const secret = secrets.get(req.keyId);
        return secret ? { secret: Buffer.from(secret), sent() {} } : null;
      },
    },
  });
}

/** The client's arguments for a key directory made by mandos-keygen and a server at `connect`. */
export function clientArgs(keyDir: string, connect: string): string[] {
  return [
    "--connect", connect, "--interface", "none",
    "--pubkey", join(keyDir, "pubkey.txt"), "--seckey", join(keyDir, "seckey.txt"),
    "--tls-pubkey", join(keyDir, "tls-pubkey.pem"), "--tls-privkey", join(keyDir, "tls-privkey.pem"),
  ];
}
