// The figures of `npm run bench:boot` (bench/boot.ts), from text alone: what
// one boot's console shows, medians and ratios over the runs, the targets of
// issue 12, and the table. No effects here, so it is tested without a VM
// (test/boot/console.test.ts).
import { stepsSeen } from "../test/helpers/boot.js";
import { median } from "./common.js";

/** What one boot's console shows, in guest seconds (null: not seen). */
export interface BootFigures {
  /** Kernel start → systemd mounted the root file system on /sysroot (the guest's own clock). */
  kernelToRoot: number | null;
  /** The rig's question marker → systemd-cryptsetup finished (the LUKS volume open). */
  questionToUnlocked: number | null;
  /**
   * Its last part, which no agent can shorten: systemd-cryptsetup's "Set
   * cipher" line (printed as it starts opening the volume with the password
   * it was given) → the unit finished.
   */
  openingToUnlocked: number | null;
  /** CPU time systemd reports for ask-password-mandos.service when it stops. */
  agentCpu: number | null;
}

/** A systemd time span as it prints them ("14.660s", "1min 2.345s", "987ms", "1h 2min"), in seconds. */
export function parseTimespan(text: string): number | null {
  const units: Record<string, number> = { h: 3600, min: 60, s: 1, ms: 1e-3, us: 1e-6, "µs": 1e-6 };
  let total = 0;
  let parts = 0;
  for (const word of text.trim().split(/\s+/)) {
    const m = /^(\d+(?:\.\d+)?)(h|min|s|ms|us|µs)$/.exec(word);
    if (!m) return null;
    total += Number(m[1]) * units[m[2]!]!;
    parts++;
  }
  return parts > 0 ? total : null;
}

export function bootFigures(console: string): BootFigures {
  const seen = stepsSeen(console);
  const at = (key: string) => seen.get(key)?.seconds ?? null;
  const kernel = at("kernel");
  const mounted = at("sysroot");
  const question = at("question");
  const unlocked = at("unlocked");
  const cpu = /ask-password-mandos\.service: Consumed (.+?) CPU time/.exec(console);
  const opening = /^\[\s*(\d+\.\d+)\] systemd-cryptsetup\[\d+\]: Set cipher /m.exec(console);
  return {
    kernelToRoot: kernel !== null && mounted !== null ? mounted - kernel : null,
    questionToUnlocked: question !== null && unlocked !== null ? unlocked - question : null,
    openingToUnlocked: opening && unlocked !== null ? unlocked - Number(opening[1]) : null,
    agentCpu: cpu ? parseTimespan(cpu[1]!) : null,
  };
}

/** Median of the values seen, or null if no run showed one. */
export function medianOf(values: (number | null)[]): number | null {
  const xs = values.filter((x): x is number => x !== null);
  return xs.length > 0 ? median(xs) : null;
}

export interface Growth {
  gzip: number;
  zstd: number;
}

export interface Target {
  what: string;
  /** "ratio": ours/Debian's at most `limit`; "growth": ours at most `limit` bytes. */
  kind: "ratio" | "growth";
  limit: number;
  value: number | null;
}

export interface BenchResult {
  runs: { ours: BootFigures[]; debian: BootFigures[] };
  growth: { ours: Growth; debian: Growth } | null;
}

const MB = 1e6;

/** The targets of issue 12 for this result (value null: not measured). */
export function targets(r: BenchResult): Target[] {
  const ratio = (key: keyof BootFigures) => {
    const ours = medianOf(r.runs.ours.map((f) => f[key]));
    const theirs = medianOf(r.runs.debian.map((f) => f[key]));
    return ours !== null && theirs !== null && theirs > 0 ? ours / theirs : null;
  };
  return [
    { what: "question → unlocked", kind: "ratio", limit: 0.25, value: ratio("questionToUnlocked") },
    { what: "kernel → root mounted", kind: "ratio", limit: 0.95, value: ratio("kernelToRoot") },
    { what: "initramfs growth, zstd -19", kind: "growth", limit: 26 * MB, value: r.growth?.ours.zstd ?? null },
    { what: "initramfs growth, gzip -9", kind: "growth", limit: 34 * MB, value: r.growth?.ours.gzip ?? null },
  ];
}

export function met(t: Target): boolean | null {
  return t.value === null ? null : t.value <= t.limit;
}

const seconds = (x: number | null) => (x === null ? "—" : `${x.toFixed(1)} s`);
const megabytes = (x: number) => `${x >= 0 ? "+" : ""}${(x / MB).toFixed(1)} MB`;
const times = (x: number | null) => (x === null ? "—" : `${x.toFixed(2)}×`);

/** The benchmark's report: medians, ratios, growth, and each target met or not (Markdown tables). */
export function reportTable(r: BenchResult): string {
  const lines: string[] = [];
  const row = (cells: string[]) => lines.push(`| ${cells.join(" | ")} |`);
  row(["", "ours (90mandos-ts)", "Debian's 90mandos", "ours / Debian's"]);
  row(["---", "---", "---", "---"]);
  const timed: [string, keyof BootFigures][] = [
    ["question → LUKS unlocked", "questionToUnlocked"],
    ["of which systemd-cryptsetup opening the volume", "openingToUnlocked"],
    ["kernel start → root mounted", "kernelToRoot"],
    ["CPU of ask-password-mandos.service", "agentCpu"],
  ];
  for (const [label, key] of timed) {
    const ours = medianOf(r.runs.ours.map((f) => f[key]));
    const theirs = medianOf(r.runs.debian.map((f) => f[key]));
    row([`${label} (median)`, seconds(ours), seconds(theirs), times(ours !== null && theirs !== null && theirs > 0 ? ours / theirs : null)]);
  }
  if (r.growth) {
    const { ours, debian } = r.growth;
    row(["initramfs growth, gzip -9", megabytes(ours.gzip), megabytes(debian.gzip), times(ours.gzip / debian.gzip)]);
    row(["initramfs growth, zstd -19", megabytes(ours.zstd), megabytes(debian.zstd), times(ours.zstd / debian.zstd)]);
  }
  lines.push("");
  row(["target", "limit", "measured", "met"]);
  row(["---", "---", "---", "---"]);
  for (const t of targets(r)) {
    const limit = t.kind === "ratio" ? `≤ ${t.limit}× Debian's` : `≤ ${megabytes(t.limit)}`;
    const value = t.value === null ? "—" : t.kind === "ratio" ? times(t.value) : megabytes(t.value);
    const ok = met(t);
    row([t.what, limit, value, ok === null ? "not measured" : ok ? "met" : "**not met**"]);
  }
  const floor = openingFloor(r);
  if (floor !== null) {
    lines.push("");
    lines.push(
      `Question → unlocked cannot be shorter than systemd-cryptsetup opening the volume after the answer: ` +
        `ours took ${seconds(floor.opening)} (median), ${times(floor.ratio)} Debian's median question → unlocked.`,
    );
  }
  return lines.join("\n");
}

/** Our median of systemd-cryptsetup's own part, and what it alone is of Debian's question → unlocked. */
export function openingFloor(r: BenchResult): { opening: number; ratio: number } | null {
  const opening = medianOf(r.runs.ours.map((f) => f.openingToUnlocked));
  const theirs = medianOf(r.runs.debian.map((f) => f.questionToUnlocked));
  return opening !== null && theirs !== null && theirs > 0 ? { opening, ratio: opening / theirs } : null;
}
