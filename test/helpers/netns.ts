// Network-namespace rig for Zeroconf tests: two namespaces joined by veth
// pairs with IPv6 link-local addresses (and optionally IPv4 link-local),
// programs run inside them, and a private D-Bus + avahi-daemon per
// namespace. All multicast happens inside the namespaces: the veths are
// created inside them directly, so the root namespace never sees a link.
// Everything created is registered and torn down at process exit, even when
// a test fails or the process is interrupted.
import { spawn, type ChildProcess } from "node:child_process";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RigCleanup, ip } from "./rig-cleanup.js";

const live = new RigCleanup("mzt");

/** Kill every registered process and delete every registered namespace (synchronous). */
export function cleanupAll(): void {
  live.cleanup();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface VethLink {
  /** Interface name in namespace A and in namespace B. */
  ifA: string;
  ifB: string;
  /** IPv6 link-local addresses (no zone). */
  llA: string;
  llB: string;
  /** IPv4 link-local addresses, if asked for. */
  v4A?: string;
  v4B?: string;
}

export interface NsPair {
  nsA: string;
  nsB: string;
  links: VethLink[];
  /** Add another veth pair between the two namespaces. */
  addLink(opts?: { ipv4?: boolean }): Promise<VethLink>;
  /** Delete both namespaces now (also done at exit). */
  destroy(): void;
}

/**
 * Two fresh namespaces (unique names per run) joined by a veth pair
 * vethA <-> vethB, up, with DAD disabled so link-local addresses are usable
 * at once.
 */
export async function createNsPair(opts: { ipv4?: boolean } = {}): Promise<NsPair> {
  const nsA = live.createNamespace();
  const links: VethLink[] = [];
  const addLink = async (o: { ipv4?: boolean } = {}): Promise<VethLink> => {
    const k = links.length;
    const ifA = k === 0 ? "vethA" : `vethA${k + 1}`;
    const ifB = k === 0 ? "vethB" : `vethB${k + 1}`;
    // Created inside A with its peer moved straight into B.
    ip(["-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB]);
    for (const [ns, ifn] of [
      [nsA, ifA],
      [nsB, ifB],
    ] as const) {
      ip(["netns", "exec", ns, "sysctl", "-q", "-w", `net.ipv6.conf.${ifn}.accept_dad=0`]);
      ip(["-n", ns, "link", "set", ifn, "up"]);
    }
    const link: VethLink = { ifA, ifB, llA: await linkLocal(nsA, ifA), llB: await linkLocal(nsB, ifB) };
    if (o.ipv4) {
      link.v4A = `169.254.${77 + k}.1`;
      link.v4B = `169.254.${77 + k}.2`;
      ip(["-n", nsA, "addr", "add", `${link.v4A}/24`, "dev", ifA]);
      ip(["-n", nsB, "addr", "add", `${link.v4B}/24`, "dev", ifB]);
    }
    links.push(link);
    return link;
  };
  let nsB = "";
  const destroy = () => {
    live.removeNamespace(nsA);
    live.removeNamespace(nsB);
  };
  try {
    nsB = live.createNamespace();
    await addLink(opts);
  } catch (err) {
    destroy();
    throw err;
  }
  return { nsA, nsB, links, addLink, destroy };
}

/** Wait until the interface has a usable (non-tentative) link-local address. */
async function linkLocal(ns: string, ifn: string): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const out = ip(["-n", ns, "-6", "addr", "show", "dev", ifn, "scope", "link"]);
    const m = /inet6 (fe80:[0-9a-f:]+)\/64 scope link(?! tentative)/.exec(out);
    const up = ip(["-n", ns, "link", "show", ifn]).includes("LOWER_UP");
    if (m && up && !out.includes("tentative")) return m[1]!;
    if (Date.now() > deadline) throw new Error(`no link-local address on ${ifn} in ${ns}`);
    await sleep(50);
  }
}

export interface SpawnOpts {
  env?: NodeJS.ProcessEnv;
  /** Hard kill after this long (default 60 s). */
  timeoutMs?: number;
  /** Run in a private mount namespace with a fresh tmpfs on /run (for avahi-daemon). */
  privateRun?: boolean;
}

/** A program running inside a namespace; stdout is collected line by line. */
export class NsProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  /** All of stdout, including a last line without a newline. */
  stdout = "";
  stderr = "";
  private waiters: Array<() => void> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(ns: string, cmd: string, args: string[], opts: SpawnOpts = {}) {
    live.hookExit();
    const inner = opts.privateRun
      ? ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs tmpfs /run && exec "$@"', "sh", cmd, ...args]
      : [cmd, ...args];
    this.child = spawn("ip", ["netns", "exec", ns, ...inner], {
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    live.processes.add(this.child);
    let partial = "";
    this.child.stdout!.setEncoding("utf8");
    this.child.stdout!.on("data", (d: string) => {
      this.stdout += d;
      partial += d;
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      this.lines.push(...parts);
      this.wake();
    });
    this.child.stderr!.setEncoding("utf8");
    this.child.stderr!.on("data", (d: string) => {
      // Keep the tail only: some programs are chatty in debug mode.
      this.stderr = (this.stderr + d).slice(-200_000);
      this.wake();
    });
    this.child.stdin!.on("error", () => {});
    const timer = setTimeout(() => this.child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code, signal) => {
        clearTimeout(timer);
        live.processes.delete(this.child);
        this.wake();
        resolve({ code, signal });
      });
      this.child.on("error", () => {
        clearTimeout(timer);
        live.processes.delete(this.child);
        this.wake();
        resolve({ code: null, signal: null });
      });
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Wait until `check` returns a value (re-checked on every output), or fail after timeoutMs. */
  async waitUntil<T>(what: string, check: () => T | undefined | null | false, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v) return v;
      if (!this.running) throw new Error(`${what}: process exited first; stderr: ${this.stderr.slice(-2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: timed out after ${timeoutMs} ms; stdout: ${this.lines.slice(-20).join(" | ")}; stderr: ${this.stderr.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** JSON objects printed one per line on stdout. */
  events(): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = [];
    for (const l of this.lines) {
      if (!l.startsWith("{")) continue;
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // Not ours.
      }
    }
    return out;
  }

  /** Wait for a JSON event matching `pred`. */
  waitEvent(what: string, pred: (e: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
    return this.waitUntil(what, () => this.events().find(pred), timeoutMs);
  }

  send(line: string): void {
    if (this.running) this.child.stdin!.write(line + "\n");
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when gone. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * What one test starts, for `t.after` to stop (processes first, then
 * avahi-daemons) and whose namespaces it then deletes, even on failure.
 */
export function testRig(t: { after(fn: () => unknown): void }) {
  const procs: NsProcess[] = [];
  const daemons: AvahiInNs[] = [];
  const pairs: NsPair[] = [];
  t.after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await Promise.all(daemons.map((d) => d.stop()));
    for (const p of pairs) p.destroy();
  });
  return {
    keep<T extends NsProcess>(p: T): T {
      procs.push(p);
      return p;
    },
    async pair(opts: { ipv4?: boolean } = {}) {
      const p = await createNsPair(opts);
      pairs.push(p);
      return p;
    },
    async avahi(ns: string, dir: string, hostName: string, iface: string) {
      const a = await startAvahiInNs(ns, { dir, hostName, interfaces: [iface] });
      daemons.push(a);
      return a;
    },
    /** No child crashed or reported an uncaught exception. */
    assertHealthy() {
      for (const p of procs) {
        const bad = p.events().filter((e) => e.event === "uncaught");
        assert.deepEqual(bad, [], `uncaught exception in a child: ${JSON.stringify(bad)}`);
      }
    },
  };
}

/** Run `node --input-type=module -e code` inside a namespace. */
export function nodeInNs(ns: string, code: string, opts: SpawnOpts = {}): NsProcess {
  return new NsProcess(ns, process.execPath, ["--input-type=module", "-e", code], opts);
}

export function spawnInNs(ns: string, cmd: string, args: string[], opts: SpawnOpts = {}): NsProcess {
  return new NsProcess(ns, cmd, args, opts);
}

export interface PrivateBus {
  address: string;
  stop(): Promise<void>;
}

/**
 * A private system-type D-Bus daemon on a socket in `dir`, permissive so
 * avahi-daemon may own its name. Unix sockets in the file system are
 * reachable from any network namespace, so one bus can serve a namespace.
 */
export async function startPrivateBus(dir: string): Promise<PrivateBus> {
  live.hookExit();
  mkdirSync(dir, { recursive: true });
  // The socket gets a world-searchable directory of its own: Debian's
  // mandos server drops root before it connects to the bus.
  const socketDir = mkdtempSync(join(tmpdir(), "mandos-bus-"));
  chmodSync(socketDir, 0o755);
  live.dirs.add(socketDir);
  const socket = join(socketDir, "socket");
  const conf = join(dir, "bus.conf");
  writeFileSync(
    conf,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`,
  );
  const child = spawn("dbus-daemon", [`--config-file=${conf}`, "--nofork", "--print-address=1"], { stdio: ["ignore", "pipe", "pipe"] });
  live.processes.add(child);
  // A bound on its life even if a test forgets to stop it.
  setTimeout(() => child.kill("SIGKILL"), 600_000).unref();
  const exited = new Promise<void>((r) => child.on("close", () => r()));
  child.on("close", () => live.processes.delete(child));
  const address = await new Promise<string>((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`dbus-daemon did not start: ${err}`)), 10_000);
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) {
        clearTimeout(timer);
        resolve(out.split("\n")[0]!.trim());
      }
    });
    child.on("close", () => {
      clearTimeout(timer);
      reject(new Error(`dbus-daemon exited: ${err}`));
    });
  });
  return {
    address,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      rmSync(socketDir, { recursive: true, force: true });
      live.dirs.delete(socketDir);
    },
  };
}

