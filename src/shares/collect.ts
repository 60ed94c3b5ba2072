// The client's side of k-of-n: what to do with each decrypted secret as
// servers answer. A secret that is not a share is the password (as for
// Mandos). Shares are kept, per set (identifier and threshold), one per
// server and per index; as soon as a set holds K of them, combinations
// including the newest are tried and the first whose check holds gives the
// password. Nothing here logs, times or connects: each offer returns what
// happened, in words that name servers and never hold share bytes.
import { ShareError, isShare, parseShare, type Share } from "./format.js";
import { combineShares } from "./shamir.js";

export interface Offered {
  /** The password, once known; the caller owns and wipes it. */
  password: Buffer | null;
  /** Servers that sent something wrong, one line each. */
  problems: string[];
  /** What was learnt, for the debug log. */
  notes: string[];
}

interface Held extends Share {
  server: string;
}

interface ShareSet {
  label: string;
  threshold: number;
  shares: Held[];
}

/**
 * Combinations tried per share received at most: servers found by Zeroconf
 * are anyone on the link, and anyone can encrypt to the client's public key.
 */
export const MAX_COMBINATIONS = 256;
/**
 * What the count of combinations does not bound is their cost: one costs
 * K² steps per byte of share. Each offer gets at most this many steps in
 * all (about two combinations of the largest shares at K = 32, a fraction
 * of a second; thousands of typical ones).
 */
export const MAX_WORK_PER_OFFER = 1 << 26;

/** Pure: the steps one combination of a set's shares costs. */
export const combineCost = (threshold: number, yLength: number) => threshold * threshold * (yLength + 1);

/** Shares held per set at most, in multiples of its K: more only multiply the combinations. */
export const MAX_HELD_PER_THRESHOLD = 2;

/** K-element subsets of `items` that contain `must`, at most `limit` of them. */
export function subsetsWith<T>(items: readonly T[], must: T, k: number, limit = MAX_COMBINATIONS): T[][] {
  const others = items.filter((i) => i !== must);
  const out: T[][] = [];
  const pick = (from: number, chosen: T[]) => {
    if (out.length >= limit) return;
    if (chosen.length === k - 1) {
      out.push([...chosen, must]);
      return;
    }
    for (let i = from; i < others.length; i++) pick(i + 1, [...chosen, others[i]!]);
  };
  pick(0, []);
  return out;
}

export class ShareCollector {
  private readonly sets = new Map<string, ShareSet>();
  private readonly servers = new Set<string>();
  /** Offers are taken one at a time: a combination must not see a set change under it. */
  private queue: Promise<unknown> = Promise.resolve();

  /** Take the secret `server` sent (decrypted); the collector owns it from now on. */
  offer(server: string, secret: Buffer): Promise<Offered> {
    const next = this.queue.then(() => this.take(server, secret));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async take(server: string, secret: Buffer): Promise<Offered> {
    if (!isShare(secret)) return { password: secret, problems: [], notes: [] };
    let share: Share;
    try {
      share = parseShare(secret);
    } catch (err) {
      return { password: null, problems: [`${server}: bad share: ${(err as ShareError).message}`], notes: [] };
    } finally {
      secret.fill(0);
    }
    if (this.servers.has(server)) {
      share.y.fill(0);
      return { password: null, problems: [], notes: [`${server}: already gave a share`] };
    }
    this.servers.add(server);
    const key = `${share.setId.toString("hex")}/${share.threshold}`;
    const label = `set ${share.setId.toString("hex").slice(0, 8)} (${share.threshold} needed)`;
    let set = this.sets.get(key);
    if (!set) this.sets.set(key, (set = { label, threshold: share.threshold, shares: [] }));
    if (set.shares.length >= MAX_HELD_PER_THRESHOLD * set.threshold) {
      share.y.fill(0);
      return { password: null, problems: [`${server}: share ${share.index} of ${label} refused: ${set.shares.length} of it held already`], notes: [] };
    }
    const clash = set.shares.find((s) => s.index === share.index);
    if (clash) {
      const same = clash.y.equals(share.y);
      share.y.fill(0);
      return same
        ? { password: null, problems: [], notes: [`${server}: the same share as ${clash.server}`] }
        : { password: null, problems: [`${server}: share ${share.index} of ${label} differs from ${clash.server}'s`], notes: [] };
    }
    const held: Held = { ...share, server };
    set.shares.push(held);
    const notes = [`${server}: share ${share.index} of ${label}; ${set.shares.length} of ${set.threshold} so far`];
    if (set.shares.length < set.threshold) return { password: null, problems: [], notes };
    return this.tryCombine(set, held, notes);
  }

  private async tryCombine(set: ShareSet, newest: Held, notes: string[]): Promise<Offered> {
    const cost = combineCost(set.threshold, newest.y.length);
    let budget = MAX_WORK_PER_OFFER;
    for (const subset of subsetsWith(set.shares, newest, set.threshold, Math.min(MAX_COMBINATIONS, Math.floor(budget / cost)))) {
      budget -= cost;
      const password = await combineShares(subset);
      if (!password) continue;
      const problems = await this.misfits(set, subset, Math.floor(budget / cost));
      for (const other of this.sets.values()) {
        if (other === set) continue;
        for (const s of other.shares) problems.push(`${s.server}: share of another ${other.label}, not combined`);
      }
      this.wipe();
      return { password, problems, notes };
    }
    const names = set.shares.map((s) => s.server).join(", ");
    return {
      password: null,
      problems: [`shares from ${names} do not combine (check failed): one of them is wrong; waiting for more`],
      notes,
    };
  }

  /** Shares of the set that do not fit the combination that worked, named by server; `tries` combinations at most. */
  private async misfits(set: ShareSet, good: Held[], tries: number): Promise<string[]> {
    const problems: string[] = [];
    for (const s of set.shares) {
      if (good.includes(s)) continue;
      if (tries-- <= 0) {
        problems.push(`${s.server}: share ${s.index} of ${set.label} not checked against the others (work bound)`);
        continue;
      }
      const fits = await combineShares([...good.slice(1), s]);
      if (fits) fits.fill(0);
      else problems.push(`${s.server}: share ${s.index} of ${set.label} does not fit the others (wrong or corrupted)`);
    }
    return problems;
  }

  /** Zero and forget every share held, and which servers gave them. */
  wipe(): void {
    for (const set of this.sets.values()) for (const s of set.shares) s.y.fill(0);
    this.sets.clear();
    this.servers.clear();
  }
}
