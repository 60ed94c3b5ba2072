// Test rig for the server: a private system bus (dbus-daemon with our
// policy file, never the machine's bus), a configuration directory, our
// server (or Debian's) started on loopback without Zeroconf, and both
// mandos-ctl programs pointed at that bus.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, statSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Message, sessionBus, type MessageBus, type Variant } from "dbus-next";
import { BIN, ROOT, run, tempDir, type RunResult } from "./index.js";
import { DEBIAN_CLIENT, DEBIAN_CTL, DEBIAN_SERVER, debianPasswordSection, debianPeer, makeDebianKeys } from "./debian-peer.js";

// For the tests that take it from here.
export { DEBIAN_CTL };
export const POLICY = join(ROOT, "units", "dbus-mandos.conf");

/** The uid/gid our server (and Debian's) switches to; the state directory must be theirs. */
export function mandosIds(): { uid: number; gid: number } | null {
  const r = spawnSync("id", ["-u", "_mandos"], { encoding: "utf8" });
  const g = spawnSync("id", ["-g", "_mandos"], { encoding: "utf8" });
  if (r.status !== 0 || g.status !== 0) return null;
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/**
 * A directory the unprivileged server may write (and others may traverse),
 * as the server checks at start: the test directories above it, private
 * by default, are opened for traversal too.
 */
export function serverWritableDir(path: string): string {
  mkdirSync(path, { recursive: true });
  const tmp = resolve(tmpdir());
  for (let dir = dirname(resolve(path)); dir.startsWith(`${tmp}/`); dir = dirname(dir)) {
    chmodSync(dir, (statSync(dir).mode & 0o7777) | 0o011);
  }
  chmodSync(path, 0o755);
  const ids = mandosIds();
  if (ids && process.getuid?.() === 0) chownSync(path, ids.uid, ids.gid);
  return path;
}

/**
 * `setpriv` arguments that run a program as uid/gid 65534, a local user
 * who is not the server's: with no supplementary group ("stranger"), or
 * with the server's group added ("member", which D-Bus policies see).
 */
export function asNobody(who: "stranger" | "member"): string[] {
  const ids = mandosIds();
  if (who === "member" && !ids) throw new Error("no _mandos group to be a member of");
  return [`--reuid=65534`, `--regid=65534`, who === "member" ? `--groups=${ids!.gid}` : "--clear-groups"];
}

export interface PrivateBus {
  address: string;
  env: NodeJS.ProcessEnv;
  stop(): void;
}

/** A dbus-daemon of type "system" with Debian's default deny rules plus `policy`. */
export function startBus(dir: string, policy = POLICY): PrivateBus {
  mkdirSync(dir, { recursive: true });
  // The server connects after dropping root: the socket's directory must be reachable.
  chmodSync(dir, 0o755);
  const socket = join(dir, "bus.sock");
  const conf = join(dir, "bus.conf");
  writeFileSync(
    conf,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=${socket}</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>${policy}</include>
</busconfig>
`,
  );
  const r = spawnSync("dbus-daemon", [`--config-file=${conf}`, "--fork", "--print-pid"], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) throw new Error(`dbus-daemon failed: ${r.stderr}`);
  const pid = Number(r.stdout.trim());
  const address = `unix:path=${socket}`;
  return {
    address,
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: address },
    stop: () => {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
    },
  };
}

export const CLIENT_INTERFACE = "se.recompile.Mandos.Client";

/** A dbus-next connection from the test process to the private bus. */
export async function connectBus(bus: PrivateBus): Promise<MessageBus> {
  const conn = sessionBus({ busAddress: bus.address });
  await new Promise<void>((resolve, reject) => {
    conn.once("connect", () => resolve());
    conn.once("error", reject);
  });
  return conn;
}

/** Call a method of the server's objects; rejects with the D-Bus error (its `type` and `text`). */
export function callServer(conn: MessageBus, path: string, iface: string, member: string, signature = "", body: unknown[] = []): Promise<Message | null> {
  return conn.call(new Message({ destination: "se.recompile.Mandos", path, interface: iface, member, signature, body }));
}

export function setClientProperty(conn: MessageBus, path: string, property: string, value: Variant): Promise<Message | null> {
  return callServer(conn, path, "org.freedesktop.DBus.Properties", "Set", "ssv", [CLIENT_INTERFACE, property, value]);
}

export interface SeenSignal {
  path: string;
  iface: string;
  member: string;
  body: unknown[];
}

/** Every signal sent on `conn`'s bus from now on (but the bus daemon's own), as it arrives. */
export async function watchSignals(conn: MessageBus): Promise<SeenSignal[]> {
  const seen: SeenSignal[] = [];
  await conn.call(
    new Message({ destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus", interface: "org.freedesktop.DBus", member: "AddMatch", signature: "s", body: ["type='signal'"] }),
  );
  conn.on("message", (msg: Message) => {
    if (msg.type === 4 /* SIGNAL */ && msg.sender !== "org.freedesktop.DBus") seen.push({ path: msg.path, iface: msg.interface, member: msg.member, body: msg.body });
  });
  return seen;
}

/** What a D-Bus test of the server shares: its directory, private bus, Debian keys and a signal watch. */
export interface BusRig {
  dir: ReturnType<typeof tempDir>;
  bus: PrivateBus;
  keys: ClientKeys;
  watcher: MessageBus;
  /** Every signal seen since the rig was made. */
  signals: SeenSignal[];
  close(): void;
}

export async function busRig(prefix: string, passphrase: string): Promise<BusRig> {
  const dir = tempDir(prefix);
  // The server drops to _mandos, and must still reach the bus socket and its state.
  chmodSync(dir.path, 0o755);
  const bus = startBus(join(dir.path, "bus"));
  const keys = await makeKeys(join(dir.path, "keys"), passphrase);
  const watcher = await connectBus(bus);
  const signals = await watchSignals(watcher);
  const close = () => {
    watcher.disconnect();
    bus.stop();
    dir.cleanup();
  };
  return { dir, bus, keys, watcher, signals, close };
}

export interface ConfigOptions {
  clients: string;
  port?: number;
  extra?: string;
}

export function writeConfig(dir: string, opts: ConfigOptions): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "mandos.conf"), `[DEFAULT]\naddress = ::1\nzeroconf = False\n${opts.port !== undefined ? `port = ${opts.port}\n` : ""}${opts.extra ?? ""}`);
  writeFileSync(join(dir, "clients.conf"), opts.clients, { mode: 0o600 });
  return dir;
}

export interface RunningServer {
  proc: ChildProcess;
  port: number;
  /** Everything the server wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM and wait (bounded) for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill9(): Promise<void>;
  exited: Promise<number | null>;
}

/**
 * Start a server in debug mode (foreground, log on stderr) and wait until it
 * says it listens, which it does after joining D-Bus.
 */
export async function startServer(opts: {
  configDir: string;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  args?: string[];
  debian?: boolean;
  timeoutMs?: number;
}): Promise<RunningServer> {
  const args = ["--debug", "--configdir", opts.configDir, "--statedir", opts.stateDir, "--no-zeroconf", ...(opts.args ?? [])];
  const proc = opts.debian
    ? spawn("/usr/bin/python3", ["-bI", debianPeer(DEBIAN_SERVER), ...args], { env: opts.env, stdio: ["ignore", "pipe", "pipe"] })
    : spawn(process.execPath, [join(BIN, "mandos"), ...args], { env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let port = -1;
  while (Date.now() < deadline && !hasExited) {
    const m = /Now listening on address .*?port (\d+)/.exec(out);
    if (m) {
      port = Number(m[1]);
      break;
    }
    await sleep(50);
  }
  const waitExit = async (ms: number) => {
    await Promise.race([exited, sleep(ms)]);
  };
  const server: RunningServer = {
    proc,
    port,
    output: () => out,
    exited,
    stop: async () => {
      if (hasExited) return;
      proc.kill("SIGTERM");
      await waitExit(10_000);
      if (!hasExited) proc.kill("SIGKILL");
      await waitExit(5_000);
    },
    kill9: async () => {
      if (hasExited) return;
      proc.kill("SIGKILL");
      await waitExit(5_000);
    },
  };
  if (port < 0) {
    await server.kill9();
    throw new Error(`server did not start:\n${out}`);
  }
  return server;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll until `cond` is true (or throw after timeoutMs). */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** `mandos-ctl -j` (Debian's or ours): every client's properties by name. */
export async function ctlJson(which: "debian" | "ours", env: NodeJS.ProcessEnv): Promise<Record<string, Record<string, unknown>>> {
  const r = await ctl(which, ["-j"], env);
  if (r.code !== 0) throw new Error(`mandos-ctl -j failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.toString()) as Record<string, Record<string, unknown>>;
}

/** Run Debian's mandos-ctl or ours with the private bus. */
export function ctl(which: "debian" | "ours", args: string[], env: NodeJS.ProcessEnv, timeoutMs = 20_000): Promise<RunResult> {
  return which === "debian"
    ? run("/usr/bin/python3", ["-bbI", debianPeer(DEBIAN_CTL), ...args], { env, timeoutMs })
    : run(process.execPath, [join(BIN, "mandos-ctl"), ...args], { env, timeoutMs });
}

/** A hex key id that no real key has, for clients that never connect. */
export function fakeKeyId(n: number): string {
  return n.toString(16).toUpperCase().padStart(64, "A");
}

/** clients.conf with one client, "one", that never connects, checked every second by `checker`. */
export function oneClientConf(checker: string): string {
  return `[one]\nhost = one.example\nkey_id = ${fakeKeyId(1)}\nsecret = aGVsbG8=\nchecker = ${checker}\ninterval = PT1S\n`;
}

/** Keys made once with Debian's mandos-keygen, shared by the tests of one file. */
export interface ClientKeys {
  dir: string;
  /** A clients.conf section for these keys, named `name`, secret = passphrase. */
  section(name: string): string;
}

export async function makeKeys(dir: string, passphrase: string): Promise<ClientKeys> {
  mkdirSync(dir, { recursive: true });
  await makeDebianKeys(dir);
  const text = await debianPasswordSection(dir, passphrase, "KEYNAME");
  return { dir, section: (name) => text.replace("[KEYNAME]", `[${name}]`).replace(/^host = .*$/m, "host = localhost") };
}

/** Debian's mandos-client fetching its secret from ::1:port (it retries until served). */
export function fetchSecret(keys: ClientKeys, port: number, timeoutMs = 20_000): Promise<RunResult> {
  return startFetch(keys, port, timeoutMs).result;
}

export interface Fetch {
  result: Promise<RunResult>;
  /** Stop the client (it would retry a refusal until its timeout). */
  kill(): void;
}

export function startFetch(keys: ClientKeys, port: number, timeoutMs = 20_000): Fetch {
  const k = keys.dir;
  const child = spawn(
    debianPeer(DEBIAN_CLIENT),
    [
      `--connect=::1:${port}`,
      `--pubkey=${join(k, "pubkey.txt")}`,
      `--seckey=${join(k, "seckey.txt")}`,
      `--tls-pubkey=${join(k, "tls-pubkey.pem")}`,
      `--tls-privkey=${join(k, "tls-privkey.pem")}`,
      "--interface=none",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const out: Buffer[] = [];
  let err = "";
  child.stdout!.on("data", (d: Buffer) => out.push(d));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const result = new Promise<RunResult>((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    }),
  );
  return { result, kill: () => child.kill("SIGTERM") };
}

export function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, "utf8"));
}

/** A TCP port on ::1 (or `host`) that was free a moment ago (Debian's server refuses port 0). */
export async function freePort(host = "::1"): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host, port: 0 }, () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** The metrics URL a server announced in its log. */
export function metricsUrl(server: RunningServer): string {
  const m = /Serving metrics on (http:\S+)/.exec(server.output());
  assert.ok(m, `no metrics line in:\n${server.output()}`);
  return m[1]!;
}

/** The value of one sample (`name{labels}` exactly as written) in a scrape, or NaN if absent. */
export function metricSample(text: string, series: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return NaN;
}
