// The LUKS devices the initramfs unlocks, and testing the password on
// them with `cryptsetup open --test-passphrase` (nothing is opened): the
// password goes to cryptsetup's standard input only.
import { spawn } from "node:child_process";

export interface CrypttabEntry {
  name: string;
  source: string;
  /** The third field: "none", "-" or empty means a password is asked for. */
  keyFile: string;
  options: string[];
}

/** Pure: crypttab(5) lines as entries (comments and blank lines left out). */
export function parseCrypttab(text: string): CrypttabEntry[] {
  const entries: CrypttabEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [name, source, keyFile = "none", options = ""] = line.split(/\s+/);
    if (!name || !source) continue;
    entries.push({ name, source, keyFile, options: options.split(",").filter((o) => o !== "") });
  }
  return entries;
}

export interface Selection {
  /** Entries the initramfs asks a password for: these the secret must open. */
  unlock: CrypttabEntry[];
  /** Entries the initramfs unlocks with a key file instead (reported, not tested). */
  withKeyFile: CrypttabEntry[];
}

const asksPassword = (e: CrypttabEntry) => ["", "none", "-"].includes(e.keyFile);

/**
 * Pure: the entries of /etc/crypttab the initramfs unlocks: those dracut
 * copied into the image's own crypttab (the root device and what it
 * needs, in a host-only image), and those marked `initramfs` (Debian's
 * option) or `x-initrd.attach` (systemd's).
 */
export function selectDevices(entries: CrypttabEntry[], inImage: ReadonlySet<string>): Selection {
  const atBoot = entries.filter((e) => inImage.has(e.name) || e.options.includes("initramfs") || e.options.includes("x-initrd.attach"));
  return { unlock: atBoot.filter(asksPassword), withKeyFile: atBoot.filter((e) => !asksPassword(e)) };
}

/** Pure: the device path of a crypttab source (UUID=, PARTUUID=, LABEL=, PARTLABEL= or a path). */
export function sourcePath(source: string): string {
  const m = /^(UUID|PARTUUID|LABEL|PARTLABEL)=(.+)$/.exec(source);
  if (!m) return source;
  const dir = { UUID: "by-uuid", PARTUUID: "by-partuuid", LABEL: "by-label", PARTLABEL: "by-partlabel" }[m[1] as "UUID"];
  return `/dev/disk/${dir}/${m[2]!.replace(/^"(.*)"$/, "$1")}`;
}

export type Opens = { opens: true } | { opens: false; reason: string };

/** Whether `password` opens `device`; the caller wipes the password. */
export function testPassword(device: string, password: Buffer): Promise<Opens> {
  return new Promise((resolve) => {
    const child = spawn("cryptsetup", ["open", "--test-passphrase", "--key-file=-", device], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", (e) => resolve({ opens: false, reason: `cannot run cryptsetup: ${e.message}` }));
    child.stdin.on("error", () => {}); // cryptsetup may exit without reading (no such device)
    child.stdin.end(password);
    child.on("close", (code) => {
      if (code === 0) return resolve({ opens: true });
      // cryptsetup(8): 2 is "no permission (bad passphrase)".
      if (code === 2) return resolve({ opens: false, reason: "the password does not open it" });
      resolve({ opens: false, reason: err.trim().split("\n")[0] || `cryptsetup exited with ${code}` });
    });
  });
}