export interface AvahiInNs {
  proc: NsProcess;
  busAddress: string;
  hostName: string;
  stop(): Promise<void>;
}

/**
 * avahi-daemon inside a namespace, on its own private D-Bus. It runs in a
 * private mount namespace with a tmpfs on /run, so its pid file and socket
 * (/run/avahi-daemon, fixed at build time) cannot clash with the machine's
 * avahi-daemon or other namespaces'. Root is kept (--no-drop-root) and no
 * chroot, so no avahi user setup is needed.
 */
export async function startAvahiInNs(
  ns: string,
  opts: { dir: string; hostName: string; interfaces: string[]; bus?: PrivateBus },
): Promise<AvahiInNs> {
  mkdirSync(opts.dir, { recursive: true });
  const bus = opts.bus ?? (await startPrivateBus(join(opts.dir, "bus")));
  const conf = join(opts.dir, "avahi-daemon.conf");
  writeFileSync(
    conf,
    [
      "[server]",
      `host-name=${opts.hostName}`,
      "use-ipv4=yes",
      "use-ipv6=yes",
      `allow-interfaces=${opts.interfaces.join(",")}`,
      "enable-dbus=yes",
      "ratelimit-interval-usec=1000000",
      "ratelimit-burst=1000",
      "[wide-area]",
      "enable-wide-area=no",
      "[publish]",
      "publish-hinfo=no",
      "publish-workstation=no",
      "",
    ].join("\n"),
  );
  const proc = spawnInNs(
    ns,
    "sh",
    ["-c", 'mkdir -p /run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title -f "$0"', conf],
    { privateRun: true, env: { DBUS_SYSTEM_BUS_ADDRESS: bus.address }, timeoutMs: 300_000 },
  );
  try {
    await proc.waitUntil("avahi-daemon start", () => proc.stderr.includes("Server startup complete"), 15_000);
  } catch (err) {
    await proc.stop();
    if (!opts.bus) await bus.stop();
    throw err;
  }
  return {
    proc,
    busAddress: bus.address,
    hostName: opts.hostName,
    async stop() {
      await proc.stop();
      if (!opts.bus) await bus.stop();
    },
  };
}

