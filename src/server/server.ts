// The server's core: the clients, their timers and checkers, the answer to
// "may this key have its secret?", D-Bus change notifications and state
// persistence. Every change to a client goes through change(): run the
// operation on the model, save state, emit what changed, re-arm the timer.
import type { Logger } from "../cli/log.js";
import { ClientModel, type CheckerResult, type ClientRecord, type Effect } from "./client-model.js";
import { clientObjectPath, clientProperties, type ClientControl, type MandosDBus, type ServerControl, type TypedValue } from "./dbus-api.js";
import type { SecretGrant, SecretRequest, SecretRequestHandler } from "./connection.js";
import { buildStateFile, serializeState, type ConfiguredClient } from "./state.js";
import { applyUpdate, type Reconciliation, type RunningConfiguration } from "./reconcile.js";
import { StateWriter, type StateSaveError } from "./state-writer.js";
import { NO_EVENTS, report, type ServerEvents } from "./events.js";

/** SHA-256 of nothing: a peer without a key; never matches a client. */
const EMPTY_KEY_ID = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
/** setTimeout's limit; longer waits are re-armed when they end. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export interface Checkers {
  spawn(key: string, command: string, onExit: (result: CheckerResult) => void): void;
  kill(key: string): void;
  killAll(): void;
}

/** A client as a StateStore sees it. */
export interface StoredClient {
  readonly model: ClientModel;
  change(fn: (model: ClientModel, now: number) => void): void;
}

/** Where changes are kept: the local state file, or a fleet's etcd (src/server/fleet/). */
export interface StateStore {
  /** Something changed: keep it soon (grouped, asynchronous). Never throws. */
  request(): void;
  /**
   * Resolves once every change so far is kept; rejects with an error the
   * D-Bus caller may see: about `client` (by name) if given, else any.
   */
  flushed(client?: string): Promise<void>;
  /** Why no secret may be served now (fail closed), or null. */
  refusal?(): string | null;
  /** A reload added (or replaced) this client; called before it starts or shows on D-Bus. */
  clientAdded?(client: StoredClient): void;
}

export interface ServerOptions {
  log: Logger;
  checkers: Checkers;
  /** Where to save state, or null not to. */
  statePath: string | null;
  /** Keeps state instead of the file at statePath. */
  store?: StateStore;
  now?: () => number;
  random?: () => number;
  timers?: Timers;
  /** Whether checkers may use %(dbus_object_path)s (Mandos: only with D-Bus). */
  dbusPaths?: boolean;
  /** Who watches what happens (metrics); nobody by default. */
  events?: ServerEvents;
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

interface Waiting {
  entry: ClientEntry;
  resolve: (grant: SecretGrant | null) => void;
  cleanup: () => void;
}

class ClientEntry implements ClientControl, StoredClient {
  timer: unknown = null;
  removed = false;
  constructor(
    readonly model: ClientModel,
    readonly objectPath: string,
    private readonly server: MandosServer,
    /** Unique per entry, so a checker of a replaced client is never taken for its successor's. */
    readonly serial: number,
  ) {}
  change(fn: (model: ClientModel, now: number) => void): void {
    this.server.change(this, fn);
  }
}

export class MandosServer implements SecretRequestHandler, ServerControl {
  private entries = new Map<string, ClientEntry>();
  private entrySerial = 0;
  private configured: ConfiguredClient[];
  private readonly removed: Set<string>;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly timers: Timers;
  private dbus: MandosDBus | null = null;
  private waiting = new Map<number, Waiting>();
  private requestSeq = 0;
  private lastSaveError: string | null = null;
  private stopped = false;
  private readonly writer: StateStore | null;
  readonly events: ServerEvents;

  constructor(
    configured: readonly ConfiguredClient[],
    records: readonly ClientRecord[],
    removed: Iterable<string>,
    private readonly opts: ServerOptions,
  ) {
    this.configured = [...configured];
    this.removed = new Set(removed);
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.timers = opts.timers ?? realTimers;
    this.events = opts.events ?? NO_EVENTS;
    this.writer =
      opts.store ??
      (opts.statePath === null ? null : new StateWriter(opts.statePath, () => this.snapshotState(), (err, seconds) => this.reportSave(err, seconds)));
    for (const record of records) this.addEntry(record);
    if (this.entries.size === 0) this.log.warning("No clients defined");
  }

