// Client state kept in etcd and shared by every server of a fleet: the
// server's StateStore when mandos.conf names etcd_endpoints.
//
// - Each client is one key (view.ts); each change is a compare-and-swap
//   transaction on that key's mod revision, merged and retried on conflict
//   (shared.ts), so concurrent changes on two servers are both kept.
//   Changes are group-committed like the state file's writes, and
//   flushed() (which a D-Bus reply waits for) settles once etcd committed.
// - Every server watches the prefix and adopts what others commit, through
//   the server's change(), so D-Bus signals go out as for local changes.
// - Every second (at most a third of the grace period) a linearizable read
//   compares the keys' revisions with the cache (fetching any it missed)
//   and seeds clients etcd does not hold yet, create-only. Its success
//   confirms the view; past the grace period without one, no secret is
//   served (view.ts). A write etcd did not commit is undone locally.
// - A client served here from start-up or added by a reload never
//   overwrites etcd's value: it adopts it, or is seeded create-only (its
//   changes since merged into etcd's value if another server seeded first).
// - etcd is the fleet's trust root: whoever writes under the prefix decides
//   who is enabled and approved. The checker command alone stays local
//   (clients.conf's), so writing to etcd runs no command on any server.
// - A client's checker runs only on the server holding its lock key, put on
//   that server's lease: the holder alone runs checkers and decides
//   timeouts. When a server dies its lease ends within its TTL, the key
//   goes, and the others race to create it.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { ConstantBackoff, handleWhen, noop, retry } from "cockatiel";
import { Etcd3, isRecoverableError, type IKeyValue, type Lease, type Watcher } from "etcd3";
import type { Logger } from "../../cli/log.js";
import type { FleetConfig } from "../../config/server.js";
import { stopwatch, type ServerEvents } from "../events.js";
import { GroupCommit } from "../group-commit.js";
import type { StateStore, StoredClient } from "../server.js";
import { openSecret, sealSecret, type StoredSecret } from "../state.js";
import { encodeShared, mergeShared, onlyExpiryBump, parseShared, revertShared, sameShared, serializeShared, type SharedState } from "./shared.js";
import { checkerKey, parseKey, prefixEnd, refusalAt, stateKey } from "./view.js";

/** A client of the server, as this store sees it (the server's ClientEntry). */
export type FleetClient = StoredClient;

export interface FleetServer {
  clients(): Iterable<FleetClient>;
}

export interface FleetStoreOptions {
  config: FleetConfig;
  log: Logger;
  /** clients.conf's secret of a client, to seal a secret set over D-Bus; undefined if not configured. */
  configSecret(name: string): Buffer | undefined;
  /** Told how long each etcd commit took (mandos_state_write_seconds). */
  events?: ServerEvents;
  now?: () => number;
}

/**
 * The committed value of a client's key as last seen, with its mod
 * revision; rev 0: not in etcd as far as this server knows, and `value` is
 * what this server had when it took the client on (start-up or reload), to
 * seed create-only and to merge its changes since onto etcd's value.
 */
interface Slot {
  value: SharedState;
  rev: number;
}

/** Which clients' changes a round of writes could not commit, and why. */
type Failures = Map<string, Error>;

/** Timeout bumps from serving secrets are written at most this often per client. */
const BUMP_BATCH_MS = 1000;

/** Gives up a compare-and-swap after this many conflicts in a row. */
const MAX_CONFLICTS = 50;

class NotCommitted extends Error {
  override name = "NotCommitted";
}

const etcdError = (err: unknown) => (err as Error)?.message?.split("\n")[0] ?? String(err);

