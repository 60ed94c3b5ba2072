// Group commit for the state file. Every change asks for a save; saves that
// arrive while one is being written are folded into the next write, which is
// asynchronous, so a reboot storm of a thousand clients costs a handful of
// fsyncs instead of a thousand serialised ones blocking the event loop.
// `flushed()` settles once everything asked for so far is on disk, or fails
// with the write that should have carried it: the D-Bus layer waits for it
// before acknowledging a call, and answers an error when the save failed.
import { readdirSync, unlinkSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { dirname, join, basename } from "node:path";
import { GroupCommit } from "./group-commit.js";
import { stopwatch } from "./events.js";

/** The temporary file a write goes through: ".clients.json.PID.SEQ.tmp" beside the state file. */
function temporaryPath(path: string, pid: number, seq: number): string {
  return join(dirname(path), `.${basename(path)}.${pid}.${seq}.tmp`);
}

function isTemporaryOf(path: string, name: string): boolean {
  const prefix = `.${basename(path)}.`;
  return name.startsWith(prefix) && /^\d+\.\d+\.tmp$/.test(name.slice(prefix.length));
}

/**
 * Remove the temporary files a writer killed mid-save (kill -9, power loss)
 * left beside `path`; returns their names. Call before any writer starts.
 */
export function removeStaleTemporaries(path: string): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(dirname(path))) {
    if (!isTemporaryOf(path, name)) continue;
    unlinkSync(join(dirname(path), name));
    removed.push(name);
  }
  return removed;
}

async function writeAtomic(path: string, text: string, seq: number): Promise<void> {
  const tmp = temporaryPath(path, process.pid, seq);
  const file = await open(tmp, "w", 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } catch (err) {
    await file.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await file.close();
  await rename(tmp, path);
  // The rename itself must reach the disk too.
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** A save that failed: names the state file and the errno, never the contents. */
export class StateSaveError extends Error {
  override name = "StateSaveError";
  constructor(
    readonly path: string,
    override readonly cause: unknown,
  ) {
    super(`cannot save ${path}: ${(cause as NodeJS.ErrnoException)?.code ?? (cause as Error)?.message ?? String(cause)}`);
  }
}

export class StateWriter {
  private lastWritten: string | null = null;
  private seq = 0;
  private readonly group = new GroupCommit(() => this.write());

  constructor(
    private readonly path: string,
    private readonly snapshot: () => string,
    /** After each write: its failure or null, and how long it took. */
    private readonly report: (err: StateSaveError | null, seconds: number) => void,
  ) {}

  /** Something changed: write it soon. */
  request(): void {
    this.group.request();
  }

  /**
   * Resolves when every change requested so far is durable; rejects with a
   * StateSaveError when the write that was to carry them failed.
   */
  flushed(): Promise<void> {
    return this.group.flushed();
  }

  private async write(): Promise<void> {
    const text = this.snapshot();
    // Unchanged since the last successful write: already on disk.
    if (text === this.lastWritten) return;
    const seconds = stopwatch();
    try {
      await writeAtomic(this.path, text, this.seq++);
      this.lastWritten = text;
    } catch (err) {
      const failure = new StateSaveError(this.path, err);
      this.report(failure, seconds());
      throw failure;
    }
    this.report(null, seconds());
  }
}
