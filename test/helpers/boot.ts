// Rig for the boot test (test/boot/): a real LUKS-root virtual machine
// that must unlock unattended through our dracut module and our server.
//
//   - the Debian packages the rig needs, installed with apt-get if missing;
//   - one host-only initramfs built with dracut (systemd, our 90mandos-ts
//     from a staged `install-system`, client keys from our mandos-keygen,
//     virtio drivers, and the test-only observer module in
//     scripts/boot-rig/), without writing to /usr or to the host's keys;
//   - a LUKS2 root disk image made without loop devices or device-mapper,
//     whose /sbin/init prints a marker and powers the machine off;
//   - a network namespace holding a tap device, our server (Zeroconf on,
//     private D-Bus) and qemu (TCG) attached to the tap: the guest has no
//     network configuration and finds the server over IPv6 link-local;
//   - the guest's serial console, parsed into the boot's steps with the
//     guest kernel's timestamps.
// Every process, namespace and work directory is registered and removed
// by cleanupBootRig(), which also runs at process exit and on signals.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { BIN, ROOT, which } from "./index.js";
import { installStaged, run, type Staged } from "./integration.js";
import { serverWritableDir, sleep, startBus, type PrivateBus } from "./server.js";
import { RigCleanup, ip } from "./rig-cleanup.js";
import { DEBIAN_AGENT, DEBIAN_CLIENT, debianPeer } from "./debian-peer.js";

// ---- Packages -----------------------------------------------------------

/** What the rig runs, by Debian package (mandos-client: Debian's 90mandos, for the size comparison). */
export const BOOT_PACKAGES = [
  "qemu-system-x86",
  "linux-image-amd64",
  "dracut-core",
  "cryptsetup-bin",
  "e2fsprogs",
  "iproute2",
  "dbus",
  "kmod",
  "cpio",
  "systemd",
  "mandos-client",
  "zstd",
  "binutils",
] as const;

function packageInstalled(name: string): boolean {
  const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", name], { encoding: "utf8", timeout: 30_000 });
  return r.status === 0 && r.stdout.includes("ok installed");
}

/**
 * Installs the packages that are missing (root only; apt-get, no
 * recommends: the "dracut" metapackage would remove initramfs-tools).
 * Returns what is still missing afterwards.
 */
export function installMissingPackages(packages: readonly string[] = BOOT_PACKAGES): string[] {
  const missing = packages.filter((p) => !packageInstalled(p));
  if (missing.length === 0 || process.getuid?.() !== 0 || !which("apt-get")) return missing;
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const opts = { env, encoding: "utf8" as const, timeout: 900_000 };
  let r = spawnSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing], opts);
  if (r.status !== 0) {
    // Package lists may be missing or stale on a fresh machine.
    spawnSync("apt-get", ["update", "-q"], opts);
    r = spawnSync("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing], opts);
  }
  if (r.status !== 0) process.stderr.write(`boot rig: apt-get install ${missing.join(" ")} failed:\n${r.stderr}\n`);
  return packages.filter((p) => !packageInstalled(p));
}

export interface BootKernel {
  kver: string;
  vmlinuz: string;
}

/** A kernel qemu can boot and dracut can build for (image in /boot, modules in /lib/modules), newest first. */
export function bootKernel(): BootKernel | null {
  if (!existsSync("/lib/modules")) return null;
  const kvers = readdirSync("/lib/modules")
    .filter((k) => existsSync(join("/lib/modules", k, "modules.dep")) && existsSync(`/boot/vmlinuz-${k}`))
    .sort()
    .reverse();
  const kver = kvers[0];
  return kver ? { kver, vmlinuz: `/boot/vmlinuz-${kver}` } : null;
}

export const QEMU = "qemu-system-x86_64";
const DRACUT_BASE = "/usr/lib/dracut";
const RIG_MODULE = join(ROOT, "scripts", "boot-rig", "99mandos-boot-rig");
/** Mount points the build hides behind tmpfs (the mandos-client package makes them). */
const HOST_KEYS = "/etc/keys/mandos";
const HOST_HOOKS = "/etc/mandos/network-hooks.d";

// ---- Cleanup registry ----------------------------------------------------

const live = new RigCleanup("mbr");

