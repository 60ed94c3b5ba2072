// Group commit: every change asks for a commit; those asked for while one
// is running fold into the next, so a storm of changes costs a handful of
// commits. `flushed()` settles once everything asked for so far is
// committed, or fails with the error of the commit that was to carry it.
// The state file's writer and the fleet's etcd store both commit this way.

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class GroupCommit {
  private dirty = false;
  private running = false;
  /** Settled when the commit now in progress (or the next, if none) ends. */
  private waitingForNext: Waiter[] = [];
  private waitingForCurrent: Waiter[] = [];

  /** `commit` carries every change made before it was called; it throws if it could not. */
  constructor(private readonly commit: () => Promise<void>) {}

  /** Something changed: commit it soon. */
  request(): void {
    this.dirty = true;
    if (!this.running) {
      this.running = true;
      setImmediate(() => void this.run());
    }
  }

  flushed(): Promise<void> {
    if (this.dirty) return new Promise((resolve, reject) => this.waitingForNext.push({ resolve, reject }));
    if (this.running) return new Promise((resolve, reject) => this.waitingForCurrent.push({ resolve, reject }));
    return Promise.resolve();
  }

  private async run(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      this.waitingForCurrent = this.waitingForNext;
      this.waitingForNext = [];
      let failure: Error | null = null;
      try {
        await this.commit();
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      }
      for (const w of this.waitingForCurrent) {
        if (failure) w.reject(failure);
        else w.resolve();
      }
      this.waitingForCurrent = [];
    }
    this.running = false;
  }
}
