// Time from process start to the password on stdout: our mandos-client
// three ways (the module tree in dist/src; the boot bundle alone, as node
// runs any CommonJS file; the bundle with its build-time code cache, as
// bin/mandos-client and the initramfs run it), Debian's C mandos-client,
// and `node -e 0`, interleaved in one run. Same server (our listener, in
// this process, so the server's cost is small and equal for all) and the
// same keys, with our default keys and with Debian's RSA-4096 keys.
// With our keys also a password split 2-of-3 (three listeners, each with a
// share; all three up), as a ratio against the single secret.
// Run: npm run bench:client
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { clientArgs, serveSecrets } from "../scripts/secret-server.js";
import { fmt, median, timeRun } from "./common.js";
import { splitPassword } from "../src/shares/index.js";
import { DEBIAN_CLIENT, DEBIAN_KEYGEN, debianPeer, debianPeerMissing } from "../test/helpers/debian-peer.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const RUNS = Number(process.env.RUNS ?? 11);
const PASSWORD = "benchmark password";
/** Issue 12: our client (bundle and cache) with ECC keys, as a multiple of `node -e 0`. */
const NODE_RATIO_TARGET = 2.5;
/** Issue 8: a 2-of-3 split against the single secret, same client (bundle and cache). */
const KOFN_RATIO_TARGET = 1.3;
const KOFN_WAY = "2 of 3 (bundle + cache)";

/** How each way is started: the command line before the client's arguments (none for node's own start). */
const WAYS: Record<string, { command: string[]; client: boolean }> = {
  "node -e 0": { command: [process.execPath, "-e", "0"], client: false },
  "module tree": { command: [process.execPath, join(ROOT, "dist", "src", "client", "main.js")], client: true },
  "bundle alone": { command: [process.execPath, join(ROOT, "dist", "boot", "mandos-client.cjs")], client: true },
  "bundle + code cache": { command: [join(ROOT, "bin", "mandos-client")], client: true },
  "Debian's C client": { command: [DEBIAN_CLIENT], client: true },
};

const missing = debianPeerMissing(DEBIAN_CLIENT, DEBIAN_KEYGEN);
if (missing) {
  console.error(`bench: ${missing}`);
  process.exit(2);
}
debianPeer(DEBIAN_CLIENT); // the package's own file, not one of ours put in its place
const work = mkdtempSync(join(tmpdir(), "bench-client-"));
try {
  const sets = [
    { name: "our default keys (ECC)", dir: join(work, "ours"), keygen: join(ROOT, "bin", "mandos-keygen"), target: 1.0 },
    { name: "Debian's RSA-4096 keys", dir: join(work, "debian"), keygen: debianPeer(DEBIAN_KEYGEN), target: 1.5 },
  ];
  for (const s of sets) {
    mkdirSync(s.dir);
    execFileSync(s.keygen, ["--dir", s.dir, "--force"], { stdio: "ignore" });
  }
  const listener = await serveSecrets(
    sets.map((s) => s.dir),
    PASSWORD,
    "::1",
  );
  // Three more listeners, each holding one share of a 2-of-3 split for our keys.
  const shares = await splitPassword(Buffer.from(PASSWORD), 2, 3);
  const shareListeners = await Promise.all(shares.map((share) => serveSecrets([sets[0]!.dir], share, "::1")));
  try {
    for (const s of sets) {
      const args = clientArgs(s.dir, `::1:${listener.port}`);
      const kofnArgs = [...clientArgs(s.dir, `::1:${shareListeners[0]!.port}`), ...shareListeners.slice(1).flatMap((l) => ["--connect", `::1:${l.port}`])];
      const time = (way: string) => {
        if (way === KOFN_WAY) return timeRun(join(ROOT, "bin", "mandos-client"), kofnArgs, PASSWORD);
        const { command, client } = WAYS[way]!;
        return client ? timeRun(command[0]!, [...command.slice(1), ...args], PASSWORD) : timeRun(command[0]!, command.slice(1));
      };
      const ways = [...Object.keys(WAYS), ...(s === sets[0] ? [KOFN_WAY] : [])];
      for (const way of ways) await time(way); // warm the page cache
      const runs = Object.fromEntries(ways.map((way) => [way, [] as number[]]));
      for (let i = 0; i < RUNS; i++) for (const way of ways) runs[way]!.push(await time(way));
      const node = median(runs["node -e 0"]!);
      const debian = median(runs["Debian's C client"]!);
      console.log(`${s.name}, median of ${RUNS}, interleaved:`);
      for (const way of ways) {
        const ms = median(runs[way]!);
        console.log(`  ${way.padEnd(20)} ${fmt(ms).padStart(9)}  ${(ms / node).toFixed(2)}x node -e 0  ${(ms / debian).toFixed(2)}x Debian's`);
      }
      const ours = median(runs["bundle + code cache"]!);
      const vsTree = ours / median(runs["module tree"]!);
      console.log(`  bundle + code cache vs module tree: ${vsTree.toFixed(2)}x`);
      const vsDebian = ours / debian;
      console.log(`  ours vs Debian's: ${vsDebian.toFixed(2)} (target <= ${s.target.toFixed(1)}: ${vsDebian <= s.target ? "met" : "NOT met"})`);
      if (s === sets[0]) {
        const vsNode = ours / node;
        console.log(`  ours vs node -e 0: ${vsNode.toFixed(2)} (target <= ${NODE_RATIO_TARGET}: ${vsNode <= NODE_RATIO_TARGET ? "met" : "NOT met"})`);
        const vsSingle = median(runs[KOFN_WAY]!) / ours;
        console.log(`  2 of 3 vs one secret: ${vsSingle.toFixed(2)} (target <= ${KOFN_RATIO_TARGET}: ${vsSingle <= KOFN_RATIO_TARGET ? "met" : "NOT met"})`);
      }
    }
  } finally {
    await listener.close();
    for (const l of shareListeners) await l.close();
    for (const share of shares) share.fill(0);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