function track(child: ChildProcess): ChildProcess {
  live.hookExit();
  live.processes.add(child);
  child.once("exit", () => live.processes.delete(child));
  return child;
}

/** A work directory removed at cleanup. */
export function workDir(prefix: string): string {
  live.hookExit();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  live.dirs.add(dir);
  // The servers drop root: they must reach their bus and state below it.
  // What is secret in it (client keys, images holding them) is 0700/0600.
  chmodSync(dir, 0o755);
  return dir;
}

/** Kill what the rig started, delete its namespaces and work directories (synchronous, idempotent). */
export function cleanupBootRig(): void {
  live.cleanup();
}

// ---- Images ---------------------------------------------------------------

export interface ClientKeys {
  dir: string;
  /** The clients.conf section our keygen printed, renamed to `name`. */
  section(name: string): string;
}

/** A mandos-keygen: ours (the default) or Debian's, as a command. */
export type Keygen = readonly [string, ...string[]];
export const OUR_KEYGEN: Keygen = [process.execPath, join(BIN, "mandos-keygen")];
/** Debian's, from the mandos-client package (pinned by path; see debianKeygen()). */
export const DEBIAN_KEYGEN_PATH = "/usr/sbin/mandos-keygen";

/**
 * Debian's mandos-keygen, after checking that dpkg says the mandos-client
 * package installed it (not a copy of ours earlier in PATH or under
 * /usr/local); an error names what is wrong.
 */
export function debianKeygen(): Keygen {
  const r = spawnSync("dpkg", ["-S", DEBIAN_KEYGEN_PATH], { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0 || !/^mandos-client(:[a-z0-9]+)?: /m.test(r.stdout)) {
    throw new Error(`${DEBIAN_KEYGEN_PATH} does not belong to Debian's mandos-client package (dpkg -S: ${(r.stdout + r.stderr).trim() || r.status})`);
  }
  return [DEBIAN_KEYGEN_PATH];
}

/** Client keys and a clients.conf section for `passphrase`, made by `keygen` (ours unless given). */
export async function makeClientKeys(dir: string, passphrase: string, keygen: Keygen = OUR_KEYGEN): Promise<ClientKeys> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const [cmd, ...pre] = keygen;
  const gen = await run(cmd, [...pre, "--dir", dir, "--force"], { timeoutMs: 180_000 });
  if (gen.code !== 0) throw new Error(`${keygen.at(-1)} --dir failed (${gen.code ?? gen.signal}): ${gen.stderr.trim()}`);
  const passfile = join(dirname(dir), "passphrase");
  writeFileSync(passfile, passphrase, { mode: 0o600 });
  try {
    const sec = await run(cmd, [...pre, "--dir", dir, "--passfile", passfile, "--name", "KEYNAME", "--no-ssh"], {
      timeoutMs: 180_000,
    });
    if (sec.code !== 0) throw new Error(`${keygen.at(-1)} --passfile failed (${sec.code ?? sec.signal}): ${sec.stderr.trim()}`);
    const text = sec.stdout.toString();
    if (!/^\[KEYNAME\]$/m.test(text) || !/^secret =/m.test(text)) throw new Error(`${keygen.at(-1)} printed no clients.conf section`);
    return { dir, section: (name) => text.replace("[KEYNAME]", `[${name}]`) };
  } finally {
    rmSync(passfile, { force: true });
  }
}

export interface DracutBuild {
  image: string;
  seconds: number;
  log: string;
}

/**
 * One dracut build into `out` from a copy of dracut's files (`dracutBase`),
 * with `keysDir` shown as /etc/keys/mandos and an empty network hook
 * directory, both only inside a private mount namespace.
 */
