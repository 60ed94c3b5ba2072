// The share core: the library's GF(2^8) against an independent one (with
// HashiCorp Vault's field test values, whose tables the library uses), the
// format's strict parsing, and the properties k-of-n rests on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { combine } from "shamir-secret-sharing";
import {
  CHECK_BYTES,
  HEADER_BYTES,
  MAGIC,
  MAX_SECRET_BYTES,
  SET_ID_BYTES,
  ShareCollector,
  ShareError,
  checkValue,
  combineShares,
  encodeShare,
  isShare,
  parseShare,
  splitPassword,
  subsetsWith,
  verifyCombined,
} from "../../src/shares/index.js";

// GF(2^8) modulo x^8+x^4+x^3+x+1 by shift and add, independent of any table.
function mul(a: number, b: number): number {
  let r = 0;
  for (; b; b >>= 1) {
    if (b & 1) r ^= a;
    a = (a << 1) ^ (a & 0x80 ? 0x11b : 0);
  }
  return r;
}
function inv(a: number): number {
  for (let b = 1; b < 256; b++) if (mul(a, b) === 1) return b;
  throw new Error("no inverse");
}
/** Lagrange interpolation at 0, byte by byte. */
function interpolateAt0(points: { x: number; y: Uint8Array }[]): Buffer {
  const out = Buffer.alloc(points[0]!.y.length);
  for (let i = 0; i < out.length; i++) {
    let acc = 0;
    for (const p of points) {
      let basis = 1;
      for (const q of points) if (q !== p) basis = mul(basis, mul(q.x, inv(p.x ^ q.x)));
      acc ^= mul(p.y[i]!, basis);
    }
    out[i] = acc;
  }
  return out;
}

function combinations<T>(items: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  return items.flatMap((x, i) => combinations(items.slice(i + 1), k - 1).map((rest) => [x, ...rest]));
}

test("the independent field matches Vault's field test values", () => {
  // hashicorp/vault shamir_test.go: TestField_Mult, TestField_Divide.
  assert.equal(mul(3, 7), 9);
  assert.equal(mul(3, 0), 0);
  assert.equal(mul(0, 3), 0);
  assert.equal(mul(3, inv(3)), 1);
  assert.equal(mul(6, inv(3)), 2);
});

test("known-answer: shares of a fixed polynomial, made by hand, combine to the password", async () => {
  const password = Buffer.from("correct horse");
  const setId = Buffer.alloc(16, 0x5a);
  const value = Buffer.concat([password, checkValue(password, 3, setId)]);
  // f(x) = v + 0x53 x + 0xca x^2 for every byte v: fixed, so the shares are fixed.
  const share = (x: number) => {
    const y = Buffer.from(value.map((v) => v ^ mul(0x53, x) ^ mul(0xca, mul(x, x))));
    return parseShare(encodeShare({ threshold: 3, index: x, setId, y }));
  };
  const got = await combineShares([share(1), share(2), share(200)]);
  assert.deepEqual(got, password);
  assert.equal(await combineShares([share(4), share(1), share(255)]).then(String), "correct horse");
});

test("the library's shares interpolate, by the independent field, to password and check", async () => {
  const password = randomBytes(40);
  const shares = (await splitPassword(password, 3, 5)).map(parseShare);
  const value = interpolateAt0(shares.slice(1, 4).map((s) => ({ x: s.index, y: s.y })));
  assert.deepEqual(value.subarray(0, 40), password);
  assert.deepEqual(value.subarray(40), checkValue(password, 3, shares[0]!.setId));
});

test("any K of N recover the password; any K-1 interpolate to a value whose check fails", async () => {
  for (const [k, n] of [[2, 2], [2, 3], [3, 5], [4, 6], [5, 5]] as const) {
    const password = randomBytes(1 + (k * 7) % 50);
    const shares = (await splitPassword(password, k, n)).map(parseShare);
    assert.equal(new Set(shares.map((s) => s.index)).size, n, "distinct indexes");
    for (const subset of combinations(shares, k)) assert.deepEqual(await combineShares(subset), password, `${k} of ${n}`);
    for (const subset of combinations(shares, k - 1)) {
      if (subset.length < 2) continue; // one point is no interpolation: it is a share itself
      const raw = subset.map((s) => Uint8Array.from([...s.y, s.index]));
      assert.equal(verifyCombined(await combine(raw), k, shares[0]!.setId), null, `${k - 1} of ${n} must not pass`);
    }
  }
});