  private addEntry(record: ClientRecord): ClientEntry {
    const paths = new Set([...this.entries.values()].map((e) => e.objectPath));
    let path = clientObjectPath(record.name);
    // Two names mapping to one path ("a.b", "a-b"): keep both reachable.
    for (let i = 2; paths.has(path); i++) path = `${clientObjectPath(record.name)}_${i}`;
    const model = new ClientModel(record, {
      ...(this.opts.random ? { random: this.opts.random } : {}),
      dbusObjectPath: this.opts.dbusPaths ? path : null,
    });
    const entry = new ClientEntry(model, path, this, ++this.entrySerial);
    this.entries.set(record.name, entry);
    return entry;
  }

  clients(): ClientEntry[] {
    return [...this.entries.values()];
  }

  client(name: string): ClientEntry | undefined {
    return this.entries.get(name);
  }

  /** Start checking: each enabled client's first checker at a random point of its interval. */
  start(): void {
    for (const entry of this.entries.values()) {
      this.change(entry, (m, now) => m.startup(now));
    }
    this.save();
  }

  /** Publish the clients on D-Bus (once the bus is connected). */
  attachDBus(dbus: MandosDBus): void {
    this.dbus = dbus;
    for (const entry of this.entries.values()) dbus.addClient(entry);
  }

  /** D-Bus is gone: stop emitting on it. */
  detachDBus(): void {
    this.dbus = null;
  }

  /** Apply one operation to a client and carry out what follows from it. */
  change(entry: ClientEntry, fn: (model: ClientModel, now: number) => void): void {
    if (entry.removed || this.stopped) return;
    const model = entry.model;
    const before = clientProperties(model, entry.objectPath);
    const secretBefore = Buffer.from(model.record.secret);
    try {
      fn(model, this.now());
    } finally {
      const effects = model.takeEffects();
      const secretChanged = !secretBefore.equals(model.record.secret);
      secretBefore.fill(0);
      this.save();
      this.publishChanges(entry, before, secretChanged);
      this.carryOut(entry, effects);
      this.arm(entry);
    }
  }

  private publishChanges(entry: ClientEntry, before: Map<string, TypedValue>, secretChanged: boolean): void {
    if (!this.dbus) return;
    const after = clientProperties(entry.model, entry.objectPath);
    const changed = new Map<string, TypedValue>();
    for (const [name, v] of after) if (before.get(name)?.value !== v.value) changed.set(name, v);
    if (changed.size || secretChanged) this.dbus.propertiesChanged(entry, changed, secretChanged ? ["Secret"] : []);
  }

  private carryOut(entry: ClientEntry, effects: Effect[]): void {
    for (const e of effects) {
      switch (e.type) {
        case "log":
          if (e.event) report(this.log, this.events, e.level, e.message, e.event);
          else this.log[e.level](e.message);
          break;
        case "signal":
          this.dbus?.clientSignal(entry, e.signal);
          break;
        case "spawnChecker": {
          const id = e.checkerId;
          this.opts.checkers.spawn(this.checkerKey(entry, id), e.command, (result) =>
            this.guarded(() => this.change(entry, (m, now) => m.checkerExited(now, id, result))),
          );
          break;
        }
        case "killChecker":
          this.opts.checkers.kill(this.checkerKey(entry, e.checkerId));
          break;
        case "requestDone":
          this.answer(e.requestId, e.granted);
          break;
      }
    }
  }

  /** Callbacks from timers and processes: a failure is logged, not fatal. */
  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error(`internal error: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  private checkerKey(entry: ClientEntry, id: number): string {
    return `${entry.objectPath}#${entry.serial}.${id}`;
  }

