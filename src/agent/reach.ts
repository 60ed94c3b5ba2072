// Can the unprivileged user the client runs as reach a file? Decided from
// file modes alone (owner, group, other bits along the whole path, symbolic
// links followed), with the file system passed in, so that the agent can say
// at once which directory stops that user instead of retrying a client that
// can never start. POSIX ACLs are not read: they are rare where programs and
// keys live, and a false alarm here only names a path to look at.
import { closeSync, lstatSync, openSync, readlinkSync, readSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";

export interface Who {
  uid: number;
  gids: readonly number[];
}

export interface Inode {
  mode: number;
  uid: number;
  gid: number;
  isDirectory: boolean;
  isSymbolicLink: boolean;
}

export interface ReachFs {
  lstat(path: string): Inode;
  readlink(path: string): string;
}

export const hostFs: ReachFs = {
  lstat(path) {
    const s = lstatSync(path);
    return { mode: s.mode, uid: s.uid, gid: s.gid, isDirectory: s.isDirectory(), isSymbolicLink: s.isSymbolicLink() };
  },
  readlink: (path) => readlinkSync(path),
};

const R = 4;
const X = 1;
const MAX_LINKS = 40; // as the kernel's ELOOP limit

function allowed(i: Inode, who: Who, want: number): boolean {
  if (who.uid === 0) return true;
  const bits = i.uid === who.uid ? (i.mode >> 6) & 7 : who.gids.includes(i.gid) ? (i.mode >> 3) & 7 : i.mode & 7;
  return (bits & want) === want;
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, "0");

/**
 * Why `who` cannot open `path` for `want` (read, and execute for a
 * program), or null if it can. The reason names the first path component
 * that stops it, with its mode and owner.
 */
export function unreachableReason(path: string, who: Who, want: { read?: boolean; execute?: boolean }, fs: ReachFs = hostFs): string | null {
  if (!isAbsolute(path)) return null; // resolved through PATH by exec; nothing to check here
  let links = 0;
  const walk = (target: string): string | null => {
    const parts = target.split("/").filter((p) => p !== "");
    let at = "/";
    for (let n = 0; n < parts.length; n++) {
      const last = n === parts.length - 1;
      const next = resolve(at, parts[n]!);
      let i: Inode;
      try {
        i = fs.lstat(next);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "error";
        return code === "ENOENT" ? `${next} does not exist` : `${next}: ${code}`;
      }
      if (i.isSymbolicLink) {
        if (++links > MAX_LINKS) return `${next}: too many symbolic links`;
        const to = fs.readlink(next);
        const rest = parts.slice(n + 1).join("/");
        return walk(resolve(isAbsolute(to) ? to : resolve(dirname(next), to), rest));
      }
      if (!last) {
        if (!i.isDirectory) return `${next} is not a directory`;
        if (!allowed(i, who, X)) return `directory ${next} (mode ${octal(i.mode)}, owner ${i.uid}:${i.gid}) is not searchable by it`;
      } else {
        const need = (want.read ? R : 0) | (want.execute ? X : 0);
        const what = want.execute ? "executable" : "readable";
        if (need !== 0 && !allowed(i, who, need)) return `${next} (mode ${octal(i.mode)}, owner ${i.uid}:${i.gid}) is not ${what} by it`;
      }
      at = next;
    }
    return null;
  };
  return walk(resolve(path));
}

/**
 * The interpreter a script names on its "#!" line (what exec runs), or
 * null for a binary or an unreadable file.
 */
export function interpreterOf(path: string, read: (p: string) => Buffer = readHead): string | null {
  let head: Buffer;
  try {
    head = read(path);
  } catch {
    return null;
  }
  if (head[0] !== 0x23 || head[1] !== 0x21) return null;
  const line = head.toString("latin1", 2).split("\n")[0]!.trim();
  return line.split(/\s+/)[0] || null;
}

function readHead(path: string): Buffer {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(256);
    return b.subarray(0, readSync(fd, b, 0, b.length, 0));
  } finally {
    closeSync(fd);
  }
}
