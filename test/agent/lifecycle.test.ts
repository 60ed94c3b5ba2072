// The agent's decisions, pure: next step, backoff, client outcome, datagram.
import { test } from "node:test";
import assert from "node:assert/strict";
import { answerDatagram, classifyClientEnd, hopelessReason, nextStep, restartDelayMs, tally, type AgentView, type ClientEnd } from "../../src/agent/lifecycle.js";

/** A view with nothing held and no prefetch, as in the on-demand agent. */
const view = (v: Pick<AgentView, "pending" | "lingering" | "client" | "nowMs"> & Partial<AgentView>): AgentView => ({ reasked: 0, held: null, prefetch: false, ...v });

const idle = { kind: "idle" } as const;
const running = { kind: "running" } as const;
const stopping = { kind: "stopping" } as const;

test("a pending question starts the client, once", () => {
  assert.deepEqual(nextStep(view({ pending: 1, lingering: 0, client: idle, nowMs: 0 })), { kind: "start-client" });
  assert.deepEqual(nextStep(view({ pending: 3, lingering: 2, client: running, nowMs: 0 })), { kind: "wait" });
  assert.deepEqual(nextStep(view({ pending: 1, lingering: 0, client: stopping, nowMs: 0 })), { kind: "wait" });
});

test("backoff delays the restart until its time", () => {
  const backoff = { kind: "backoff", untilMs: 5000 } as const;
  assert.deepEqual(nextStep(view({ pending: 1, lingering: 0, client: backoff, nowMs: 4000 })), { kind: "wait", untilMs: 5000 });
  assert.deepEqual(nextStep(view({ pending: 1, lingering: 0, client: backoff, nowMs: 5000 })), { kind: "start-client" });
  // No question left: nothing to retry for.
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: backoff, nowMs: 0 })), { kind: "exit", code: 0 });
});

test("no pending question: stop the client, then exit once no live question remains", () => {
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: running, nowMs: 0 })), { kind: "stop-client" });
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 1, client: running, nowMs: 0 })), { kind: "stop-client" });
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: stopping, nowMs: 0 })), { kind: "wait" });
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 1, client: idle, nowMs: 0 })), { kind: "wait" });
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: idle, nowMs: 0 })), { kind: "exit", code: 0 });
});

test("restart delays double from 1 s up to 30 s", () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 100].map(restartDelayMs), [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
});

test("client outcomes", () => {
  const base: ClientEnd = { code: 0, signal: null, outputLength: 8, overflow: false, stoppedByUs: false };
  assert.deepEqual(classifyClientEnd(base), { kind: "password" });
  assert.deepEqual(classifyClientEnd({ ...base, stoppedByUs: true }), { kind: "stopped" });
  assert.deepEqual(classifyClientEnd({ ...base, code: 1 }), { kind: "failed", reason: "exited with status 1" });
  assert.deepEqual(classifyClientEnd({ ...base, code: null, signal: "SIGSEGV" }), { kind: "failed", reason: "was killed by SIGSEGV" });
  assert.equal(classifyClientEnd({ ...base, outputLength: 0 }).kind, "failed");
  assert.equal(classifyClientEnd({ ...base, overflow: true }).kind, "failed");
});

test("the answer is '+', the password bytes and a NUL, binary-safe", () => {
  const pw = Buffer.from([1, 0xff, 0x0a]);
  assert.deepEqual(answerDatagram(pw), Buffer.from([0x2b, 1, 0xff, 0x0a, 0]));
  assert.deepEqual(answerDatagram(Buffer.alloc(0)), Buffer.from("+\0"));
});

test("tally: pending, lingering (answered or left to others), void", () => {
  assert.deepEqual(
    tally([
      { status: "pending", answered: false },
      { status: "pending", answered: false },
      { status: "pending", answered: true },
      { status: "wants-echo", answered: false },
      { status: "not-ours", answered: false },
      { status: "expired", answered: false },
      { status: "asker-gone", answered: true },
    ]),
    { pending: 2, reasked: 0, lingering: 3 },
  );
  assert.deepEqual(tally([{ status: "pending", answered: false }], true), { pending: 0, reasked: 0, lingering: 0 });
  assert.deepEqual(tally([]), { pending: 0, reasked: 0, lingering: 0 });
  assert.deepEqual(
    tally([
      { status: "pending", answered: false, reasked: true },
      { status: "pending", answered: false },
      { status: "pending", answered: true, reasked: true },
    ]),
    { pending: 2, reasked: 1, lingering: 1 },
  );
});