export class EtcdStore implements StateStore {
  private readonly client: Etcd3;
  private readonly cfg: FleetConfig;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly id = `${hostname()}/${process.pid}/${randomBytes(4).toString("hex")}`;
  private server: FleetServer | null = null;
  private readonly slots = new Map<string, Slot>();
  /** Sealed secrets by client, so an unchanged secret keeps its sealed text. */
  private readonly seals = new Map<string, { plain: Buffer; sealed: StoredSecret }>();
  /** Clients whose checker lock this server holds. */
  private readonly held = new Set<string>();
  private lease: Lease | null = null;
  private leaseId: string | null = null;
  private watcher: Watcher | null = null;
  /** When each client's state was last written from here, for batching timeout bumps. */
  private readonly lastWrite = new Map<string, number>();
  private bumpTimer: NodeJS.Timeout | null = null;
  private confirmedAt: number | null = null;
  private refusing = false;
  private beatTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly group = new GroupCommit<Failures>(() => this.writeAll(), new Map());

  constructor(private readonly opts: FleetStoreOptions) {
    this.cfg = opts.config;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    const plain = this.cfg.endpoints.filter((e) => e.startsWith("http://"));
    if (plain.length > 0 || this.cfg.cert === null) {
      const why = plain.length > 0 ? `unencrypted endpoints (${plain.join(", ")})` : "no client certificate (etcd_cert, etcd_key)";
      this.log.warning(`etcd with ${why}: whoever can write under ${this.cfg.prefix} there can enable and approve any client on every server`);
    }
    const read = (path: string | null) => (path === null ? undefined : readFileSync(path));
    const ca = read(this.cfg.ca);
    const callMs = Math.max(500, Math.min(2000, this.cfg.graceMs / 2));
    this.client = new Etcd3({
      hosts: this.cfg.endpoints,
      ...(ca || this.cfg.cert
        ? { credentials: { rootCertificate: ca ?? Buffer.alloc(0), ...(this.cfg.key ? { privateKey: read(this.cfg.key)! } : {}), ...(this.cfg.cert ? { certChain: read(this.cfg.cert)! } : {}) } }
        : {}),
      dialTimeout: callMs,
      // gRPC waits up to two minutes between reconnections by default: a member back must be used at once.
      grpcOptions: { "grpc.initial_reconnect_backoff_ms": 200, "grpc.max_reconnect_backoff_ms": 1000 },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + callMs }),
      // A call that fails on one member is tried again on others. No
      // circuit breaker: it would keep a member that came back out of use.
      faultHandling: {
        host: () => noop,
        global: retry(handleWhen(isRecoverableError), { maxAttempts: 2, backoff: new ConstantBackoff(0) }),
        // etcd3 calls next() of this backoff itself to start over.
        watchBackoff: new ConstantBackoff(500).next(),
      },
    });
  }

  /** Why no secret may be served now, or null. */
  refusal(): string | null {
    return refusalAt(this.now(), this.confirmedAt, this.cfg.graceMs);
  }

  /** Take over the server's clients (before it starts them): nobody checks until it holds the lock. */
  attach(server: FleetServer): void {
    this.server = server;
    for (const c of server.clients()) this.takeOn(c);
  }

  clientAdded(c: FleetClient): void {
    this.takeOn(c);
  }

  /**
   * A client now served here: no checker until this server holds its lock,
   * and etcd's state if seen, else its own to seed (never a blind overwrite).
   */
  private takeOn(c: FleetClient): void {
    const name = c.model.name;
    c.change((m, now) => m.setChecking(now, false));
    this.dropSeal(name);
    const slot = this.slots.get(name);
    if (slot && slot.rev > 0) this.adopt(c, slot.value);
    else this.slots.set(name, { value: this.encode(c), rev: 0 });
  }

  /**
   * Read (and seed) etcd, waiting at most `waitMs` for a first view;
   * without one the server refuses secrets and keeps trying.
   */
  async start(waitMs = 5000): Promise<void> {
    const first = this.beat();
    await Promise.race([first, new Promise((r) => setTimeout(r, waitMs).unref())]);
    if (this.confirmedAt === null) this.log.error(`etcd (${this.cfg.endpoints.join(", ")}) not reachable: serving no secrets until it is`);
  }

  /** Stop: write timeout bumps still batched, give up the checker locks (their lease), disconnect. */
  async stop(): Promise<void> {
    this.lastWrite.clear();
    this.request();
    await this.flushed().catch(() => {});
    this.stopped = true;
    if (this.beatTimer) clearTimeout(this.beatTimer);
    if (this.bumpTimer) clearTimeout(this.bumpTimer);
    for (const name of [...this.seals.keys()]) this.dropSeal(name);
    await this.watcher?.cancel().catch(() => {});
    await this.lease?.revoke().catch(() => {});
    this.client.close();
  }

  // ---- Writing ------------------------------------------------------------

  request(): void {
    this.group.request();
  }

  /** Settles once the changes so far are committed: fails only for `client`'s (or, without one, any) failure. */
  async flushed(client?: string): Promise<void> {
    const failures = await this.group.flushed();
    const failure = client === undefined ? failures.values().next().value : failures.get(client);
    if (failure) throw failure;
  }

  /** One round: every client's uncommitted change, each its own transaction. */
  private async writeAll(): Promise<Failures> {
    const failures: Failures = new Map();
    if (!this.server || this.stopped) return failures;
    const clients = [...this.server.clients()];
    const results = await Promise.allSettled(clients.map((c) => this.write(c)));
    results.forEach((r, i) => {
      if (r.status === "rejected") failures.set(clients[i]!.model.name, r.reason as Error);
    });
    return failures;
  }

  private sealed(name: string, secret: Buffer): StoredSecret {
    const seal = this.seals.get(name);
    if (seal?.plain.equals(secret)) return seal.sealed;
    const conf = this.opts.configSecret(name);
    const sealed: StoredSecret = conf ? sealSecret(secret, conf) : { source: "config" };
    this.keepSeal(name, secret, sealed);
    return sealed;
  }

  /** Remember a secret's sealed text; the copy of the secret it replaces is wiped. */
  private keepSeal(name: string, secret: Buffer, sealed: StoredSecret): void {
    this.dropSeal(name);
    this.seals.set(name, { plain: Buffer.from(secret), sealed });
  }

  private dropSeal(name: string): void {
    this.seals.get(name)?.plain.fill(0);
    this.seals.delete(name);
  }

  private encode(c: FleetClient): SharedState {
    return encodeShared(c.model, this.sealed(c.model.name, c.model.record.secret));
  }

  /**
   * Commit one client's uncommitted change, if it has one, or seed it
   * (create-only) if etcd did not hold it; throws NotCommitted, the change
   * undone here.
   */
  private async write(c: FleetClient): Promise<void> {
    const name = c.model.name;
    const key = stateKey(this.cfg.prefix, name);
    for (let conflicts = 0; conflicts < MAX_CONFLICTS; conflicts++) {
      const slot = this.slots.get(name);
      if (!slot) throw new NotCommitted(`etcd did not commit the change to ${name}: not a client of this server's fleet store`);
      const local = this.encode(c);
      const seed = slot.rev === 0;
      if (!seed && sameShared(local, slot.value)) return;
      const wait = (this.lastWrite.get(name) ?? -Infinity) + BUMP_BATCH_MS - this.now();
      if (!seed && wait > 0 && onlyExpiryBump(slot.value, local)) return this.later(wait);
      this.lastWrite.set(name, this.now());
      let res;
      const took = stopwatch();
      try {
        res = await this.client
          // Create revision 0: the key does not exist (a seed never overwrites).
          .if(key, seed ? "Create" : "Mod", "==", slot.rev)
          .then(this.client.put(key).value(serializeShared(local)))
          .else(this.client.get(key))
          .commit();
      } catch (err) {
        this.opts.events?.stateWritten(took(), false);
        throw this.notCommitted(c, local, etcdError(err));
      }
      // A conflict is a commit that ran, not a failure.
      this.opts.events?.stateWritten(took(), true);
      if (res.succeeded) {
        const rev = Number(res.header.revision);
        if (seed) this.log.info(`Seeded etcd with the state of ${name}`);
        if (rev > (this.slots.get(name)?.rev ?? 0)) this.slots.set(name, { value: local, rev });
        return;
      }
      const kv = res.responses[0]?.response_range?.kvs?.[0];
      // Deleted under us: seed it again, create-only, with what was last committed as the base.
      if (!kv) this.slots.set(name, { value: slot.value, rev: 0 });
      else this.receive(kv);
    }
    throw this.notCommitted(c, this.encode(c), `${MAX_CONFLICTS} conflicting changes in a row`);
  }

  /** A change etcd did not take, undone here (but a disable), as the error for the D-Bus caller. */
  private notCommitted(c: FleetClient, local: SharedState, why: string): NotCommitted {
    const kept = this.undo(c, local);
    return new NotCommitted(`etcd did not commit the change to ${c.model.name}: ${why} (${kept ? "the disable stays in effect here and is retried" : "undone"})`);
  }

  /** Write again after `ms` (one timer for every client waiting). */
  private later(ms: number): void {
    if (this.bumpTimer || this.stopped) return;
    this.bumpTimer = setTimeout(() => {
      this.bumpTimer = null;
      this.request();
    }, ms);
  }

  /** A change etcd did not take: back to the committed state. Whether a disable stays. */
  private undo(c: FleetClient, local: SharedState): boolean {
    const slot = this.slots.get(c.model.name);
    if (!slot) return false;
    const reverted = revertShared(slot.value, local);
    this.adopt(c, reverted);
    return reverted.enabled !== slot.value.enabled;
  }

  // ---- Reading --------------------------------------------------------------

  private findClient(name: string): FleetClient | undefined {
    for (const c of this.server?.clients() ?? []) if (c.model.name === name) return c;
    return undefined;
  }

  /** A committed value of a client key, from the watch, a conflict or a beat. */
  private receive(kv: IKeyValue): void {
    const key = kv.key.toString();
    const parsed = parseKey(this.cfg.prefix, key);
    if (parsed?.kind !== "state") return;
    const rev = Number(kv.mod_revision);
    const slot = this.slots.get(parsed.name);
    if (slot && rev <= slot.rev) return;
    let remote: SharedState;
    try {
      remote = parseShared(kv.value.toString(), key);
    } catch (err) {
      this.log.error(`Ignoring fleet state: ${(err as Error).message}`);
      return;
    }
    const c = this.findClient(parsed.name);
    this.slots.set(parsed.name, { value: remote, rev });
    if (!c) return;
    // Uncommitted changes made here stay on top of what was committed.
    const local = this.encode(c);
    this.adopt(c, slot ? mergeShared(slot.value, local, remote) : remote);
  }

  private adopt(c: FleetClient, s: SharedState): void {
    const conf = this.opts.configSecret(c.model.name);
    const secret = conf ? openSecret(s.secret, conf) : null;
    if (secret) this.keepSeal(c.model.name, secret, s.secret);
    c.change((m, now) => m.adopt(now, { ...s, secret }));
    secret?.fill(0);
  }

  private async watch(fromRev: number): Promise<void> {
    const w = await this.client.watch().prefix(this.cfg.prefix).startRevision(String(fromRev)).create();
    if (this.stopped) return void w.cancel().catch(() => {});
    this.watcher = w;
    w.on("put", (kv) => this.receive(kv));
    w.on("delete", (kv) => {
      const parsed = parseKey(this.cfg.prefix, kv.key.toString());
      if (parsed?.kind === "checker" && !this.refusal()) void this.tryLock(parsed.name);
    });
    w.on("error", (err) => this.log.debug(`etcd watch: ${etcdError(err)}`));
  }

  // ---- The beat: confirm the view, seed, take free checker locks -----------

  private async beat(): Promise<void> {
    const started = this.now();
    try {
      await this.sync();
      this.confirmedAt = started;
      if (this.refusing) this.log.info("etcd quorum is back and the fleet state re-read: serving secrets again");
      this.refusing = false;
      await this.takeFreeLocks();
      this.request();
    } catch (err) {
      const refusal = this.refusal();
      if (refusal !== null && !this.refusing) {
        this.refusing = true;
        this.log.error(`Serving no secrets: ${refusal} (${etcdError(err)})`);
      }
      if (refusal !== null) this.dropLocks();
    }
    if (!this.stopped) {
      const every = Math.max(200, Math.min(1000, this.cfg.graceMs / 3));
      this.beatTimer = setTimeout(() => void this.beat(), every);
      this.beatTimer.unref();
    }
  }

  /** Bring the cache up to a linearizable read, then seed what etcd lacks. */
  private async sync(): Promise<void> {
    const clientsPrefix = stateKey(this.cfg.prefix, "");
    const keys = await this.client.kv.range({ key: Buffer.from(clientsPrefix), range_end: prefixEnd(clientsPrefix), keys_only: true });
    for (const kv of keys.kvs) {
      const name = kv.key.toString().slice(clientsPrefix.length);
      if ((this.slots.get(name)?.rev ?? 0) >= Number(kv.mod_revision)) continue;
      const full = await this.client.get(kv.key.toString()).exec();
      for (const k of full.kvs) this.receive(k);
    }
    if (!this.watcher) await this.watch(Number(keys.header.revision) + 1);
    const unseeded = [...(this.server?.clients() ?? [])].filter((c) => this.slots.get(c.model.name)?.rev === 0);
    await Promise.all(unseeded.map((c) => this.write(c)));
  }

  private async ensureLease(): Promise<string> {
    if (this.lease && this.leaseId && !this.lease.revoked()) return this.leaseId;
    const lease = this.client.lease(Math.ceil(this.cfg.leaseTtlMs / 1000), { autoKeepAlive: true });
    lease.on("lost", (err) => {
      if (this.lease !== lease) return;
      this.log.warning(`Lost the etcd lease for checkers: ${etcdError(err)}`);
      this.lease = null;
      this.leaseId = null;
      this.dropLocks();
    });
    this.leaseId = await lease.grant();
    this.lease = lease;
    return this.leaseId;
  }

  private async takeFreeLocks(): Promise<void> {
    const locksPrefix = checkerKey(this.cfg.prefix, "");
    const taken = await this.client.kv.range({ key: Buffer.from(locksPrefix), range_end: prefixEnd(locksPrefix), keys_only: true });
    const present = new Set(taken.kvs.map((kv) => kv.key.toString().slice(locksPrefix.length)));
    for (const c of [...(this.server?.clients() ?? [])]) {
      // A client added at run time (a reload) starts out checking: not here unless held.
      if (!this.held.has(c.model.name) && c.model.holdsChecker) c.change((m, now) => m.setChecking(now, false));
      if (!present.has(c.model.name)) await this.tryLock(c.model.name);
    }
    // A client no longer served here (removed by a reload) leaves its checker to others.
    const names = new Set([...(this.server?.clients() ?? [])].map((c) => c.model.name));
    for (const name of [...this.held]) {
      if (names.has(name)) continue;
      this.held.delete(name);
      await this.client.delete().key(checkerKey(this.cfg.prefix, name)).exec();
    }
  }

  private async tryLock(name: string): Promise<void> {
    if (this.held.has(name) || this.stopped) return;
    const c = this.findClient(name);
    if (!c) return;
    try {
      const leaseId = await this.ensureLease();
      const key = checkerKey(this.cfg.prefix, name);
      const res = await this.client.if(key, "Create", "==", 0).then(this.client.put(key).value(this.id).lease(leaseId)).commit();
      if (!res.succeeded || this.held.has(name)) return;
      this.held.add(name);
      this.log.info(`Running the checker of ${name} on this server`);
      c.change((m, now) => m.setChecking(now, true));
    } catch (err) {
      this.log.debug(`etcd: could not take the checker lock of ${name}: ${etcdError(err)}`);
    }
  }

  /** Without a lease (or a view), this server checks nothing. */
  private dropLocks(): void {
    for (const name of this.held) this.findClient(name)?.change((m, now) => m.setChecking(now, false));
    this.held.clear();
  }
}
