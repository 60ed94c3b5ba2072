// The server pool's decisions with a fake clock and scripted servers: a
// server whose secret decrypted is not asked again, secrets are offered
// until one makes the password, and failures are retried per server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ServerPool, type PoolEffects } from "../../src/client/servers.js";
import type { ServerAddress } from "../../src/client/fetch.js";

function rig(answers: Record<number, () => Promise<Buffer>>, accept: PoolEffects["accept"]) {
  const timers: { ms: number; fn: () => void }[] = [];
  const asked: number[] = [];
  const failures: string[] = [];
  const rounds: number[] = [];
  const pool = new ServerPool(1000, {
    attempt: (s) => {
      asked.push(s.port);
      return answers[s.port]!();
    },
    accept,
    setTimer: (ms, fn) => {
      const t = { ms, fn };
      timers.push(t);
      return () => timers.splice(timers.indexOf(t), 1);
    },
    onFailure: (s, err) => failures.push(`${s.port}: ${(err as Error).message}`),
    newRound: () => rounds.push(asked.length),
  });
  const fire = async () => {
    for (const t of timers.splice(0)) t.fn();
    await new Promise((r) => setImmediate(r));
  };
  return { pool, asked, failures, rounds, fire, timers };
}

const at = (port: number): ServerAddress => ({ address: "::1", port });
const tick = () => new Promise((r) => setImmediate(r));

test("secrets are offered until one makes the password; an answered server is never asked again", async () => {
  const offered: string[] = [];
  let down = true;
  const { pool, asked, failures, fire } = rig(
    {
      1: async () => Buffer.from("share-1"),
      2: async () => {
        if (down) throw new Error("refused");
        return Buffer.from("share-2");
      },
    },
    async (s, secret) => {
      offered.push(`${s.port}:${secret}`);
      return offered.length === 2 ? Buffer.from("password") : null;
    },
  );
  pool.add(at(1));
  pool.add(at(2));
  await tick();
  assert.deepEqual(offered, ["1:share-1"]);
  assert.deepEqual(failures, ["2: refused"]);
  await fire(); // only server 2 is due again
  await fire();
  assert.deepEqual(asked, [1, 2, 2, 2]);
  pool.remove(at(1));
  pool.add(at(1)); // gone and back: it already answered
  down = false;
  await fire();
  assert.equal(String(await pool.result), "password");
  assert.deepEqual(asked, [1, 2, 2, 2, 2]);
  assert.deepEqual(offered, ["1:share-1", "2:share-2"]);
});

test("a password arriving after the pool stopped is wiped", async () => {
  let release!: () => void;
  const late = Buffer.from("late");
  const { pool } = rig(
    {
      1: async () => Buffer.from("a"),
      2: async () => Buffer.from("b"),
    },
    async (s) => {
      if (s.port === 1) return Buffer.from("first");
      await new Promise<void>((r) => (release = r));
      return late;
    },
  );
  pool.add(at(2));
  pool.add(at(1));
  assert.equal(String(await pool.result), "first");
  release();
  await tick();
  assert.ok(late.every((b) => b === 0));
});

test("every server answered without a password: after the retry time all are asked again, once", async () => {
  const { pool, asked, rounds, fire, timers } = rig(
    { 1: async () => Buffer.from("a"), 2: async () => Buffer.from("b") },
    async () => (asked.length === 4 ? Buffer.from("pw") : null),
  );
  pool.add(at(1));
  pool.add(at(2));
  await tick();
  await tick();
  assert.deepEqual(asked, [1, 2]);
  assert.equal(timers.length, 1, "one new round scheduled, not one per server");
  assert.deepEqual(rounds, []);
  await fire();
  assert.deepEqual(rounds, [2]);
  assert.equal(String(await pool.result), "pw");
  assert.deepEqual(asked, [1, 2, 1, 2]);
});
