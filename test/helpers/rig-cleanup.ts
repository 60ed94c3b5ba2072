// What a test rig starts or creates outside its own process (child
// processes, network namespaces, directories, daemons), registered so that
// all of it is removed at process exit and on SIGINT/SIGTERM/SIGHUP, even
// when a test fails; and namespaces that earlier, killed runs left behind.
// Every rig creates and deletes its network namespaces here.
import { spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";

/** Run `ip` with a bound on its time; its stdout, or an Error with its stderr. */
export function ip(args: string[]): string {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")} failed: ${(r.stderr ?? "").trim() || r.error?.message}`);
  return r.stdout;
}

/** Kill whatever still runs inside (daemons that forked away too), then delete. */
export function deleteNamespace(ns: string): void {
  const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8", timeout: 10_000 }).stdout ?? "";
  for (const pid of pids.split(/\s+/).filter((p) => /^\d+$/.test(p))) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  spawnSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 10_000 });
}

export class RigCleanup {
  readonly processes = new Set<ChildProcess>();
  readonly namespaces = new Set<string>();
  readonly dirs = new Set<string>();
  /** Stopped after the processes, before the namespaces go (e.g. private buses). */
  readonly services = new Set<{ stop(): void }>();
  #hooked = false;
  #namespaceCount = 0;

  /** The rig names its namespaces `${prefix}-${process.pid}-…`. */
  constructor(readonly prefix: string) {}

  /** Kill every registered process, delete every namespace and directory (synchronous, idempotent). */
  readonly cleanup = (): void => {
    for (const child of this.processes) {
      try {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
    this.processes.clear();
    for (const s of this.services) s.stop();
    this.services.clear();
    for (const ns of this.namespaces) deleteNamespace(ns);
    this.namespaces.clear();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    this.dirs.clear();
  };

  /**
   * A fresh network namespace named `${prefix}-${pid}-${n}`, removed at
   * cleanup (stale ones of earlier runs are swept first); lo is brought up
   * unless `loopbackUp` is false.
   */
  createNamespace(opts: { loopbackUp?: boolean } = {}): string {
    this.hookExit();
    this.sweepStale();
    const name = `${this.prefix}-${process.pid}-${++this.#namespaceCount}`;
    ip(["netns", "add", name]);
    this.namespaces.add(name);
    if (opts.loopbackUp ?? true) ip(["-n", name, "link", "set", "lo", "up"]);
    return name;
  }

  /** Delete one namespace made by createNamespace now (idempotent). */
  removeNamespace(name: string): void {
    if (this.namespaces.delete(name)) deleteNamespace(name);
  }

  /** Clean up at exit and on the usual signals (once per rig). */
  hookExit(): void {
    if (this.#hooked) return;
    this.#hooked = true;
    process.on("exit", this.cleanup);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.once(sig, () => {
        this.cleanup();
        process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
      });
    }
  }

  /** Delete this rig's namespaces left behind by earlier runs whose process is gone. */
  sweepStale(): void {
    const r = spawnSync("ip", ["netns", "list"], { encoding: "utf8", timeout: 10_000 });
    for (const line of (r.stdout ?? "").split("\n")) {
      const name = line.split(" ")[0] ?? "";
      const m = new RegExp(`^${this.prefix}-(\\d+)-`).exec(name);
      if (m && !existsSync(`/proc/${m[1]}`)) deleteNamespace(name);
    }
  }
}
