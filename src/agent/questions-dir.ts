// Reading the agent directory: which "ask.*" files exist, and what each one
// holds. Files are opened with O_NOFOLLOW|O_NONBLOCK and judged by fstat()
// of the opened descriptor, so a symbolic link or a FIFO swapped in after a
// listing is never followed or blocked on; reads are capped.
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, type Stats } from "node:fs";
import { join } from "node:path";
import {
  isQuestionFileName,
  MAX_QUESTION_FILE_SIZE,
  parseQuestion,
  untrustedFileReason,
  type FileFacts,
  type Question,
} from "./question.js";

export function facts(st: Stats): FileFacts {
  return {
    isFile: st.isFile(),
    isSymbolicLink: st.isSymbolicLink(),
    isDirectory: st.isDirectory(),
    uid: st.uid,
    mode: st.mode,
    size: st.size,
  };
}

/** Changes whenever the file is replaced (rename), rewritten or re-permissioned. */
function identityOf(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.mode}:${st.uid}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** Names of question files in the directory (throws if it cannot be read). */
export function listQuestionFiles(dir: string): string[] {
  return readdirSync(dir).filter(isQuestionFileName).sort();
}

/** Cheap identity of a directory entry (lstat), or null once it is gone. */
export function currentIdentity(dir: string, name: string): string | null {
  try {
    return identityOf(lstatSync(join(dir, name)));
  } catch {
    return null;
  }
}

export type Examined =
  | { kind: "question"; identity: string; question: Question }
  | { kind: "bad"; identity: string; reason: string }
  | { kind: "gone" };

/** Open, check and parse one question file. Never throws. */
export function examineQuestionFile(dir: string, name: string, trustedUids: readonly number[]): Examined {
  const path = join(dir, name);
  let lst: Stats;
  try {
    lst = lstatSync(path);
  } catch {
    return { kind: "gone" };
  }
  const early = untrustedFileReason(facts(lst), trustedUids);
  if (early !== null) return { kind: "bad", identity: identityOf(lst), reason: early };

  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { kind: "gone" };
    if (code === "ELOOP") return { kind: "bad", identity: identityOf(lst), reason: "is a symbolic link" };
    return { kind: "bad", identity: identityOf(lst), reason: `cannot be opened (${code ?? "error"})` };
  }
  try {
    const st = fstatSync(fd);
    const identity = identityOf(st);
    const reason = untrustedFileReason(facts(st), trustedUids);
    if (reason !== null) return { kind: "bad", identity, reason };
    // One byte more than allowed tells a file that grew after fstat().
    const buf = Buffer.alloc(MAX_QUESTION_FILE_SIZE + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
      if (length === buf.length) return { kind: "bad", identity, reason: `is too large (over ${MAX_QUESTION_FILE_SIZE} bytes)` };
    }
    const text = buf.toString("utf8", 0, length);
    const parsed = parseQuestion(name, text);
    return parsed.ok ? { kind: "question", identity, question: parsed.value } : { kind: "bad", identity, reason: parsed.reason };
  } catch (err) {
    return { kind: "bad", identity: identityOf(lst), reason: `cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})` };
  } finally {
    closeSync(fd);
  }
}