// ---------------------------------------------------------------------------
// Zeroconf child programs: our announce() and browse() run as separate
// processes inside the namespaces, configured through ZC_CFG (JSON), and
// report events as JSON lines on stdout. "stop" on stdin (or SIGTERM) stops
// them cleanly (goodbye packets); SIGKILL stops them without.

/** Options for a child announcer; `listen` also opens a TCP listener on the port. */
export interface AnnouncerConfig {
  name?: string;
  port: number;
  interfaceName?: string;
  protocol?: "ipv6" | "ipv4" | "any";
  backend?: "auto" | "avahi" | "builtin";
  maxRenames?: number;
  listen?: boolean;
}

export interface BrowserConfig {
  interfaces?: string[];
  protocols?: Array<"ipv6" | "ipv4">;
  queryIntervalMs?: number;
  missedQueriesBeforeRemoval?: number;
}

function childPrelude(dist: string): string {
  return `
const { announce, browse } = await import(${JSON.stringify(dist + "/src/zeroconf/index.js")});
const { makeLogger } = await import(${JSON.stringify(dist + "/src/cli/log.js")});
const net = await import("node:net");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
const cfg = JSON.parse(process.env.ZC_CFG);
process.on("uncaughtException", (e) => { out({ event: "uncaught", message: String(e && e.stack || e) }); process.exit(70); });
process.on("unhandledRejection", (e) => { out({ event: "uncaught", message: String(e && e.stack || e) }); process.exit(70); });
`;
}