test("a share of another split never completes a set, even relabelled with its set id", async () => {
  const password = Buffer.from("same password");
  const a = (await splitPassword(password, 2, 3)).map(parseShare);
  const b = (await splitPassword(password, 2, 3)).map(parseShare);
  await assert.rejects(combineShares([a[0]!, b[1]!]), /different sets/);
  const forged = { ...b[1]!, setId: a[0]!.setId, index: a[0]!.index === b[1]!.index ? 1 + (a[0]!.index % 255) : b[1]!.index };
  assert.equal(await combineShares([a[0]!, forged]), null);
});

test("parsing is strict and its errors hold no share bytes", async () => {
  const [good] = await splitPassword(Buffer.from("pw"), 2, 2);
  const share = good!;
  assert.ok(isShare(share));
  assert.ok(!isShare(Buffer.from("an ordinary password")));
  assert.ok(MAGIC[0] === 0 && MAGIC[1] === 0xff, "NUL-led and not UTF-8");
  const withByte = (offset: number, value: number) => {
    const b = Buffer.from(share);
    b[offset] = value;
    return b;
  };
  const cases: [Buffer, RegExp][] = [
    [share.subarray(0, 10), /no share magic/],
    [share.subarray(0, HEADER_BYTES + 5), /too short/],
    [withByte(MAGIC.length, 2), /version 2/],
    [withByte(MAGIC.length + 1, 1), /threshold 1/],
    [withByte(MAGIC.length + 2, 0), /index 0/],
    [Buffer.concat([share, Buffer.alloc(40 * 1024)]), /too long/],
  ];
  for (const [bytes, why] of cases) {
    assert.throws(
      () => parseShare(bytes),
      (err: Error) => err instanceof ShareError && why.test(err.message) && !err.message.includes(share.subarray(HEADER_BYTES, HEADER_BYTES + 4).toString("hex")) && !err.message.includes("\n"),
    );
  }
});

test("split refuses thresholds and counts outside 2 <= K <= 32, K <= N <= 255", async () => {
  for (const [k, n, why] of [[1, 3, /threshold/], [3, 2, /exceeds/], [2, 256, /number of shares/], [2.5, 3, /threshold/], [33, 40, /threshold must be a whole number from 2 to 32/]] as const) {
    await assert.rejects(splitPassword(Buffer.from("x"), k, n), why);
  }
  await assert.rejects(splitPassword(Buffer.alloc(0), 2, 2), /empty/);
});

test("collector: plain secrets pass through, shares wait for K from distinct servers", async () => {
  const c = new ShareCollector();
  const plain = await c.offer("a", Buffer.from("plain"));
  assert.equal(String(plain.password), "plain");
  const shares = await splitPassword(Buffer.from("pw2"), 2, 3);
  let r = await c.offer("s1", Buffer.from(shares[0]!));
  assert.equal(r.password, null);
  r = await c.offer("s1", Buffer.from(shares[1]!));
  assert.equal(r.password, null, "one server, one share");
  r = await c.offer("s2", Buffer.from(shares[0]!));
  assert.equal(r.password, null, "the same index twice is one share");
  assert.match(r.notes.join(), /same share as s1/);
  r = await c.offer("s3", Buffer.from(shares[2]!));
  assert.equal(String(r.password), "pw2");
  assert.deepEqual(r.problems, []);
});

