// Which servers to try and when: every known server is tried as soon as it
// is known, several at once (a server waiting for approval, or stalling,
// must not hold up the others), and retried `retryMs` after each failure,
// until one secret decrypts. Mandos tries servers one by one; this never
// does worse and is faster when one of them is slow.
import { describeServer, type ServerAddress } from "./fetch.js";

export interface Attempt {
  (server: ServerAddress, signal: AbortSignal): Promise<Buffer>;
}

export interface PoolEffects {
  attempt: Attempt;
  setTimer(ms: number, fn: () => void): () => void;
  onFailure(server: ServerAddress, err: unknown): void;
}

interface Entry {
  server: ServerAddress;
  running: AbortController | null;
  cancelRetry: (() => void) | null;
  removed: boolean;
}

export class ServerPool {
  private readonly entries = new Map<string, Entry>();
  private done = false;
  readonly result: Promise<Buffer>;
  private resolve!: (secret: Buffer) => void;

  constructor(
    private readonly retryMs: number,
    private readonly fx: PoolEffects,
  ) {
    this.result = new Promise((r) => (this.resolve = r));
  }

  add(server: ServerAddress): void {
    const key = describeServer(server);
    const known = this.entries.get(key);
    if (known) {
      known.removed = false;
      return;
    }
    const entry: Entry = { server, running: null, cancelRetry: null, removed: false };
    this.entries.set(key, entry);
    this.start(entry);
  }

  /** A server that went away is not retried (a running attempt may still finish). */
  remove(server: ServerAddress): void {
    const entry = this.entries.get(describeServer(server));
    if (!entry) return;
    entry.removed = true;
    entry.cancelRetry?.();
    entry.cancelRetry = null;
    if (!entry.running) this.entries.delete(describeServer(server));
  }

  /** Stop everything: no new attempts, running ones are aborted. */
  stop(): void {
    this.done = true;
    for (const e of this.entries.values()) {
      e.running?.abort();
      e.cancelRetry?.();
    }
    this.entries.clear();
  }

  private start(entry: Entry): void {
    if (this.done || entry.removed || entry.running) return;
    entry.cancelRetry = null;
    const controller = new AbortController();
    entry.running = controller;
    this.fx.attempt(entry.server, controller.signal).then(
      (secret) => {
        entry.running = null;
        if (this.done) {
          secret.fill(0);
          return;
        }
        this.stop();
        this.resolve(secret);
      },
      (err: unknown) => {
        entry.running = null;
        if (this.done) return;
        this.fx.onFailure(entry.server, err);
        if (entry.removed) {
          this.entries.delete(describeServer(entry.server));
          return;
        }
        entry.cancelRetry = this.fx.setTimer(this.retryMs, () => this.start(entry));
      },
    );
  }
}