test("a client that cannot read its files is hopeless; other failures are retried", () => {
  const end = (code: number, stderrTail: string): ClientEnd => ({ code, signal: null, outputLength: 0, overflow: false, stoppedByUs: false, stderrTail });
  // Node, when the program tree is out of the user's reach.
  assert.deepEqual(classifyClientEnd(end(1, "node:internal/errors:496\nError: EACCES: permission denied, open '/root/m/dist/src/client/main.js'\n")), {
    kind: "hopeless",
    reason: "cannot read /root/m/dist/src/client/main.js (EACCES)",
  });
  assert.match(
    hopelessReason(end(1, "Error [ERR_MODULE_NOT_FOUND]: Cannot find module '/root/m/dist/src/client/main.js' imported from /x\n"))!,
    /^cannot load \/root\/m\/dist\/src\/client\/main\.js /,
  );
  // A C client's perror().
  assert.equal(hopelessReason(end(1, "Mandos plugin mandos-client: fopen: Permission denied\n")), "Mandos plugin mandos-client: fopen: Permission denied");
  // Our client's key errors exit with EX_CONFIG.
  assert.equal(
    hopelessReason(end(78, "mandos-client: error: cannot read --seckey file /k/seckey.txt: ENOENT\n")),
    "exited with status 78: mandos-client: error: cannot read --seckey file /k/seckey.txt: ENOENT",
  );
  assert.equal(hopelessReason(end(64, "")), "exited with status 64");
  // No server yet, a refused connection: worth another try.
  assert.equal(hopelessReason(end(1, "mandos-client: no server answered\n")), null);
  assert.deepEqual(classifyClientEnd(end(1, "mandos-client: connect ECONNREFUSED ::1:1\n")), { kind: "failed", reason: "exited with status 1" });
});

test("prefetch: the client starts with no question, and its secret is held", () => {
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: idle, nowMs: 0, prefetch: true })), { kind: "start-client" });
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: running, nowMs: 0, prefetch: true })), { kind: "wait" });
  const backoff = { kind: "backoff", untilMs: 5000 } as const;
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: backoff, nowMs: 10, prefetch: true })), { kind: "wait", untilMs: 5000 });
  // Fetched: held until its time, with nothing else to do.
  const held = { untilMs: 120_000 };
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: idle, nowMs: 1000, held })), { kind: "wait", untilMs: 120_000 });
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 2, client: idle, nowMs: 1000, held })), { kind: "wait", untilMs: 120_000 });
});

test("a held secret answers questions the moment they appear, until its time is up", () => {
  const held = { untilMs: 120_000 };
  assert.deepEqual(nextStep(view({ pending: 2, lingering: 0, client: idle, nowMs: 1000, held })), { kind: "answer-held" });
  assert.deepEqual(nextStep(view({ pending: 1, lingering: 0, client: idle, nowMs: 120_000, held })), { kind: "drop-held" });
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: idle, nowMs: 120_000, held })), { kind: "drop-held" });
  // Dropped, with a question pending: fetch again (not prefetching any more).
  assert.deepEqual(nextStep(view({ pending: 1, lingering: 0, client: idle, nowMs: 120_001 })), { kind: "start-client" });
  // Dropped, nothing pending: the agent exits; the path unit starts it for later questions.
  assert.deepEqual(nextStep(view({ pending: 0, lingering: 0, client: idle, nowMs: 120_001 })), { kind: "exit", code: 0 });
});

test("a question asked again after the held secret answered its Id drops it and fetches afresh", () => {
  const held = { untilMs: 120_000 };
  assert.deepEqual(nextStep(view({ pending: 2, reasked: 1, lingering: 0, client: idle, nowMs: 1000, held })), { kind: "drop-held" });
  // Next round, nothing held: the question counts as pending and the client starts.
  assert.deepEqual(nextStep(view({ pending: 2, lingering: 0, client: idle, nowMs: 1000 })), { kind: "start-client" });
});