test("collector: sets never mix, and a wrong-set or corrupted share is named after the right ones combine", async () => {
  const right = await splitPassword(Buffer.from("the password"), 2, 3);
  const other = await splitPassword(Buffer.from("the password"), 2, 3);
  const corrupted = Buffer.from(right[2]!);
  corrupted[HEADER_BYTES + 1]! ^= 0x40;
  const c = new ShareCollector();
  const offered = [
    await c.offer("wrong-set", Buffer.from(other[0]!)),
    await c.offer("bad", corrupted),
    await c.offer("good1", Buffer.from(right[0]!)),
  ];
  assert.ok(offered.every((o) => o.password === null));
  assert.match(offered[2]!.problems.join(), /shares from bad, good1 do not combine/);
  const last = await c.offer("good2", Buffer.from(right[1]!));
  assert.equal(String(last.password), "the password");
  assert.equal(last.problems.length, 2);
  assert.match(last.problems.join("|"), /^bad: share \d+ of set [0-9a-f]{8} \(2 needed\) does not fit/m);
  assert.match(last.problems.join("|"), /wrong-set: share of another set/);
  assert.ok(!last.problems.join().includes(corrupted.subarray(HEADER_BYTES).toString("hex").slice(0, 8)));
});

test("collector: a malformed share is a one-line problem naming the server; wipe zeroes what is held", async () => {
  const c = new ShareCollector();
  const r = await c.offer("srv", Buffer.concat([MAGIC, Buffer.from([9])]));
  assert.deepEqual(r.problems, ["srv: bad share: share too short (15 bytes)"]);
  const [s] = await splitPassword(Buffer.from("pw"), 2, 2);
  const given = Buffer.from(s!);
  await c.offer("srv2", given);
  assert.ok(given.every((b) => b === 0), "the offered buffer is wiped");
  const held = (c as unknown as { sets: Map<string, { shares: { y: Buffer }[] }> }).sets;
  const y = [...held.values()][0]!.shares[0]!.y;
  assert.ok(y.some((b) => b !== 0));
  c.wipe();
  assert.ok(y.every((b) => b === 0));
});

test("combinations tried per share are bounded", () => {
  const items = Array.from({ length: 40 }, (_, i) => i);
  assert.equal(subsetsWith(items, 0, 3).length, 256);
  assert.equal(subsetsWith([1, 2, 3, 4], 1, 2).length, 3);
  assert.ok(subsetsWith([1, 2, 3, 4], 1, 3).every((s) => s.includes(1) && s.length === 3));
});

/** A share of set `setId` with random y (shares like these never combine). */
const junkShare = (threshold: number, index: number, setId: Buffer, yLength: number) => encodeShare({ threshold, index, setId, y: randomBytes(yLength) });

test("collector caps: K above 32 is refused, naming the server", async () => {
  const c = new ShareCollector();
  const r = await c.offer("big-k", junkShare(33, 1, randomBytes(SET_ID_BYTES), 64));
  assert.deepEqual(r.problems, ["big-k: bad share: share threshold 33 above 32"]);
});

test("collector caps: a set holds at most 2K shares; the next is refused, naming the server", async () => {
  const c = new ShareCollector();
  const setId = randomBytes(SET_ID_BYTES);
  for (let i = 1; i <= 4; i++) {
    const r = await c.offer(`s${i}`, junkShare(2, i, setId, 64));
    assert.ok(r.problems.every((p) => !p.includes("refused")), r.problems.join());
  }
  const r = await c.offer("s5", junkShare(2, 5, setId, 64));
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!, /^s5: share 5 of set [0-9a-f]{8} \(2 needed\) refused: 4 of it held already$/);
});

test("collector caps: the work per offer is bounded, not just the count of combinations", async () => {
  // 32 KiB shares at K = 32: one combination is K² steps per byte; 256 of
  // them (the count bound alone) took close to a minute.
  const c = new ShareCollector();
  const setId = randomBytes(SET_ID_BYTES);
  const yLength = MAX_SECRET_BYTES + CHECK_BYTES;
  for (let i = 1; i <= 33; i++) await c.offer(`s${i}`, junkShare(32, i, setId, yLength));
  const started = performance.now();
  const r = await c.offer("s34", junkShare(32, 34, setId, yLength));
  const elapsed = performance.now() - started;
  assert.equal(r.password, null);
  assert.match(r.problems.join(), /do not combine/);
  assert.ok(elapsed < 10_000, `one offer took ${Math.round(elapsed)} ms`);
});
