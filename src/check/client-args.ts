// The client's command line exactly as the initramfs would run it: the
// ExecStart= of the agent's unit in the image, with the Environment= of
// the image's drop-ins and of the drop-in the image's own mandos-generator
// writes from the kernel command line, expanded as systemd expands them.
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { spawn } from "node:child_process";

export const SERVICE = "ask-password-mandos.service";

/** Pure: systemd's word splitting of a setting's value (quotes and backslash escapes). */
export function unitWords(value: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: string | null = null;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === "\\" && i + 1 < value.length) {
      word = (word ?? "") + value[++i]!;
    } else if (quote) {
      if (c === quote) quote = null;
      else word = (word ?? "") + c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= "";
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** Pure: the values of `key=` lines of unit files, in order ("%%" is a "%"). */
function settings(texts: readonly string[], key: string): string[] {
  const values: string[] = [];
  for (const text of texts) {
    for (const line of text.split("\n")) {
      const m = new RegExp(`^\\s*${key}\\s*=(.*)$`).exec(line);
      if (m) values.push(m[1]!.trim().replace(/%%/g, "%"));
    }
  }
  return values;
}

/** Pure: the environment set by Environment= lines of the unit and its drop-ins, in order. */
export function unitEnvironment(texts: readonly string[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const value of settings(texts, "Environment")) {
    if (value === "") env.clear();
    for (const word of unitWords(value)) {
      const eq = word.indexOf("=");
      if (eq > 0) env.set(word.slice(0, eq), word.slice(eq + 1));
    }
  }
  return env;
}

/**
 * Pure: the client's program and arguments in the unit's ExecStart= (the
 * words after the agent's "--"), with "$NAME" split on white space and
 * "${NAME}" kept as one word, as systemd does. Null if there is none.
 */
export function clientCommand(texts: readonly string[], env: ReadonlyMap<string, string>): string[] | null {
  const execStart = settings(texts, "ExecStart").filter((v) => v !== "").pop();
  if (execStart === undefined) return null;
  const words = unitWords(execStart);
  const dashes = words.indexOf("--");
  if (dashes < 0 || dashes === words.length - 1) return null;
  return words.slice(dashes + 1).flatMap((w) => {
    const split = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
    if (split) return (env.get(split[1]!) ?? "").split(/\s+/).filter((x) => x !== "");
    return [w.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env.get(name) ?? "")];
  });
}

export interface GeneratorOutput {
  /** "mandos=off": the generator masked the agent. */
  masked: boolean;
  /** Its drop-ins for the agent's service, by file name. */
  dropIns: Map<string, string>;
}

/** Run the image's mandos-generator (given as text) as systemd would in the initramfs, with `cmdline`. */
export async function runGenerator(script: Buffer, cmdline: string): Promise<GeneratorOutput> {
  const dir = mkdtempSync(join(tmpdir(), "mandos-check-"));
  try {
    const [normal, early, late] = ["normal", "early", "late"].map((d) => join(dir, d)) as [string, string, string];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn("sh", ["-s", normal, early, late], {
        // No hook directory: its units do not change the client's options.
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", SYSTEMD_IN_INITRD: "1", SYSTEMD_PROC_CMDLINE: cmdline, MANDOS_GENERATOR_HOOK_DIR: join(dir, "no-hooks") },
        stdio: ["pipe", "ignore", "inherit"],
      });
      child.on("error", reject);
      child.on("close", resolve);
      child.stdin.end(script);
    });
    if (code !== 0) throw new Error(`the initramfs's mandos-generator failed (exit ${code})`);
    let masked = false;
    try {
      masked = readlinkSync(join(early, SERVICE)) === "/dev/null";
    } catch {
      // not masked
    }
    const dropIns = new Map<string, string>();
    const dropInDir = join(normal, `${SERVICE}.d`);
    let names: string[] = [];
    try {
      names = readdirSync(dropInDir);
    } catch {
      // no drop-in
    }
    for (const name of names) dropIns.set(basename(name), readFileSync(join(dropInDir, name), "utf8"));
    return { masked, dropIns };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
