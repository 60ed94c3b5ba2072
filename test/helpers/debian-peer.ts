// Debian's Mandos 1.8.16 programs as reference peers for interop tests:
// keys from Debian's mandos-keygen, Debian's server on loopback (with the
// private D-Bus "system" bus it insists on), and Debian's client.
//
//   const keys = await makeDebianKeys(dir);                 // RSA-4096 + Ed25519, ~2-4 s
//   const section = await debianPasswordSection(dir, "pw", "client1");
//   await using server = await startDebianServer({ clientsConf: section });
//   const r = await runDebianClient(dir, server.port);       // r.stdout is the password
//
// Everything started here is stopped by stop() (or `await using`), which
// also removes the server's temporary directory.
//
// Every peer is pinned by its Debian path, never looked up on PATH (where
// our own install may shadow it), and checked once per process to be that
// package's file: `dpkg -S` names the package and the content matches the
// package's md5sums. A test whose peer's package is not installed skips;
// one whose peer is not Debian's file fails: that is how we notice that
// our own install replaced Debian's programs.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRoot, requires, run, type RunResult } from "./index.js";

/** Debian's multiarch triplet (e.g. x86_64-linux-gnu), or "" without dpkg-dev. */
const MULTIARCH = (() => {
  const r = spawnSync("dpkg-architecture", ["-qDEB_HOST_MULTIARCH"], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : "";
})();

export const DEBIAN_SERVER = "/usr/sbin/mandos";
export const DEBIAN_CTL = "/usr/sbin/mandos-ctl";
export const DEBIAN_MONITOR = "/usr/sbin/mandos-monitor";
export const DEBIAN_KEYGEN = "/usr/sbin/mandos-keygen";
export const DEBIAN_CLIENT = `/usr/lib/${MULTIARCH}/mandos/plugins.d/mandos-client`;
export const DEBIAN_AGENT = "/usr/lib/dracut/modules.d/90mandos/password-agent";

/** Each pinned path and the Debian package that must own it. */
const PACKAGE_OF = new Map<string, "mandos" | "mandos-client">([
  [DEBIAN_SERVER, "mandos"],
  [DEBIAN_CTL, "mandos"],
  [DEBIAN_MONITOR, "mandos"],
  [DEBIAN_KEYGEN, "mandos-client"],
  [DEBIAN_CLIENT, "mandos-client"],
  [DEBIAN_AGENT, "mandos-client"],
]);

/** Every pinned path. */
export const DEBIAN_PEERS = [...PACKAGE_OF.keys()] as [string, ...string[]];

/** Per path: a reason to skip, false when it is Debian's file, or the error that it is not. */
const verdicts = new Map<string, string | false | Error>();

function packageInstalled(pkg: string): boolean {
  const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", pkg], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0 && r.stdout === "install ok installed";
}

/** Packages `dpkg -S` names for each path (one run for all of them). */
function owners(paths: string[]): Map<string, string[]> {
  const r = spawnSync("dpkg", ["-S", ...paths], { encoding: "utf8", timeout: 30_000 });
  const out = new Map<string, string[]>();
  for (const line of (r.stdout ?? "").split("\n")) {
    // "mandos-client: /usr/sbin/mandos-keygen". (A diversion's lines start
    // "diversion by"; a diverted file fails the md5sums check instead.)
    const m = /^([^\s:][^:]*): (\/.*)$/.exec(line);
    if (m && !line.startsWith("diversion ")) out.set(m[2]!, m[1]!.split(", "));
  }
  return out;
}

/** The md5sum Debian's package lists for `path`. */
function packagedMd5(pkg: string, path: string): string | undefined {
  const control = spawnSync("dpkg-query", ["--control-path", pkg, "md5sums"], { encoding: "utf8", timeout: 10_000 }).stdout?.trim();
  if (!control || !existsSync(control)) return undefined;
  const line = readFileSync(control, "utf8").split("\n").find((l) => l.endsWith(`  ${path.slice(1)}`));
  return line?.split(/\s+/)[0];
}

function judge(paths: string[]): void {
  const todo = paths.filter((p) => !verdicts.has(p));
  if (todo.length === 0) return;
  const installed = todo.filter((p) => {
    const pkg = PACKAGE_OF.get(p);
    if (!pkg) throw new Error(`${p} is not one of the pinned Debian peers`);
    if (!MULTIARCH && p === DEBIAN_CLIENT) verdicts.set(p, "needs dpkg-architecture for Debian's multiarch path (package dpkg-dev; run test/setup.sh as root)");
    else if (!packageInstalled(pkg)) verdicts.set(p, `needs Debian's ${pkg} package for ${p} (run test/setup.sh as root)`);
    else return true;
    return false;
  });
  if (installed.length === 0) return;
  const owned = owners(installed);
  for (const path of installed) {
    const pkg = PACKAGE_OF.get(path)!;
    const by = owned.get(path) ?? [];
    const notDebians = (why: string) => new Error(`${path} is not Debian's ${pkg} file (${why}): has our own install replaced it?`);
    if (!by.includes(pkg)) verdicts.set(path, notDebians(`dpkg -S names ${by.join(", ") || "no package"}`));
    else if (!existsSync(path)) verdicts.set(path, notDebians("missing"));
    else {
      const md5 = createHash("md5").update(readFileSync(path)).digest("hex");
      verdicts.set(path, md5 === packagedMd5(pkg, path) ? false : notDebians("its content differs from the package's md5sums"));
    }
  }
}

/**
 * Skip reason if a peer's Debian package is not installed, else false.
 * Throws if a peer is not its package's file, so the test fails instead.
 */
export function debianPeerMissing(...paths: [string, ...string[]]): string | false {
  judge(paths);
  for (const p of paths) {
    const v = verdicts.get(p)!;
    if (v instanceof Error) throw v;
    if (v) return v;
  }
  return false;
}

/** `path`, once checked to be Debian's file: for the places that run a peer. */
export function debianPeer(path: string): string {
  const reason = debianPeerMissing(path);
  if (reason) throw new Error(reason);
  return path;
}

/** Skip reason if Debian's server, client or keygen, or a program they need, is missing. */
export function debianInteropMissing(): string | false {
  return debianPeerMissing(DEBIAN_SERVER, DEBIAN_KEYGEN, DEBIAN_CLIENT) || requires({ commands: ["dbus-daemon", "gpg", "certtool"] });
}

function must(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code ?? r.signal}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  return r;
}

