// Group commit: every change asks for a commit; those asked for while one
// is running fold into the next, so a storm of changes costs a handful of
// commits. `flushed()` settles once everything asked for so far is
// committed, with what that commit returned (the fleet's store: which
// client failed), or fails with the error of the commit that was to carry it.
// The state file's writer and the fleet's etcd store both commit this way.

interface Waiter<T> {
  resolve(result: T): void;
  reject(err: Error): void;
}

export class GroupCommit<T = void> {
  private dirty = false;
  private running = false;
  /** Settled when the commit now in progress (or the next, if none) ends. */
  private waitingForNext: Waiter<T>[] = [];
  private waitingForCurrent: Waiter<T>[] = [];

  /**
   * `commit` carries every change made before it was called; it throws if it
   * could not. `idle` is what flushed() gives when nothing is pending.
   */
  constructor(
    private readonly commit: () => Promise<T>,
    private readonly idle?: T,
  ) {}

  /** Something changed: commit it soon. */
  request(): void {
    this.dirty = true;
    if (!this.running) {
      this.running = true;
      setImmediate(() => void this.run());
    }
  }

  flushed(): Promise<T> {
    if (this.dirty) return new Promise((resolve, reject) => this.waitingForNext.push({ resolve, reject }));
    if (this.running) return new Promise((resolve, reject) => this.waitingForCurrent.push({ resolve, reject }));
    return Promise.resolve(this.idle as T);
  }

  private async run(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      this.waitingForCurrent = this.waitingForNext;
      this.waitingForNext = [];
      let failure: Error | null = null;
      let result = this.idle as T;
      try {
        result = await this.commit();
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      }
      for (const w of this.waitingForCurrent) {
        if (failure) w.reject(failure);
        else w.resolve(result);
      }
      this.waitingForCurrent = [];
    }
    this.running = false;
  }
}
