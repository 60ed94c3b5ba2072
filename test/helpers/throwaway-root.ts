// A throwaway root for package tests: an overlay of / (its changes in a
// tmpfs) in a private mount namespace, with /proc, /sys and /dev bound in
// and /run and /tmp empty. dpkg, maintainer scripts and the programs they
// install run chrooted there (nsenter into a holder process), so the host's
// files, dpkg database and services are never touched; killing the holder
// drops the namespace and every change with it. The test reads the root's
// files through /proc/PID/root.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { run, type RunResult } from "./index.js";

/** A file only the throwaway root has: every command checks for it first. */
const MARKER = ".mandos-throwaway-root";

// $1: an empty directory of the host, mounted over with the tmpfs.
const SETUP = String.raw`
set -e
base=$1
mount -t tmpfs tmpfs "$base"
mkdir "$base/upper" "$base/work" "$base/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
mount -t proc proc "$base/root/proc"
mount --rbind /sys "$base/root/sys"
mount --rbind /dev "$base/root/dev"
mount -t tmpfs tmpfs "$base/root/run"
mount -t tmpfs tmpfs "$base/root/tmp"
# Services are neither started nor stopped in here (invoke-rc.d and
# deb-systemd-invoke ask this policy).
printf '#!/bin/sh\nexit 101\n' > "$base/root/usr/sbin/policy-rc.d"
chmod 0755 "$base/root/usr/sbin/policy-rc.d"
: > "$base/root/${MARKER}"
# Ready only once chrooted: nsenter --root takes the holder's root as it is
# at that moment, and before the chroot that is the host's own /.
exec chroot "$base/root" sh -c 'echo ready; exec sleep infinity'
`;

export class ThrowawayRoot {
  private constructor(
    private readonly holder: ChildProcess,
    private readonly base: string,
  ) {}

  static start(): Promise<ThrowawayRoot> {
    const base = mkdtempSync(join(tmpdir(), "mandos-root-"));
    const holder = spawn("unshare", ["-m", "--propagation", "private", "bash", "-c", SETUP, "setup", base], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    holder.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    return new Promise((resolve, reject) => {
      holder.stdout!.once("data", () => resolve(new ThrowawayRoot(holder, base)));
      holder.once("exit", (code) => {
        rmSync(base, { recursive: true, force: true });
        reject(new Error(`throwaway root: setup exited ${code}: ${err.trim()}`));
      });
    });
  }

  /** A path of the root as seen from the host. */
  path(p: string): string {
    return `/proc/${this.holder.pid}/root${p}`;
  }

  private enter(command: string): string[] {
    // Never on the host: without the marker the command does not run.
    const guarded = `[ -e /${MARKER} ] || { echo "throwaway root: not inside it, refusing to run" >&2; exit 125; }\n${command}`;
    return ["-t", String(this.holder.pid), "-m", "-r", "-w", "sh", "-c", guarded];
  }

  /** Runs a shell command chrooted in the root (cwd /) to completion. */
  sh(command: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    return run("nsenter", this.enter(command), { timeoutMs: opts.timeoutMs ?? 120_000 });
  }

  /** Starts a shell command in the root; with "exec", the child is the program itself. */
  spawn(command: string): ChildProcess {
    return spawn("nsenter", this.enter(command), { stdio: ["ignore", "pipe", "pipe"] });
  }

  /** Copies host files into the root's /tmp; returns their paths in the root. */
  copyIn(files: string[]): string[] {
    return files.map((f) => {
      copyFileSync(f, this.path(`/tmp/${basename(f)}`));
      return `/tmp/${basename(f)}`;
    });
  }

  async close(): Promise<void> {
    if (this.holder.exitCode === null && this.holder.signalCode === null) {
      const exited = new Promise((r) => this.holder.once("exit", r));
      this.holder.kill("SIGKILL");
      await exited;
    }
    rmSync(this.base, { recursive: true, force: true });
  }
}