export async function dracutBuild(opts: {
  dracutBase: string;
  staged: string;
  kver: string;
  keysDir: string;
  tmp: string;
  out: string;
  args: string[];
  /** Variables for this build's dracut modules, e.g. mandos_ts_early_net_drivers. */
  env?: Record<string, string>;
}): Promise<DracutBuild> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const started = Date.now();
  const hooks = existsSync(HOST_HOOKS) ? `mount -t tmpfs tmpfs ${HOST_HOOKS}` : ":";
  const r = await run(
    "unshare",
    ["--mount", "--propagation", "private", "sh", "-ec",
      `mount -t tmpfs -o mode=0700 tmpfs ${HOST_KEYS}
       cp -a ${quote(opts.keysDir)}/. ${HOST_KEYS}/
       ${hooks}
       exec dracut --force --no-compress --no-early-microcode --hostonly --no-hostonly-cmdline \
         --tmpdir ${quote(opts.tmp)} --kver ${quote(opts.kver)} ${opts.args.map(quote).join(" ")} ${quote(opts.out)}`],
    {
      env: { ...process.env, ...opts.env, mandos_ts_sysroot: opts.staged, dracutbasedir: opts.dracutBase },
      timeoutMs: 480_000,
    },
  );
  const log = `${r.stdout.toString()}${r.stderr}`;
  if (r.code !== 0 || !existsSync(opts.out)) {
    throw new Error(`dracut failed (${r.code ?? r.signal}):\n${log.split("\n").slice(-25).join("\n")}`);
  }
  return { image: opts.out, seconds: (Date.now() - started) / 1000, log };
}

/** Drivers the guest needs that a host-only build would not see on this host. */
export const GUEST_DRIVERS = ["virtio_pci", "virtio_blk", "virtio_net", "dm_crypt", "xts", "ext4"];
/**
 * The guest's NIC and its bus, which 90mandos-ts loads early. On a real
 * host it finds them itself (the host's own NIC); the image is for the
 * guest, not for this host, so the rig names them. Only our image gets
 * this: Debian's 90mandos has no such step, and its image gets nothing extra.
 */
export const GUEST_EARLY_NET_DRIVERS = "virtio_pci virtio_net";
/** Modules common to every build: only the Mandos module differs. */
function buildArgs(mandosModule: string | null): string[] {
  return [
    "--omit", mandosModule === "mandos" ? "plymouth mandos-ts" : "plymouth mandos",
    "--add", ["systemd", "crypt", mandosModule, "mandos-boot-rig"].filter(Boolean).join(" "),
    "--add-drivers", GUEST_DRIVERS.join(" "),
  ];
}

export interface Initramfs {
  kernel: BootKernel;
  image: string;
  build: DracutBuild;
  keys: ClientKeys;
  /** For the size comparison: the staged tree and dracut copy stay until cleanup. */
  context: { dracutBase: string; staged: string; keysDir: string; work: string };
}

/**
 * Our initramfs: staged install of the product, keys from `keygen` (ours
 * unless given), dracut with systemd, our module and the rig's observer module.
 */
export async function buildInitramfs(work: string, kernel: BootKernel, passphrase: string, keygen: Keygen = OUR_KEYGEN): Promise<Initramfs> {
  const staged: Staged = await installStaged();
  live.dirs.add(staged.path);
  const dracutBase = join(work, "dracut");
  cpSync(DRACUT_BASE, dracutBase, { recursive: true, verbatimSymlinks: true });
  cpSync(join(staged.path, "usr/lib/dracut/modules.d/90mandos-ts"), join(dracutBase, "modules.d/90mandos-ts"), { recursive: true });
  cpSync(RIG_MODULE, join(dracutBase, "modules.d/99mandos-boot-rig"), { recursive: true });
  const keys = await makeClientKeys(join(work, "keys", "mandos"), passphrase, keygen);
  const build = await dracutBuild({
    dracutBase,
    staged: staged.path,
    kver: kernel.kver,
    keysDir: keys.dir,
    tmp: work,
    out: join(work, "initrd-mandos-ts.img"),
    args: buildArgs("mandos-ts"),
    env: { mandos_ts_early_net_drivers: GUEST_EARLY_NET_DRIVERS },
  });
  if (!/Including module: mandos-ts/.test(build.log)) throw new Error("dracut did not include mandos-ts");
  return { kernel, image: build.image, build, keys, context: { dracutBase, staged: staged.path, keysDir: keys.dir, work } };
}

export interface ImageSize {
  uncompressed: number;
  /** gzip -n -9, dracut's default compressor on Debian 12 (no pigz). */
  gzip: number;
  /** zstd -19, as dracut.conf's compress="zstd -19 -q -T0" makes it. */
  zstd: number;
}

