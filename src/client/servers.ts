// Which servers to try and when: every known server is tried as soon as it
// is known, several at once (a server waiting for approval, or stalling,
// must not hold up the others), and retried `retryMs` after each failure,
// until the secrets received make the password (one secret, or K shares of
// a split password). Mandos tries servers one by one; this never does worse
// and is faster when one of them is slow. A server whose secret decrypted
// is not asked again, unless every known server has answered without
// making the password (a wrong share somewhere): then, `retryMs` later,
// what they gave is forgotten and all are asked again.
import { describeServer, type ServerAddress } from "./fetch.js";

export interface Attempt {
  (server: ServerAddress, signal: AbortSignal): Promise<Buffer>;
}

export interface PoolEffects {
  attempt: Attempt;
  /** What a server's decrypted secret gives: the password, or null to wait for other servers. */
  accept(server: ServerAddress, secret: Buffer): Promise<Buffer | null>;
  setTimer(ms: number, fn: () => void): () => void;
  onFailure(server: ServerAddress, err: unknown): void;
  /** Every server answered and no password came: forget what they gave, all are asked again. */
  newRound(): void;
}

interface Entry {
  server: ServerAddress;
  running: AbortController | null;
  cancelRetry: (() => void) | null;
  removed: boolean;
  /** It gave its secret: never asked again, even if it goes away and comes back. */
  answered: boolean;
}

export class ServerPool {
  private readonly entries = new Map<string, Entry>();
  private done = false;
  private cancelRound: (() => void) | null = null;
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
    const entry: Entry = { server, running: null, cancelRetry: null, removed: false, answered: false };
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
    if (!entry.running && !entry.answered) this.entries.delete(describeServer(server));
  }

  /** Stop everything: no new attempts, running ones are aborted. */
  stop(): void {
    this.done = true;
    this.cancelRound?.();
    for (const e of this.entries.values()) {
      e.running?.abort();
      e.cancelRetry?.();
    }
    this.entries.clear();
  }

  /** Whether every known server answered; if so, a new round after retryMs. */
  private roundIfStuck(): void {
    const all = [...this.entries.values()];
    if (this.done || this.cancelRound || !all.every((e) => e.answered)) return;
    this.cancelRound = this.fx.setTimer(this.retryMs, () => {
      this.cancelRound = null;
      this.fx.newRound();
      for (const e of all) {
        e.answered = false;
        if (e.removed) this.entries.delete(describeServer(e.server));
        else this.start(e);
      }
    });
  }

  private start(entry: Entry): void {
    if (this.done || entry.removed || entry.running || entry.answered) return;
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
        entry.answered = true;
        this.fx.accept(entry.server, secret).then(
          (password) => {
            if (password === null) return this.roundIfStuck();
            if (this.done) {
              password.fill(0);
              return;
            }
            this.stop();
            this.resolve(password);
          },
          (err: unknown) => this.fx.onFailure(entry.server, err),
        );
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
