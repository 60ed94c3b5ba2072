// Which user can reach which file, decided from modes along the path: the
// agent's check before it starts the client as an unprivileged user.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { interpreterOf, unreachableReason, type Inode, type ReachFs } from "../../src/agent/reach.js";
import { tempDir } from "../helpers/index.js";

const nobody = { uid: 65534, gids: [65534] };

/** A file system of explicit inodes: path → inode (and link target). */
function fakeFs(entries: Record<string, Partial<Inode> & { link?: string }>): ReachFs {
  return {
    lstat(path) {
      const e = entries[path];
      if (!e) throw Object.assign(new Error("no"), { code: "ENOENT" });
      return { mode: 0o755, uid: 0, gid: 0, isDirectory: false, isSymbolicLink: e.link !== undefined, ...e };
    },
    readlink: (path) => entries[path]!.link!,
  };
}

const dir = (mode: number, more: Partial<Inode> = {}) => ({ mode, isDirectory: true, ...more });

test("a directory without search permission stops the user, and is named", () => {
  const fs = fakeFs({ "/root": dir(0o700), "/root/m": dir(0o755), "/root/m/client": { mode: 0o755 } });
  assert.equal(unreachableReason("/root/m/client", nobody, { read: true, execute: true }, fs), "directory /root (mode 0700, owner 0:0) is not searchable by it");
  assert.equal(unreachableReason("/root/m/client", { uid: 0, gids: [0] }, { read: true, execute: true }, fs), null);
});

test("owner, group and other bits each decide for their own", () => {
  const fs = fakeFs({ "/k": dir(0o750, { gid: 65534 }), "/k/seckey": { mode: 0o640, uid: 65534, gid: 0 }, "/k/other": { mode: 0o604 } });
  assert.equal(unreachableReason("/k/seckey", nobody, { read: true }, fs), null); // group may search, owner may read
  assert.equal(unreachableReason("/k/other", nobody, { read: true }, fs), null);
  assert.equal(unreachableReason("/k/other", { uid: 1, gids: [1] }, { read: true }, fs), "directory /k (mode 0750, owner 0:65534) is not searchable by it");
  assert.equal(unreachableReason("/k/other", nobody, { read: true, execute: true }, fs), "/k/other (mode 0604, owner 0:0) is not executable by it");
});

test("symbolic links are followed, relative and absolute", () => {
  const fs = fakeFs({
    "/usr": dir(0o755),
    "/usr/bin": dir(0o755),
    "/usr/bin/client": { link: "../../root/m/client" },
    "/opt": { link: "/root/m" },
    "/root": dir(0o700),
    "/root/m": dir(0o755),
    "/root/m/client": { mode: 0o755 },
  });
  assert.match(unreachableReason("/usr/bin/client", nobody, { execute: true }, fs)!, /^directory \/root /);
  assert.match(unreachableReason("/opt/client", nobody, { execute: true }, fs)!, /^directory \/root /);
  const loop = fakeFs({ "/a": { link: "/b" }, "/b": { link: "/a" } });
  assert.equal(unreachableReason("/a", nobody, { read: true }, loop), "/a: too many symbolic links");
});

test("a missing file or a file used as a directory is said plainly", () => {
  const fs = fakeFs({ "/x": { mode: 0o644 } });
  assert.equal(unreachableReason("/y", nobody, { read: true }, fs), "/y does not exist");
  assert.equal(unreachableReason("/x/z", nobody, { read: true }, fs), "/x is not a directory");
});

test("on the real file system, and the interpreter of a script", () => {
  using work = tempDir();
  chmodSync(work.path, 0o755);
  const locked = join(work.path, "locked");
  mkdirSync(locked, { mode: 0o700 });
  const script = join(locked, "client");
  writeFileSync(script, "#!/usr/bin/env node\nimport './x.js';\n", { mode: 0o755 });
  symlinkSync(script, join(work.path, "link"));
  assert.equal(unreachableReason(join(work.path, "link"), nobody, { execute: true }), `directory ${locked} (mode 0700, owner ${process.getuid!()}:${process.getgid!()}) is not searchable by it`);
  chmodSync(locked, 0o755);
  assert.equal(unreachableReason(join(work.path, "link"), nobody, { read: true, execute: true }), null);
  assert.equal(interpreterOf(script), "/usr/bin/env");
  assert.equal(interpreterOf("/bin/sh"), null); // a binary
  assert.equal(interpreterOf(join(work.path, "missing")), null);
});