/** Bytes `command` writes for `image` on its standard output. */
function compressedSize(command: string, args: string[], image: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const child = track(spawn(command, [...args, image], { stdio: ["ignore", "pipe", "ignore"] }));
    let bytes = 0;
    child.stdout!.on("data", (d: Buffer) => (bytes += d.length));
    const timer = setTimeout(() => child.kill("SIGKILL"), 600_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(bytes);
      else reject(new Error(`${command} ${image} failed (${code})`));
    });
  });
}

/** Compressed and uncompressed size of an uncompressed initramfs. */
export async function imageSize(image: string): Promise<ImageSize> {
  return {
    uncompressed: statSync(image).size,
    gzip: await compressedSize("gzip", ["-n", "-9", "-c"], image),
    zstd: await compressedSize("zstd", ["-19", "-q", "-T0", "-c"], image),
  };
}

/** The same build without a Mandos module, and with Debian's 90mandos instead of ours. */
export async function comparisonBuilds(initramfs: Initramfs): Promise<{ none: DracutBuild; debian: DracutBuild }> {
  const { dracutBase, staged, keysDir, work } = initramfs.context;
  const common = { dracutBase, staged, kver: initramfs.kernel.kver, keysDir, tmp: work };
  const none = await dracutBuild({ ...common, out: join(work, "initrd-none.img"), args: buildArgs(null) });
  // What Debian's module puts in the image must be Debian's.
  debianPeer(DEBIAN_AGENT);
  debianPeer(DEBIAN_CLIENT);
  const debian = await dracutBuild({ ...common, out: join(work, "initrd-debian.img"), args: buildArgs("mandos") });
  if (!/Including module: mandos \*/.test(debian.log)) throw new Error("dracut did not include Debian's mandos module");
  return { none, debian };
}

export interface LuksRoot {
  kind: "luks";
  image: string;
  uuid: string;
}

/** A root file system that needs no password (same init), for a boot with no question. */
export interface PlainRoot {
  kind: "plain";
  image: string;
  uuid: string;
}

export type RootDisk = LuksRoot | PlainRoot;

/**
 * An ext4 file system of `fsSize` in a file of `fileSize`, made from a
 * directory holding dash and an /sbin/init that prints the marker
 * ROOT_MARKER with the uptime and powers off.
 */
