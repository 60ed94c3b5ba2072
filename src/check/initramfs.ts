// Which initramfs images the next boot may use, and reading them with
// dracut's lsinitrd (it knows every compression and the early cpio), file
// by file into memory: nothing from an image is written to disk.
import { basename, dirname, join } from "node:path";
import { spawn } from "node:child_process";

export interface Image {
  path: string;
  release: string;
  /** Why it is checked: "running kernel", "default boot entry", or both. */
  roles: string[];
}

/**
 * The default boot entry's kernel release: Debian's kernel packages keep
 * the symbolic link /vmlinuz (or /boot/vmlinuz, with link_in_boot) at the
 * newest kernel, which GRUB's first entry (GRUB_DEFAULT=0) boots. The
 * links are looked for beside `bootDir` and in it. Null if neither is a
 * link to a vmlinuz-RELEASE file.
 */
export function defaultRelease(bootDir: string, readlink: (path: string) => string | null): string | null {
  for (const link of [join(dirname(bootDir), "vmlinuz"), join(bootDir, "vmlinuz")]) {
    const target = readlink(link);
    const m = target === null ? null : /^vmlinuz-(.+)$/.exec(basename(target));
    if (m) return m[1]!;
  }
  return null;
}

/** Pure: the images to check, one per kernel release, each with why. */
export function imagesToCheck(bootDir: string, running: string, byDefault: string | null): Image[] {
  const images: Image[] = [{ path: join(bootDir, `initrd.img-${running}`), release: running, roles: ["running kernel"] }];
  if (byDefault === running) images[0]!.roles.push("default boot entry");
  else if (byDefault !== null) {
    images.push({ path: join(bootDir, `initrd.img-${byDefault}`), release: byDefault, roles: ["default boot entry"] });
  }
  return images;
}

export interface Entry {
  mode: string;
  owner: string;
  size: number;
}

/** Pure: lsinitrd's listing (ls -l style lines) as path → mode, owner and size; links without their target. */
export function parseListing(text: string): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  for (const line of text.split("\n")) {
    const m = /^([-dlcbps][-rwxsStT]{9})\s+\d+\s+(\S+)\s+\S+\s+(\d+)\s+\w{3}\s+\d+\s+[\d:]+\s+(.+)$/.exec(line);
    if (!m) continue;
    entries.set(m[4]!.replace(/ -> .*$/, ""), { mode: m[1]!, owner: m[2]!, size: Number(m[3]) });
  }
  return entries;
}

/** No image file holds more than this of what we read (units, keys, the generator). */
const MAX_FILE_BYTES = 4 << 20;

function lsinitrd(args: string[], limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn("lsinitrd", args, { stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let length = 0;
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      length += d.length;
      if (length > limit) child.kill("SIGKILL");
      else out.push(d);
    });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", (e) => reject(new Error(`cannot run lsinitrd (dracut-core): ${e.message}`)));
    child.on("close", (code) => {
      const output = Buffer.concat(out);
      for (const d of out) d.fill(0);
      if (length > limit) return reject(new Error(`lsinitrd ${args.join(" ")}: more than ${limit} bytes`));
      if (code !== 0) return reject(new Error(`lsinitrd ${args.join(" ")} failed: ${err.trim().split("\n")[0] ?? `exit ${code}`}`));
      resolve(output);
    });
  });
}

export async function listImage(image: string): Promise<Map<string, Entry>> {
  return parseListing((await lsinitrd([image], 64 << 20)).toString());
}

/** One file of the image (a path as listed, without the leading "/"). */
export function readFromImage(image: string, path: string): Promise<Buffer> {
  return lsinitrd(["-f", path, image], MAX_FILE_BYTES);
}