/** Debian's default keys (RSA-4096 OpenPGP, Ed25519 TLS) in an existing directory. */
export async function makeDebianKeys(dir: string, extraArgs: string[] = []): Promise<void> {
  must(await run(debianPeer(DEBIAN_KEYGEN), ["--dir", dir, "--force", ...extraArgs], { timeoutMs: 120_000 }), "Debian mandos-keygen");
}

/**
 * A clients.conf section from Debian's keygen for the keys in `dir`,
 * encrypting `password` (written to a temporary file, exact bytes).
 */
export async function debianPasswordSection(dir: string, password: string | Buffer, name: string): Promise<string> {
  const tmp = mkdtempSync(join(tmpdir(), "debian-pass-"));
  try {
    const passfile = join(tmp, "pass");
    writeFileSync(passfile, password, { mode: 0o600 });
    const r = must(
      await run(debianPeer(DEBIAN_KEYGEN), ["--dir", dir, "--passfile", passfile, "--name", name, "--no-ssh"], { timeoutMs: 60_000 }),
      "Debian mandos-keygen --passfile",
    );
    return r.stdout.toString();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The binary secret of a clients.conf section (its base64 continuation lines). */
export function sectionSecret(section: string): Buffer {
  const lines = section.split("\n");
  const start = lines.findIndex((l) => /^secret\s*[=:]/.test(l));
  if (start < 0) throw new Error("section has no secret");
  let b64 = lines[start]!.replace(/^secret\s*[=:]\s*/, "");
  for (const line of lines.slice(start + 1)) {
    if (!/^\s+\S/.test(line)) break;
    b64 += line.trim();
  }
  return Buffer.from(b64, "base64");
}

/** One value of a clients.conf section (first line only). */
export function sectionValue(section: string, key: string): string | undefined {
  const m = new RegExp(`^${key}\\s*=\\s*(.*)$`, "m").exec(section);
  return m?.[1];
}

/** A free TCP port on ::1 (closed again, so a small race is possible). */
export function freePort(host = "::1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Stop a process group we started: TERM, then KILL after `graceMs`. */
async function stopGroup(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.pid === undefined || exited(child)) return;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    return;
  }
  const timedOut = await Promise.race([gone.then(() => false), sleep(graceMs).then(() => true)]);
  try {
    // Also reaps forked children (Debian's server forks one per request).
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
  if (timedOut) await Promise.race([gone, sleep(2000)]);
}

// One permissive private bus for every peer test (the netns rig's).
export { startPrivateBus, type PrivateBus } from "./netns.js";
import { startPrivateBus, type PrivateBus } from "./netns.js";

export interface DebianServerOptions {
  /** Full clients.conf text (sections from mandos-keygen --passfile, etc.). */
  clientsConf: string;
  /** Provide the D-Bus API (use_dbus = True) on the private bus. */
  dbus?: boolean;
  /** Extra [DEFAULT] lines for mandos.conf, e.g. { priority: "..." }. */
  serverConf?: Record<string, string>;
  /** Extra environment for the server. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for it to listen. */
  startTimeoutMs?: number;
  /** Port on ::1 (default: a free one). */
  port?: number;
}

export interface DebianServer {
  port: number;
  host: "::1";
  /** The server's configdir/statedir (removed by stop()). */
  dir: string;
  /** DBUS_SYSTEM_BUS_ADDRESS of its private bus (for mandos-ctl etc.). */
  busAddress: string;
  /** The server's log so far, without Python's syslog-failure tracebacks. */
  log(): string;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Whether something listens on [::1]:port (read from /proc, no connection made). */
function listening(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let table = "";
  try {
    table = readFileSync("/proc/net/tcp6", "utf8");
  } catch {
    return false;
  }
  return table
    .split("\n")
    .some((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === `00000000000000000000000001000000:${hexPort}` && f[3] === "0A";
    });
}

/**
 * Without /dev/log, Python's logging prints a traceback for every record
 * after the record itself reaches stderr; keep only the records.
 */
export function cleanServerLog(raw: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const line of raw.split("\n")) {
    if (line === "--- Logging error ---") {
      skipping = true;
      continue;
    }
    if (skipping) {
      if (line.startsWith("Arguments: ")) skipping = false;
      continue;
    }
    out.push(line);
  }
  return out.join("\n");
}

export async function startDebianServer(opts: DebianServerOptions): Promise<DebianServer> {
  const dir = mkdtempSync(join(tmpdir(), "debian-mandos-"));
  // The server drops privileges (to _mandos) before it connects to the bus.
  chmodSync(dir, 0o755);
  let bus: PrivateBus | undefined;
  let child: ChildProcess | undefined;
  const chunks: string[] = [];
  const stop = async () => {
    if (child) await stopGroup(child);
    if (bus) await bus.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    bus = await startPrivateBus(dir);
    const port = opts.port ?? (await freePort());
    const conf: Record<string, string> = {
      address: "::1",
      port: String(port),
      use_dbus: opts.dbus ? "True" : "False",
      zeroconf: "False",
      ...opts.serverConf,
    };
    writeFileSync(join(dir, "mandos.conf"), "[DEFAULT]\n" + Object.entries(conf).map(([k, v]) => `${k} = ${v}\n`).join(""));
    writeFileSync(join(dir, "clients.conf"), opts.clientsConf, { mode: 0o600 });
    const args = ["--debug", "--configdir", dir, "--statedir", dir, "--no-zeroconf", "--no-restore"];
    if (!opts.dbus) args.push("--no-dbus");
    child = spawn(debianPeer(DEBIAN_SERVER), args, {
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
      env: { ...process.env, ...opts.env, DBUS_SYSTEM_BUS_ADDRESS: bus.address },
    });
    child.stdout!.setEncoding("utf8");
    child.stderr!.setEncoding("utf8");
    child.stdout!.on("data", (d: string) => chunks.push(d));
    child.stderr!.on("data", (d: string) => chunks.push(d));
    const started = child;
    const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
    while (!listening(port)) {
      if (exited(started)) throw new Error(`Debian mandos exited at start: ${cleanServerLog(chunks.join("")).trim().split("\n").slice(-3).join(" | ")}`);
      if (Date.now() > deadline) throw new Error("Debian mandos did not listen in time");
      await sleep(50);
    }
    return {
      port,
      host: "::1",
      dir,
      busAddress: bus.address,
      log: () => cleanServerLog(chunks.join("")),
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Debian's mandos-client against a server on ::1; stdout is the password.
 *
 * The client starts a gpg-agent in a fresh /run/tmp/mandosXXXXXX (or
 * /tmp/...) and leaves both behind when it fails. As root we therefore run
 * it in PID and mount namespaces of its own with a private tmpfs on /run:
 * when it exits, the kernel ends the agent and the directory vanishes.
 * (Key paths must not be under /run.)
 */
export function runDebianClient(
  keysDir: string,
  port: number,
  opts: {
    timeoutMs?: number;
    extraArgs?: string[];
    files?: Partial<Record<"pubkey" | "seckey" | "tlsPubkey" | "tlsPrivkey", string>>;
    /** Default: true when root and unshare(1) exists. */
    isolate?: boolean;
  } = {},
): Promise<RunResult> {
  const f = opts.files ?? {};
  const clientArgs = [
    "--connect", `::1:${port}`,
    "--pubkey", f.pubkey ?? join(keysDir, "pubkey.txt"),
    "--seckey", f.seckey ?? join(keysDir, "seckey.txt"),
    "--tls-pubkey", f.tlsPubkey ?? join(keysDir, "tls-pubkey.pem"),
    "--tls-privkey", f.tlsPrivkey ?? join(keysDir, "tls-privkey.pem"),
    "--interface", "none",
    ...(opts.extraArgs ?? []),
  ];
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const isolate = opts.isolate ?? (isRoot && !requires({ commands: ["unshare", "mount"] }));
  const client = debianPeer(DEBIAN_CLIENT);
  if (!isolate) return run(client, clientArgs, { timeoutMs });
  return run(
    "unshare",
    [
      "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
      "sh", "-c", 'mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 700 /run/tmp && exec "$@"', "sh",
      client, ...clientArgs,
    ],
    { timeoutMs },
  );
}
