// Benchmark (not a CI test): the same LUKS-root VM under qemu TCG booted with
// Debian's dracut module 90mandos (package mandos-client: C agent and client)
// and with ours (90mandos-ts), interleaved (Debian's, ours, Debian's, ours…:
// single TCG boots vary 2× on a loaded machine), RUNS of each (default 3).
// Both images come from the same dracut copy, kernel, drivers and rig module
// and hold the same client keys, made by Debian's mandos-keygen; each boot
// gets a fresh copy of the disk, a fresh network namespace and a fresh
// server (ours, Zeroconf on the tap, the same clients.conf section).
//
// Reported (guest clock, medians): question → LUKS unlocked (the rig's
// question marker, the same event in both images, to systemd-cryptsetup
// finishing), kernel start → root mounted; and each image's growth over the
// same build without a Mandos module, gzip -9 and zstd -19; the targets of
// issue 12, met or not. Needs root, the Debian packages of the boot test.
//
// Run: npm run bench:boot          (RUNS=5 npm run bench:boot for more;
//      SIZES_ONLY=1 npm run bench:boot builds and measures the images only)
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import {
  BOOT_PACKAGES,
  bootGuest,
  bootKernel,
  buildInitramfs,
  cleanupBootRig,
  clientsConf,
  comparisonBuilds,
  createTapNamespace,
  debianKeygen,
  guestCommandLine,
  imageSize,
  installMissingPackages,
  makeLuksRoot,
  startBootServer,
  workDir,
  ROOT_MARKER,
  type Initramfs,
  type LuksRoot,
} from "../test/helpers/boot.js";
import { bootFigures, reportTable, type BenchResult, type BootFigures } from "./boot-report.js";

const RUNS = Math.max(1, Math.floor(Number(process.env.RUNS ?? 3)) || 3);
/** SIZES_ONLY=1: the images' growth only, no boot. */
const SIZES_ONLY = process.env.SIZES_ONLY === "1";
const PASSPHRASE = "bench:boot passphrase, not a real secret";
const CLIENT = "vm";
/** One boot, start of qemu to its exit after the root's init powers off. */
const BOOT_MS = 240_000;

const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");

/** One boot of `image` with a fresh namespace, server and disk copy; its figures, or an error. */
async function bootOnce(opts: {
  label: string;
  initramfs: Initramfs;
  root: LuksRoot;
  work: string;
  /** Consoles and server logs go here (kept if a boot fails). */
  logs: string;
  section: string;
  run: number;
}): Promise<BootFigures> {
  const name = `${opts.label}-${opts.run}`;
  const ns = createTapNamespace();
  const disk = join(opts.work, `${name}.img`);
  copyFileSync(opts.root.image, disk);
  const server = await startBootServer({
    ns,
    dir: join(opts.work, `server-${name}`),
    serviceName: "Mandos",
    clientsConf: clientsConf([opts.section]),
    logFile: join(opts.logs, `server-${name}.log`),
  });
  // No mandos=debug: Debian's module has no such switch under systemd.
  const guest = bootGuest({
    ns,
    initramfs: opts.initramfs,
    disk,
    commandLine: guestCommandLine(opts.root, [], { mandosDebug: false }),
    consoleLog: join(opts.logs, `console-${name}.log`),
  });
  try {
    await guest.waitFor(new RegExp(ROOT_MARKER), `${name}: the root's init`, BOOT_MS);
    await Promise.race([guest.exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (!/Sending secret to /.test(server.process.output())) throw new Error(`${name}: our server sent no secret`);
    return bootFigures(guest.output());
  } finally {
    await guest.stop(10_000);
    await server.stop();
    ns.destroy();
    rmSync(disk, { force: true });
  }
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error("bench:boot: needs root (network namespaces, dracut, a private mount for the keys)");
    return 2;
  }
  // zstd: for the sizes with dracut's compress="zstd -19 -q -T0".
  const missing = installMissingPackages([...BOOT_PACKAGES, "zstd"]);
  if (missing.length > 0) {
    console.error(`bench:boot: needs Debian packages ${missing.join(" ")}`);
    return 2;
  }
  const kernel = bootKernel();
  if (!kernel) {
    console.error("bench:boot: needs a kernel image in /boot with its modules (apt-get install linux-image-amd64)");
    return 2;
  }
  const keygen = debianKeygen();
  const work = workDir("mandos-bench-boot-");
  const logs = mkdtempSync(join(tmpdir(), "mandos-bench-boot-logs-"));
  const runs = SIZES_ONLY ? 0 : RUNS;
  console.log(`# bench:boot: kernel ${kernel.kver}; ${runs} boot(s) of each image, interleaved; load average ${load()}`);

  const ours = await buildInitramfs(work, kernel, PASSPHRASE, keygen);
  const { none, debian: debianBuild } = await comparisonBuilds(ours);
  const debian: Initramfs = { ...ours, image: debianBuild.image, build: debianBuild };
  const root = runs > 0 ? await makeLuksRoot(work, PASSPHRASE) : null;
  const section = ours.keys.section(CLIENT);
  console.log(`# images built (keys from ${keygen.join(" ")}): ours, Debian's, and one without a Mandos module`);

  const result: BenchResult = { runs: { ours: [], debian: [] }, growth: null };
  let failures = 0;
  for (let run = 1; root && run <= runs; run++) {
    for (const [label, initramfs, into] of [
      ["debian", debian, result.runs.debian],
      ["ours", ours, result.runs.ours],
    ] as const) {
      try {
        const f = await bootOnce({ label, initramfs, root, work, logs, section, run });
        into.push(f);
        const s = (x: number | null) => (x === null ? "—" : `${x.toFixed(2)} s`);
        console.log(
          `#   run ${run} ${label.padEnd(6)}: question → unlocked ${s(f.questionToUnlocked)} (opening ${s(f.openingToUnlocked)}), ` +
            `kernel → root ${s(f.kernelToRoot)}, agent CPU ${s(f.agentCpu)} (load ${load()})`,
        );
      } catch (err) {
        failures++;
        console.log(`#   run ${run} ${label.padEnd(6)}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  console.log("# compressing the images (gzip -9, zstd -19 -T0)…");
  const [base, oursSize, debianSize] = [await imageSize(none.image), await imageSize(ours.image), await imageSize(debian.image)];
  const growth = (x: typeof base) => ({ gzip: x.gzip - base.gzip, zstd: x.zstd! - base.zstd! });
  result.growth = { ours: growth(oursSize), debian: growth(debianSize) };
  console.log(
    `# without a Mandos module: ${(base.uncompressed / 1e6).toFixed(1)} MB, gzip -9 ${(base.gzip / 1e6).toFixed(1)} MB, ` +
      `zstd -19 ${(base.zstd! / 1e6).toFixed(1)} MB (MB = 10^6 bytes)`,
  );
  console.log(`\n${reportTable(result)}\n`);
  console.log(`# ${result.runs.ours.length} + ${result.runs.debian.length} boots measured, ${failures} failed; load average ${load()}`);
  if (failures > 0) {
    console.log(`# consoles and server logs kept in ${logs}`);
    return 1;
  }
  rmSync(logs, { recursive: true, force: true });
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`bench:boot: ${err instanceof Error ? err.message : String(err)}`);
} finally {
  cleanupBootRig();
}
process.exit(code);
