// The client's OpenPGP step: decryptSecret on a Mandos secret with our
// default keys (Ed25519/Curve25519) and with RSA-4096 keys (Debian's
// mandos-keygen default), each against gpg decrypting the same message in
// the same run. gpg's figure is a whole gpg run (its agent already up) less
// `gpg --version`, the start-up every run pays. Run: npm run bench:pgp
import { decryptSecret, encryptSecret, generateKeys, loadDecryptionKeys, preload, resolveKeySpecs } from "../src/pgp/index.js";
import { makeGnupg } from "../test/helpers/pgp.js";
import { fmt, median } from "./common.js";

const RUNS = Number(process.env.RUNS ?? 11);

async function ms(step: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await step();
  return performance.now() - started;
}

async function main(): Promise<void> {
  await preload();
  await using gnupg = makeGnupg();
  const startups: number[] = [];
  for (let i = 0; i < RUNS; i++) startups.push(await ms(() => gnupg.gpg(["--version"])));
  const startup = median(startups);
  console.log(`gpg start-up (gpg --version, reference): ${fmt(startup)}`);
  const ours = new Map<string, number>();
  for (const [label, spec] of [["Ed25519/Curve25519", {}], ["RSA-4096", { type: "RSA" }]] as const) {
    const key = await generateKeys({ name: label, specs: resolveKeySpecs(spec) });
    const keys = await loadDecryptionKeys(key.publicKeyArmored, key.privateKeyArmored);
    const message = await encryptSecret(Buffer.from("benchmark password"), key.publicKeyArmored);
    await gnupg.gpg(["--import"], { input: key.privateKeyArmored });
    // Warm both: openpgp.js's code paths, gpg's agent and its key cache.
    (await decryptSecret(message, keys)).fill(0);
    await gnupg.gpg(["--decrypt"], { input: message });
    const mine: number[] = [];
    const theirs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      mine.push(await ms(async () => (await decryptSecret(message, keys)).fill(0)));
      theirs.push(await ms(() => gnupg.gpg(["--decrypt"], { input: message })));
    }
    const o = median(mine);
    const g = median(theirs) - startup;
    ours.set(label, o);
    console.log(`${label}: decryptSecret ${fmt(o)}, gpg ${fmt(g)} past its start-up, ratio ${(o / g).toFixed(2)} (median of ${RUNS})`);
  }
  const ratio = ours.get("RSA-4096")! / ours.get("Ed25519/Curve25519")!;
  console.log(`decryptSecret, RSA-4096 over Ed25519/Curve25519: ${ratio.toFixed(1)}×`);
}

await main();