  private arm(entry: ClientEntry): void {
    if (entry.timer !== null) this.timers.clear(entry.timer);
    entry.timer = null;
    if (entry.removed || this.stopped) return;
    const deadline = entry.model.nextDeadline();
    if (deadline === null) return;
    const delay = Math.min(Math.max(deadline - this.now(), 1), MAX_TIMER_MS);
    entry.timer = this.timers.set(() => {
      entry.timer = null;
      this.guarded(() => this.change(entry, (m, now) => m.tick(now)));
    }, delay);
  }

  // ---- Requests for secrets ----------------------------------------------

  private find(keyId: string): ClientEntry | undefined {
    if (!keyId || keyId === EMPTY_KEY_ID) return undefined;
    for (const e of this.entries.values()) if (e.model.record.keyId === keyId) return e;
    // Mandos also identifies OpenPGP clients by fingerprint.
    for (const e of this.entries.values()) if (e.model.record.fingerprint === keyId) return e;
    return undefined;
  }

  requestSecret(req: SecretRequest): Promise<SecretGrant | null> {
    const keyId = String(req.keyId).toUpperCase();
    const entry = this.find(keyId);
    if (!entry) {
      report(this.log, this.events, "info", `Client not found for key ID: ${keyId}, address: ${req.address}`, { kind: "refused", reason: "unknown_key", keyId, address: req.address });
      this.dbus?.clientNotFound(keyId, req.address);
      return Promise.resolve(null);
    }
    if (req.signal.aborted || this.stopped) return Promise.resolve(null);
    if (this.refuseUnconfirmed(entry)) return Promise.resolve(null);
    return new Promise((resolve) => {
      const id = ++this.requestSeq;
      const onAbort = () => {
        if (!this.waiting.has(id)) return;
        this.waiting.delete(id);
        resolve(null);
        this.change(entry, (m, now) => m.cancelRequest(now, id));
      };
      req.signal.addEventListener("abort", onAbort, { once: true });
      this.waiting.set(id, { entry, resolve, cleanup: () => req.signal.removeEventListener("abort", onAbort) });
      this.change(entry, (m, now) => m.beginRequest(now, id));
    });
  }

  private answer(requestId: number, granted: boolean): void {
    const w = this.waiting.get(requestId);
    if (!w) return;
    this.waiting.delete(requestId);
    w.cleanup();
    const entry = w.entry;
    // A request that waited for approval may outlive the fleet's confirmed view.
    if (!granted || this.refuseUnconfirmed(entry)) return w.resolve(null);
    // A copy for the connection, which wipes it whether it is sent or not.
    let done = false;
    w.resolve({
      secret: Buffer.from(entry.model.record.secret),
      sent: () => {
        if (done) return;
        done = true;
        this.change(entry, (m, now) => m.secretSent(now));
      },
    });
  }

  /** Fail closed: whether the store cannot vouch for its view now (refused, said, counted). */
  private refuseUnconfirmed(entry: ClientEntry): boolean {
    const refusal = this.writer?.refusal?.() ?? null;
    if (refusal === null) return false;
    const name = entry.model.name;
    report(this.log, this.events, "warning", `Not sending the secret of ${name}: ${refusal}`, { kind: "refused", reason: "fleet_unconfirmed", client: name });
    this.dbus?.clientSignal(entry, { name: "Rejected", reason: refusal });
    return true;
  }

  // ---- Removal, persistence, shutdown -------------------------------------

  removeClient(objectPath: string): boolean {
    const entry = [...this.entries.values()].find((e) => e.objectPath === objectPath);
    if (!entry) return false;
    this.removed.add(entry.model.name);
    this.dropClient(entry);
    this.save();
    return true;
  }

  /** Take a client out of service: checker killed, waiting requests refused, object withdrawn. */
  private dropClient(entry: ClientEntry): void {
    this.entries.delete(entry.model.name);
    // Disable quietly: the object is leaving the bus, so no change signals.
    this.quietly(() => this.change(entry, (m, now) => m.disable(now)));
    entry.removed = true;
    if (entry.timer !== null) this.timers.clear(entry.timer);
    entry.timer = null;
    for (const [id, w] of [...this.waiting]) {
      if (w.entry !== entry) continue;
      this.waiting.delete(id);
      w.cleanup();
      w.resolve(null);
    }
    this.dbus?.removeClient(entry);
    this.log.info(`Removed client ${entry.model.name}`);
  }

