// Reading question files from a real directory: the effects around the
// pure checks (O_NOFOLLOW, O_NONBLOCK, capped reads).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { examineQuestionFile, listQuestionFiles } from "../../src/agent/questions-dir.js";
import { tempDir } from "../helpers/index.js";

const me = [0, process.getuid!()];
const VALID = "[Ask]\nPID=1\nSocket=/run/systemd/ask-password/sck.1\nId=cryptsetup:x\n";

test("lists only ask.* names", () => {
  using d = tempDir();
  for (const n of ["ask.a", "ask.b", "sck.a", ".#ask.c"]) writeFileSync(join(d.path, n), "");
  assert.deepEqual(listQuestionFiles(d.path), ["ask.a", "ask.b"]);
});

test("a valid file is a question; its identity is stable until it changes", () => {
  using d = tempDir();
  writeFileSync(join(d.path, "ask.a"), VALID, { mode: 0o644 });
  const a = examineQuestionFile(d.path, "ask.a", me);
  assert.equal(a.kind, "question");
  const b = examineQuestionFile(d.path, "ask.a", me);
  assert.equal(a.kind === "question" && b.kind === "question" && a.identity === b.identity, true);
  assert.equal(a.kind === "question" && a.question.socket, "/run/systemd/ask-password/sck.1");
});

test("a FIFO is refused without blocking; symlinks, directories, huge files too", () => {
  using d = tempDir();
  assert.equal(spawnSync("mkfifo", [join(d.path, "ask.fifo")]).status, 0);
  writeFileSync(join(d.path, "target"), VALID, { mode: 0o644 });
  symlinkSync(join(d.path, "target"), join(d.path, "ask.link"));
  mkdirSync(join(d.path, "ask.dir"));
  writeFileSync(join(d.path, "ask.huge"), Buffer.alloc(100_000, "A"), { mode: 0o644 });
  const reason = (n: string) => {
    const r = examineQuestionFile(d.path, n, me);
    assert.equal(r.kind, "bad", n);
    return r.kind === "bad" ? r.reason : "";
  };
  assert.match(reason("ask.fifo"), /not a regular file/);
  assert.match(reason("ask.link"), /symbolic link/);
  assert.match(reason("ask.dir"), /directory/);
  assert.match(reason("ask.huge"), /too large/);
  assert.deepEqual(examineQuestionFile(d.path, "ask.gone", me), { kind: "gone" });
});
