// Group commit for the state file. Every change asks for a save; saves that
// arrive while one is being written are folded into the next write, which is
// asynchronous, so a reboot storm of a thousand clients costs a handful of
// fsyncs instead of a thousand serialised ones blocking the event loop.
// `flushed()` resolves once everything asked for so far is on disk: the
// D-Bus layer waits for it before acknowledging a call.
import { open, rename, unlink } from "node:fs/promises";
import { dirname, join, basename } from "node:path";

async function writeAtomic(path: string, text: string, seq: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${seq}.tmp`);
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

export class StateWriter {
  private dirty = false;
  private running = false;
  private lastWritten: string | null = null;
  private seq = 0;
  /** Resolved when the write now in progress (or the next, if none) ends. */
  private waitingForNext: (() => void)[] = [];
  private waitingForCurrent: (() => void)[] = [];

  constructor(
    private readonly path: string,
    private readonly snapshot: () => string,
    private readonly report: (err: unknown | null) => void,
  ) {}

  /** Something changed: write it soon. */
  request(): void {
    this.dirty = true;
    if (!this.running) {
      this.running = true;
      setImmediate(() => void this.run());
    }
  }

  /** Resolves when every change requested so far is durable (or failed and was reported). */
  flushed(): Promise<void> {
    if (this.dirty) return new Promise((r) => this.waitingForNext.push(r));
    if (this.running) return new Promise((r) => this.waitingForCurrent.push(r));
    return Promise.resolve();
  }

  private async run(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      this.waitingForCurrent = this.waitingForNext;
      this.waitingForNext = [];
      const text = this.snapshot();
      if (text !== this.lastWritten) {
        try {
          await writeAtomic(this.path, text, this.seq++);
          this.lastWritten = text;
          this.report(null);
        } catch (err) {
          this.report(err);
        }
      }
      for (const done of this.waitingForCurrent) done();
      this.waitingForCurrent = [];
    }
    this.running = false;
  }
}