  /** Changes to a client not (or no longer) on D-Bus: no signals. */
  private quietly(fn: () => void): void {
    const dbus = this.dbus;
    this.dbus = null;
    try {
      fn();
    } finally {
      this.dbus = dbus;
    }
  }

  // ---- Reload ---------------------------------------------------------------

  /** What reconcile() compares a new clients.conf with. */
  configuration(): RunningConfiguration {
    return { configured: this.configured, records: [...this.entries.values()].map((e) => e.model.record), removed: this.removed };
  }

  /**
   * Serve a new clients.conf as reconcile() decided: the one way a reload
   * changes the set of clients. Clients it does not name keep everything.
   */
  applyConfiguration(plan: Reconciliation): void {
    if (this.stopped) return;
    const before = this.configured;
    this.configured = [...plan.configured];
    this.removed.clear();
    for (const name of plan.removedOverDbus) this.removed.add(name);
    for (const name of [...plan.removed, ...plan.replaced.map((r) => r.name)]) {
      const entry = this.entries.get(name);
      if (entry) this.dropClient(entry);
    }
    for (const record of [...plan.added, ...plan.replaced]) {
      const entry = this.addEntry(record);
      this.log.info(`Added client ${record.name}`);
      // A fleet's state of it (etcd's) before anyone sees it.
      this.quietly(() => this.writer?.clientAdded?.(entry));
      this.dbus?.addClient(entry);
      this.change(entry, (m, now) => m.startup(now));
    }
    for (const update of plan.changed) {
      const entry = this.entries.get(update.name);
      if (entry) this.change(entry, (m, now) => applyUpdate(m, now, update));
    }
    // In clients.conf's order, as a start would list them.
    const order = new Map(this.configured.map((c, i) => [c.name, i]));
    this.entries = new Map([...this.entries].sort(([a], [b]) => order.get(a)! - order.get(b)!));
    // The old sections' secrets are copies nothing uses any more.
    const kept = new Set(this.configured.map((c) => c.secret));
    for (const c of before) if (!kept.has(c.secret)) c.secret.fill(0);
    this.save();
  }

  /** Ask for the state file to be written (grouped, asynchronous). Never throws. */
  save(): void {
    this.writer?.request();
  }

  /**
   * Resolves when every change so far is kept; rejects with a StateSaveError
   * when that failed, or the fleet's error about the client at `objectPath`.
   */
  flushed(objectPath?: string): Promise<void> {
    const client = [...this.entries.values()].find((e) => e.objectPath === objectPath)?.model.name;
    return this.writer?.flushed(client) ?? Promise.resolve();
  }

  private snapshotState(): string {
    const live = [...this.entries.values()].map((e) => e.model.record);
    return serializeState(buildStateFile(this.configured, live, this.removed));
  }

  private reportSave(err: StateSaveError | null, seconds: number): void {
    this.events.stateWritten(seconds, err === null);
    if (err === null) {
      this.lastSaveError = null;
      return;
    }
    const msg = `Could not save persistent state: ${err.message}`;
    // Once per kind of failure, not on every change.
    if (msg !== this.lastSaveError) this.log.warning(msg);
    this.lastSaveError = msg;
  }

  /** Stop timers and checkers, answer waiting requests with nothing, save. */
  stop(): void {
    if (this.stopped) return;
    this.save();
    this.stopped = true;
    for (const entry of this.entries.values()) {
      if (entry.timer !== null) this.timers.clear(entry.timer);
      entry.timer = null;
    }
    for (const w of this.waiting.values()) {
      w.cleanup();
      w.resolve(null);
    }
    this.waiting.clear();
    this.opts.checkers.killAll();
  }
}
