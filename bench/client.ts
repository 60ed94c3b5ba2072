// Time from process start to the password on stdout: our mandos-client vs
// Debian's C mandos-client, same server (our listener, in this process, so
// the server's cost is small and equal for both) and the same keys, with
// our default keys and with Debian's RSA-4096 keys. Run: npm run bench:client
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startListener } from "../src/server/listener.js";
import { encryptSecret } from "../src/pgp/index.js";
import { keyIdFromPem } from "../src/tls/keyid.js";
import { makeLogger } from "../src/cli/log.js";
import { fmt, median, timeRun } from "./common.js";
import { DEBIAN_CLIENT, DEBIAN_KEYGEN, debianPeer, debianPeerMissing } from "../test/helpers/debian-peer.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const OURS = join(ROOT, "bin", "mandos-client");
const RUNS = Number(process.env.RUNS ?? 11);
const PASSWORD = "benchmark password";

const missing = debianPeerMissing(DEBIAN_CLIENT, DEBIAN_KEYGEN);
if (missing) {
  console.error(`bench: ${missing}`);
  process.exit(2);
}
const DEBIAN = debianPeer(DEBIAN_CLIENT);
const work = mkdtempSync(join(tmpdir(), "bench-client-"));
try {
  const sets = [
    { name: "our default keys", dir: join(work, "ours"), keygen: join(ROOT, "bin", "mandos-keygen"), target: 1.0 },
    { name: "Debian's RSA-4096 keys", dir: join(work, "debian"), keygen: debianPeer(DEBIAN_KEYGEN), target: 1.5 },
  ];
  const secrets = new Map<string, Buffer>();
  for (const s of sets) {
    mkdirSync(s.dir);
    execFileSync(s.keygen, ["--dir", s.dir, "--force"], { stdio: "ignore" });
    const id = keyIdFromPem(readFileSync(join(s.dir, "tls-pubkey.pem")));
    secrets.set(id, await encryptSecret(Buffer.from(PASSWORD), readFileSync(join(s.dir, "pubkey.txt"), "utf8")));
  }
  const listener = await startListener({
    address: "::1",
    useIpv6: true,
    log: makeLogger("bench-server", { level: "error" }),
    handler: {
      async requestSecret(req) {
        const secret = secrets.get(req.keyId);
        return secret ? { secret: Buffer.from(secret), sent() {} } : null;
      },
    },
  });
  try {
    const startNode: number[] = [];
    for (let i = 0; i < 5; i++) startNode.push(await timeRun(process.execPath, ["-e", "0"]));
    console.log(`node start-up (reference): ${fmt(median(startNode))}`);
    for (const s of sets) {
      const args = [
        "--connect", `::1:${listener.port}`, "--interface", "none",
        "--pubkey", join(s.dir, "pubkey.txt"), "--seckey", join(s.dir, "seckey.txt"),
        "--tls-pubkey", join(s.dir, "tls-pubkey.pem"), "--tls-privkey", join(s.dir, "tls-privkey.pem"),
      ];
      const ours: number[] = [];
      const theirs: number[] = [];
      await timeRun(OURS, args, PASSWORD); // warm the page cache for both
      await timeRun(DEBIAN, args, PASSWORD);
      for (let i = 0; i < RUNS; i++) {
        ours.push(await timeRun(OURS, args, PASSWORD));
        theirs.push(await timeRun(DEBIAN, args, PASSWORD));
      }
      const ratio = median(ours) / median(theirs);
      console.log(
        `${s.name}: ours ${fmt(median(ours))}, Debian's ${fmt(median(theirs))}, ratio ${ratio.toFixed(2)} ` +
          `(target <= ${s.target.toFixed(1)}: ${ratio <= s.target ? "met" : "NOT met"}; median of ${RUNS})`,
      );
    }
  } finally {
    await listener.close();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