async function makeRootFileSystem(work: string, name: string, fileSize: string, fsSize: string, uuid?: string): Promise<string> {
  const rootfs = join(work, `${name}-rootfs`);
  for (const d of ["sbin", "bin", "etc", "proc", "sys", "dev", "run"]) mkdirSync(join(rootfs, d), { recursive: true });
  // systemd switches only into a root with an os-release file.
  writeFileSync(join(rootfs, "etc/os-release"), 'NAME="Mandos boot test root"\nID=mandos-boot-rig\n');
  // The init is a dash script: dash and the libraries it links, from the host.
  copyFileSync("/bin/dash", join(rootfs, "bin/sh"));
  chmodSync(join(rootfs, "bin/sh"), 0o755);
  const ldd = await run("ldd", ["/bin/dash"]);
  for (const lib of ldd.stdout.toString().match(/\/\S+/g) ?? []) {
    mkdirSync(join(rootfs, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(rootfs, lib));
  }
  writeFileSync(
    join(rootfs, "sbin/init"),
    `#!/bin/sh
read -r up _ < /proc/uptime
# Through the kernel log, which writes whole lines: a write to /dev/console
# can be cut in two by the kernel's own "sysrq: Power Off" line.
echo "${ROOT_MARKER} at \${up} s" > /dev/kmsg
echo o > /proc/sysrq-trigger
`,
    { mode: 0o755 },
  );
  const image = join(work, `${name}.img`);
  writeFileSync(image, "");
  const trunc = await run("truncate", ["-s", fileSize, image]);
  if (trunc.code !== 0) throw new Error(`truncate failed: ${trunc.stderr}`);
  const mkfs = await run("mkfs.ext4", ["-q", "-F", ...(uuid ? ["-U", uuid] : []), "-d", rootfs, image, fsSize], { timeoutMs: 60_000 });
  if (mkfs.code !== 0) throw new Error(`mkfs.ext4 failed: ${mkfs.stderr}`);
  rmSync(rootfs, { recursive: true, force: true });
  return image;
}

/**
 * A LUKS2 root disk in a plain file, without loop devices or
 * device-mapper: an ext4 file system made from a directory, then
 * encrypted in place (cheap PBKDF: the guest runs under TCG). Its
 * /sbin/init prints the marker ROOT_MARKER with the uptime and powers off.
 */
export async function makeLuksRoot(work: string, passphrase: string): Promise<LuksRoot> {
  // 96 MiB file, 64 MiB file system: reencrypt takes its 32 MiB from the free end.
  const image = await makeRootFileSystem(work, "root", "96M", "64M");
  const keyfile = join(work, "luks-key");
  writeFileSync(keyfile, passphrase, { mode: 0o600 });
  try {
    const enc = await run(
      "cryptsetup",
      ["reencrypt", "--batch-mode", "--encrypt", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000",
        "--reduce-device-size", "32M", "--key-file", keyfile, image],
      { timeoutMs: 120_000 },
    );
    if (enc.code !== 0) throw new Error(`cryptsetup reencrypt --encrypt failed: ${enc.stderr}`);
    const check = await run("cryptsetup", ["open", "--test-passphrase", "--key-file", keyfile, image], { timeoutMs: 60_000 });
    if (check.code !== 0) throw new Error(`the new LUKS image does not take its passphrase: ${check.stderr}`);
  } finally {
    rmSync(keyfile, { force: true });
  }
  const uuid = (await run("cryptsetup", ["luksUUID", image])).stdout.toString().trim();
  if (!/^[0-9a-f-]{36}$/.test(uuid)) throw new Error(`no LUKS UUID for ${image}: "${uuid}"`);
  return { kind: "luks", image, uuid };
}

/** A plain ext4 root disk (no encryption) with the same /sbin/init as makeLuksRoot's. */
export async function makePlainRoot(work: string): Promise<PlainRoot> {
  const uuid = randomUUID();
  const image = await makeRootFileSystem(work, "plain-root", "64M", "64M", uuid);
  return { kind: "plain", image, uuid };
}

export const ROOT_MARKER = "MANDOS-BOOT-RIG: root file system mounted, init running";

// ---- Network namespace -------------------------------------------------------

export interface TapNamespace {
  name: string;
  tap: string;
  destroy(): void;
}

/** A fresh namespace with lo and a tap device (up; carrier once qemu opens it). */
export function createTapNamespace(): TapNamespace {
  const name = live.createNamespace();
  ip(["-n", name, "tuntap", "add", "dev", "tap0", "mode", "tap"]);
  ip(["-n", name, "link", "set", "tap0", "up"]);
  return { name, tap: "tap0", destroy: () => live.removeNamespace(name) };
}

// ---- Processes with logs ---------------------------------------------------

/** A process whose output is kept in memory and appended to a log file as it comes. */
export class Logged {
  readonly proc: ChildProcess;
  private text = "";
  /** Host time (ms) at which the output reached each length: when a line was seen. */
  private readonly arrivals: { end: number; at: number }[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly startedAt = Date.now();

  constructor(cmd: string, args: string[], readonly logFile: string, env: NodeJS.ProcessEnv = process.env) {
    writeFileSync(logFile, `# ${cmd} ${args.join(" ")}\n`);
    this.proc = track(spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] }));
    const add = (d: Buffer) => {
      const s = d.toString();
      this.text += s;
      this.arrivals.push({ end: this.text.length, at: Date.now() });
      appendFileSync(logFile, s);
    };
    this.proc.stdout!.on("data", add);
    this.proc.stderr!.on("data", add);
    this.exited = new Promise((resolve) => {
      this.proc.on("error", (err) => {
        add(Buffer.from(`\n# spawn failed: ${err.message}\n`));
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
      this.proc.on("close", (code, signal) => {
        this.exitInfo = { code, signal };
        appendFileSync(logFile, `\n# exited: ${code ?? signal}\n`);
        resolve(this.exitInfo);
      });
    });
  }

  output(): string {
    return this.text;
  }

  /** Host time (ms) at which the first match of `re` had fully arrived, or null if there is none yet. */
  seenAt(re: RegExp): number | null {
    const m = new RegExp(re.source, re.flags.replace("g", "")).exec(this.text);
    if (!m) return null;
    const end = m.index + m[0].length;
    return this.arrivals.find((a) => a.end >= end)?.at ?? null;
  }

  get hasExited(): boolean {
    return this.exitInfo !== null;
  }

  /** Wait until the output matches, the process exits (error), or the time is up (error). */
  async waitFor(re: RegExp, what: string, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.text);
      if (m) return m;
      if (this.hasExited) throw new Error(`${what}: the process exited (${this.exitInfo!.code ?? this.exitInfo!.signal}) first`);
      if (Date.now() > deadline) throw new Error(`${what}: not seen within ${Math.round(timeoutMs / 1000)} s`);
      await sleep(200);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it is gone. */
  async stop(graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.hasExited) {
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }
}

// ---- Mandos servers ----------------------------------------------------------

export interface BootServer {
  name: string;
  /** The TCP port it listens on (it picks a free one). */
  port: number;
  bus: PrivateBus;
  process: Logged;
  stop(): Promise<void>;
}

/**
 * Our server in the namespace, announcing "_mandos._tcp" on the tap with
 * Zeroconf, on its own private D-Bus (also where it looks for avahi: there
 * is none there, so it uses its built-in responder, inside the namespace).
 */
export async function startBootServer(opts: {
  ns: TapNamespace;
  dir: string;
  serviceName: string;
  clientsConf: string;
  logFile: string;
  timeoutMs?: number;
}): Promise<BootServer> {
  const configDir = join(opts.dir, "config");
  mkdirSync(configDir, { recursive: true });
  writeFileSync(
    join(configDir, "mandos.conf"),
    `[DEFAULT]\ninterface = ${opts.ns.tap}\nzeroconf = True\nuse_dbus = True\nservicename = ${opts.serviceName}\n`,
  );
  writeFileSync(join(configDir, "clients.conf"), opts.clientsConf, { mode: 0o600 });
  const stateDir = serverWritableDir(join(opts.dir, "state"));
  const bus = startBus(join(opts.dir, "bus"));
  live.services.add(bus);
  const process_ = new Logged(
    "ip",
    ["netns", "exec", opts.ns.name, process.execPath, join(BIN, "mandos"), "--debug", "--configdir", configDir, "--statedir", stateDir],
    opts.logFile,
    bus.env,
  );
  const stop = async () => {
    await process_.stop();
    bus.stop();
    live.services.delete(bus);
  };
  try {
    await process_.waitFor(/Now listening on address/, `server ${opts.serviceName} start`, opts.timeoutMs ?? 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  const port = Number(/Now listening on address .*?port (\d+)/.exec(process_.output())![1]);
  return { name: opts.serviceName, port, bus, process: process_, stop };
}

/** Our mandos-ctl on a server's private bus. */
export function mandosCtl(server: BootServer, args: string[], timeoutMs = 30_000) {
  return run(process.execPath, [join(BIN, "mandos-ctl"), ...args], { env: server.bus.env, timeoutMs });
}

/** A clients.conf for the boot test: a checker that always succeeds (no host to ping). */
export function clientsConf(sections: string[]): string {
  return `[DEFAULT]\nchecker = /bin/true\n\n${sections.join("\n")}\n`;
}

// ---- The guest -------------------------------------------------------------------

/**
 * Kernel command line for a guest with this root (no network configuration
 * at all). `mandosDebug: false` leaves out mandos=debug (the benchmark:
 * Debian's module has no such switch under systemd, so both log alike).
 */
export function guestCommandLine(root: RootDisk, extra: string[] = [], opts: { mandosDebug?: boolean } = {}): string {
  const rootArgs =
    root.kind === "luks"
      ? [`rd.luks.uuid=${root.uuid}`, `root=/dev/mapper/luks-${root.uuid}`]
      : [`root=UUID=${root.uuid}`];
  return [
    "console=ttyS0",
    "panic=-1",
    "rd.shell=0",
    "rd.emergency=poweroff",
    ...rootArgs,
    "rootfstype=ext4",
    // The journal (the agent's and the client's logs) on the serial console, with timestamps.
    "systemd.journald.forward_to_console=1",
    ...(opts.mandosDebug === false ? [] : ["mandos=debug"]),
    ...extra,
  ].join(" ");
}

/** qemu under TCG in the namespace, attached to its tap; the serial console is its standard output. */
export function bootGuest(opts: {
  ns: TapNamespace;
  initramfs: Initramfs;
  disk: string;
  commandLine: string;
  consoleLog: string;
}): Logged {
  return new Logged(
    "ip",
    ["netns", "exec", opts.ns.name, QEMU,
      "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "2", "-m", "1024",
      "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
      "-kernel", opts.initramfs.kernel.vmlinuz, "-initrd", opts.initramfs.image,
      "-drive", `file=${opts.disk},format=raw,if=virtio`,
      "-netdev", `tap,id=n0,ifname=${opts.ns.tap},script=no,downscript=no`,
      "-device", "virtio-net-pci,netdev=n0",
      "-append", opts.commandLine],
    opts.consoleLog,
  );
}

// ---- Reading the console (pure) ----------------------------------------------------

/** Console text without terminal escapes and carriage returns. */
export function cleanConsole(raw: string): string {
  return raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\x1bc/g, "").replace(/\r/g, "");
}

export interface GuestStep {
  key: string;
  label: string;
  re: RegExp;
}

/**
 * The boot's steps, in the order they should happen when the server is
 * there from the start (with the agent prefetching, "held" may come before
 * "cryptsetup" and "question", and the client's steps before them too).
 */
export const GUEST_STEPS: readonly GuestStep[] = [
  { key: "kernel", label: "kernel started", re: /Linux version \d/ },
  { key: "initrd", label: "systemd running in the initramfs", re: /systemd\[1\]: Running in initrd/ },
  { key: "agent", label: "agent's service started (ask-password-mandos.service)", re: /systemd\[1\]: Started ask-password-mandos\.service/ },
  { key: "interface", label: "client chose its interface", re: /mandos-client: debug: will use interface "([^"]+)"/ },
  { key: "browsing", label: "client browsing Zeroconf", re: /mandos-client: debug: Zeroconf: browsing for _mandos\._tcp/ },
  { key: "found", label: "client found a server", re: /mandos-client: debug: (?:Zeroconf: Mandos server "[^"]*" found|found server) .*/ },
  { key: "cryptsetup", label: "systemd-cryptsetup started for the root", re: /systemd\[1\]: Starting systemd-cryptsetup@/ },
  // The rig's marker (mandos-boot-rig-question.path): the same event in every image compared.
  { key: "question", label: "password question appeared", re: /systemd\[1\]: (?:Starting|Finished) mandos-boot-rig-question\.service/ },
  { key: "held", label: "agent holds the secret", re: /password-agent\[\d+\]: password-agent: holding the secret.*/ },
  { key: "answered", label: "agent answered the question", re: /password-agent\[\d+\]: password-agent: answered question.*/ },
  { key: "unlocked", label: "LUKS volume opened", re: /systemd\[1\]: Finished systemd-cryptsetup@.*/ },
  { key: "mounted", label: "root file system mounted", re: /EXT4-fs \((?:dm-\d+|vda)\): mounted filesystem.*/ },
  // systemd's own line for the same mount: Debian's C client lowers the
  // console log level, which hides the kernel's line, so compare with this.
  { key: "sysroot", label: "systemd mounted /sysroot", re: /systemd\[1\]: Mounted sysroot\.mount.*/ },
  { key: "dropped", label: "agent dropped the held secret", re: /password-agent\[\d+\]: password-agent: dropped the held secret: .*/ },
  { key: "init", label: "the root's /sbin/init ran", re: new RegExp(`${ROOT_MARKER} at [\\d.]+ s`) },
];

/** The step with this key (a typo is a test bug: it throws). */
export function guestStep(key: string): GuestStep {
  const step = GUEST_STEPS.find((s) => s.key === key);
  if (!step) throw new Error(`no guest step "${key}"`);
  return step;
}

export interface StepSeen {
  key: string;
  label: string;
  /** Guest seconds since the kernel started (the line's timestamp), if it has one. */
  seconds: number | null;
  line: string;
}

/** The guest timestamp "[   12.345678]" of a console line, or the uptime the rig's markers print. */
export function lineSeconds(line: string): number | null {
  const stamp = /^\[\s*(\d+\.\d+)\]/.exec(line);
  if (stamp) return Number(stamp[1]);
  const marker = /MANDOS-BOOT-RIG: .* at (\d+(?:\.\d+)?) s/.exec(line);
  return marker ? Number(marker[1]) : null;
}

/** First occurrence of each step in the console text. */
export function stepsSeen(console: string): Map<string, StepSeen> {
  const lines = cleanConsole(console).split("\n");
  const seen = new Map<string, StepSeen>();
  for (const step of GUEST_STEPS) {
    const line = lines.find((l) => step.re.test(l));
    if (line !== undefined) seen.set(step.key, { key: step.key, label: step.label, seconds: lineSeconds(line), line: line.trim() });
  }
  return seen;
}

/**
 * The first step (in GUEST_STEPS order, up to `until`) the console does
 * not show, leaving out the steps in `unexpected` (a boot without them).
 */
export function firstMissingStep(console: string, until: string, unexpected: readonly string[] = []): GuestStep | null {
  const seen = stepsSeen(console);
  for (const step of GUEST_STEPS) {
    if (!seen.has(step.key) && !unexpected.includes(step.key)) return step;
    if (step.key === until) break;
  }
  return null;
}

export interface QuestionList {
  seconds: number;
  questions: string[];
}

interface ProbeBlock {
  /** The block's first line, matched. */
  head: RegExpExecArray;
  /** Its indented lines, without the marker and indentation. */
  lines: string[];
}

/** The rig probe's blocks that start with `head` and end with `end` (a block cut off by the console's end is left out). */
function probeBlocks(console: string, head: RegExp, end: RegExp): ProbeBlock[] {
  const blocks: ProbeBlock[] = [];
  let current: ProbeBlock | null = null;
  for (const line of cleanConsole(console).split("\n")) {
    const start = head.exec(line);
    if (start) {
      current = { head: start, lines: [] };
      continue;
    }
    if (!current) continue;
    if (end.test(line)) {
      blocks.push(current);
      current = null;
      continue;
    }
    const item = /MANDOS-BOOT-RIG: {3}(.*)$/.exec(line);
    if (item) current.lines.push(item[1]!.trim());
  }
  return blocks;
}

/** The rig probe's lists of pending questions (mandos_boot_rig.probe), in order. */
export function questionLists(console: string): QuestionList[] {
  return probeBlocks(console, /MANDOS-BOOT-RIG: pending questions at (\d+(?:\.\d+)?) s:/, /MANDOS-BOOT-RIG: end of list/).map((b) => ({
    seconds: Number(b.head[1]),
    questions: b.lines,
  }));
}

export interface ProcessStatus {
  pid: number;
  /** Guest uptime when the probe read it. */
  seconds: number;
  /** Lines of /proc/PID/status the probe prints (Name, Uid, Gid, CapInh, CapPrm, CapEff, CapAmb, NoNewPrivs). */
  fields: Record<string, string>;
}

/** The rig probe's reports on running Mandos client processes (mandos_boot_rig.probe), in order. */
export function processStatuses(console: string): ProcessStatus[] {
  return probeBlocks(console, /MANDOS-BOOT-RIG: process (\d+) at (\d+(?:\.\d+)?) s:/, /MANDOS-BOOT-RIG: end of process/).map((b) => {
    const fields: Record<string, string> = {};
    for (const line of b.lines) {
      const field = /^(\w+):\s*(.*)$/.exec(line);
      if (field) fields[field[1]!] = field[2]!;
    }
    return { pid: Number(b.head[1]), seconds: Number(b.head[2]), fields };
  });
}

/** How a process's credentials differ from "this uid, every capability set empty, NoNewPrivs"; [] if they do not. */
export function privilegeProblems(status: ProcessStatus, uid: number): string[] {
  const problems: string[] = [];
  const f = status.fields;
  const uids = (f.Uid ?? "").split(/\s+/).filter(Boolean);
  if (uids.length !== 4 || uids.some((u) => Number(u) !== uid)) {
    problems.push(`Uid (real, effective, saved, file system) is "${f.Uid ?? "missing"}", not ${uid} throughout`);
  }
  for (const set of ["CapInh", "CapPrm", "CapEff", "CapAmb"]) {
    const value = f[set];
    if (value === undefined || !/^[0-9a-f]+$/i.test(value)) problems.push(`${set} is ${value ?? "missing"}`);
    else if (BigInt(`0x${value}`) !== 0n) problems.push(`${set} is 0x${value}, not 0`);
  }
  if (f.NoNewPrivs !== "1") problems.push(`NoNewPrivs is ${f.NoNewPrivs ?? "missing"}, not 1`);
  return problems;
}