export function startAnnouncer(ns: string, dist: string, cfg: AnnouncerConfig, env: NodeJS.ProcessEnv = {}): NsProcess {
  const code = `${childPrelude(dist)}
const log = makeLogger("announce", { level: "debug" });
let server;
if (cfg.listen) {
  server = net.createServer((c) => {
    c.on("error", () => {});
    c.once("data", (d) => { out({ event: "connection", remote: c.remoteAddress, data: d.toString("latin1") }); c.destroy(); });
  });
  await new Promise((r) => server.listen(cfg.port, "::", r));
}
try {
  const { listen, ...opts } = cfg;
  const a = await announce({ ...opts, log,
    onRename: (name) => out({ event: "rename", name }),
    onError: (e) => out({ event: "fatal", message: e.message }) });
  out({ event: "announced", name: a.name, via: a.via });
  let stopping = false;
  const stop = async () => { if (stopping) return; stopping = true; await a.stop(); out({ event: "stopped", name: a.name }); server?.close(); process.exit(0); };
  process.stdin.on("data", (d) => { if (String(d).includes("stop")) void stop(); });
  process.on("SIGTERM", () => void stop());
} catch (e) {
  out({ event: "error", message: String(e && e.message || e) });
  process.exit(2);
}
`;
  return nodeInNs(ns, code, { env: { ...env, ZC_CFG: JSON.stringify(cfg) }, timeoutMs: 180_000 });
}

export function startBrowser(ns: string, dist: string, cfg: BrowserConfig, env: NodeJS.ProcessEnv = {}): NsProcess {
  const code = `${childPrelude(dist)}
const log = makeLogger("browse", { level: "debug" });
const b = browse({ ...cfg, log,
  onFound: (s) => out({ event: "found", ...s }),
  onRemoved: (s) => out({ event: "removed", ...s }) });
out({ event: "browsing" });
const stop = () => { b.stop(); out({ event: "stopped" }); process.exit(0); };
process.stdin.on("data", (d) => { if (String(d).includes("stop")) stop(); });
process.on("SIGTERM", stop);
`;
  return nodeInNs(ns, code, { env: { ...env, ZC_CFG: JSON.stringify(cfg) }, timeoutMs: 180_000 });
}
