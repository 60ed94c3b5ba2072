// The client model with a fake clock: Mandos 1.8's timing rules for
// checkers, timeouts and approval, without sleeping.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ClientModel, type Effect } from "../../src/server/client-model.js";
import { MIN, clientRecord as record } from "../helpers/server-clients.js";

const of = <T extends Effect["type"]>(effects: Effect[], type: T) => effects.filter((e): e is Extract<Effect, { type: T }> => e.type === type);
const signals = (effects: Effect[]) => of(effects, "signal").map((e) => e.signal);

/** Start the client's checker at `now` by running its timer; returns the checker id. */
function runCheckerAt(m: ClientModel, now: number): number {
  m.tick(now);
  const spawned = of(m.takeEffects(), "spawnChecker");
  assert.equal(spawned.length, 1, "one checker started");
  return spawned[0]!.checkerId;
}

test("start-up spreads the first checker over one interval and expires one interval after it", () => {
  const m = new ClientModel(record(), { random: () => 0.25 });
  m.startup(1000);
  // floor(0.25 * (interval + 1)) ms after start
  assert.equal(m.nextCheckerTime, 1000 + 30_000);
  assert.equal(m.record.expires, 1000 + 30_000 + 2 * MIN);
});

test("enable schedules the first checker one interval ahead and expires two intervals ahead", () => {
  const m = new ClientModel(record({ enabled: false, expires: null, lastEnabled: null }));
  m.enable(10_000);
  assert.equal(m.record.enabled, true);
  assert.equal(m.record.lastEnabled, 10_000);
  assert.equal(m.nextCheckerTime, 10_000 + 2 * MIN);
  assert.equal(m.record.expires, 10_000 + 4 * MIN);
});

test("a successful checker sets LastCheckedOK, status 0 and bumps the expiry by the timeout", () => {
  const m = new ClientModel(record(), { random: () => 0 });
  m.startup(0);
  const id = runCheckerAt(m, 0);
  assert.equal(m.checkerRunning, true);
  m.checkerExited(3000, id, { code: 0 });
  const effects = m.takeEffects();
  assert.equal(m.checkerRunning, false);
  assert.equal(m.record.lastCheckedOK, 3000);
  assert.equal(m.record.lastCheckerStatus, 0);
  assert.equal(m.record.expires, 3000 + 5 * MIN);
  assert.deepEqual(signals(effects), [{ name: "CheckerCompleted", exitCode: 0, waitStatus: 0, command: "fping -q -- foo.example" }]);
  assert.ok(of(effects, "log").some((l) => l.message === "Checker for foo succeeded"));
});

test("the checker command is expanded at run time and shell-quoted", () => {
  const m = new ClientModel(record({ host: "a host; rm -rf /", checker: "ping %(host)s # %(name)s %%(x)s" }), { random: () => 0 });
  m.startup(0);
  m.tick(0);
  const [spawn] = of(m.takeEffects(), "spawnChecker");
  assert.equal(spawn!.command, "ping 'a host; rm -rf /' # foo %(x)s");
});

test("a failed checker records its exit code and does not bump; wait status is code << 8", () => {
  const m = new ClientModel(record(), { random: () => 0 });
  m.startup(0);
  const expires = m.record.expires;
  const id = runCheckerAt(m, 0);
  m.checkerExited(1000, id, { code: 3 });
  const effects = m.takeEffects();
  assert.equal(m.record.lastCheckerStatus, 3);
  assert.equal(m.record.lastCheckedOK, null);
  assert.equal(m.record.expires, expires);
  assert.deepEqual(signals(effects)[0], { name: "CheckerCompleted", exitCode: 3, waitStatus: 3 << 8, command: "fping -q -- foo.example" });
});

test("a checker killed by a signal is status -1, with Mandos's (-1 << 8) | signal wait status", () => {
  const m = new ClientModel(record(), { random: () => 0 });
  m.startup(0);
  const id = runCheckerAt(m, 0);
  m.checkerExited(1000, id, { signal: 9 });
  const effects = m.takeEffects();
  assert.equal(m.record.lastCheckerStatus, -1);
  assert.equal(m.record.lastCheckerSignal, 9);
  const s = signals(effects)[0]!;
  assert.ok(s.name === "CheckerCompleted");
  assert.equal(s.exitCode, -1);
  assert.equal(s.waitStatus, -247);
  assert.equal(s.waitStatus & 0x7f, 9, "WTERMSIG finds the signal");
  assert.ok(of(effects, "log").some((l) => l.level === "warning" && l.message === "Checker for foo crashed?"));
});

test("never two checkers at once; the periodic timer leaves a slow one running", () => {
  const m = new ClientModel(record({ timeoutMs: 60 * MIN }), { random: () => 0 });
  m.startup(0);
  runCheckerAt(m, 0);
  m.checkedOK(1); // keep it enabled past the first interval
  assert.equal(m.nextCheckerTime, 2 * MIN);
  m.tick(2 * MIN);
  assert.equal(of(m.takeEffects(), "spawnChecker").length, 0);
  assert.equal(m.nextCheckerTime, 4 * MIN);
  m.startChecker(2 * MIN + 1);
  assert.equal(of(m.takeEffects(), "spawnChecker").length, 0, "StartChecker does not start a second one");
});

test("when the timeout passes the client is disabled and its checker killed", () => {
  const m = new ClientModel(record(), { random: () => 0 });
  m.startup(0);
  const id = runCheckerAt(m, 0);
  assert.equal(m.record.expires, 2 * MIN);
  assert.equal(m.nextDeadline(), 2 * MIN);
  m.tick(2 * MIN);
  const effects = m.takeEffects();
  assert.equal(m.record.enabled, false);
  assert.equal(m.record.expires, null);
  assert.equal(m.checkerRunning, false);
  assert.deepEqual(of(effects, "killChecker"), [{ type: "killChecker", checkerId: id }]);
  assert.equal(m.nextDeadline(), null);
  // The killed checker's exit is not reported.
  m.checkerExited(2 * MIN + 5, id, { signal: 15 });
  assert.equal(signals(m.takeEffects()).length, 0);
  assert.equal(m.record.lastCheckerStatus, -2);
});

test("a client with no successful check for the timeout is disabled even while checkers fail", () => {
  const m = new ClientModel(record({ intervalMs: MIN, timeoutMs: 3 * MIN }), { random: () => 0 });
  m.startup(0);
  let now = 0;
  const id = runCheckerAt(m, now);
  m.checkerExited(now + 10, id, { code: 0 });
  m.takeEffects();
  const deadline = m.record.expires!;
  while (m.record.enabled) {
    now = m.nextDeadline()!;
    m.tick(now);
    for (const s of of(m.takeEffects(), "spawnChecker")) m.checkerExited(now + 10, s.checkerId, { code: 1 });
    m.takeEffects();
  }
  assert.equal(now, deadline);
});

test("setting Timeout moves the expiry; a timeout already passed disables", () => {
  const m = new ClientModel(record(), { random: () => 0 });
  m.startup(0);
  const id = runCheckerAt(m, 0);
  m.checkerExited(1000, id, { code: 0 });
  assert.equal(m.record.expires, 1000 + 5 * MIN);
  m.setTimeout(2000, 10 * MIN);
  assert.equal(m.record.expires, 1000 + 10 * MIN);
  m.setTimeout(3 * MIN, MIN);
  assert.equal(m.record.enabled, false);
});

test("setting Interval reschedules the checker and starts one now", () => {
  const m = new ClientModel(record(), { random: () => 0.5 });
  m.startup(0);
  m.setInterval(5000, 30_000);
  assert.equal(of(m.takeEffects(), "spawnChecker").length, 1);
  assert.equal(m.nextCheckerTime, 35_000);
  const disabled = new ClientModel(record({ enabled: false, expires: null }));
  disabled.setInterval(0, 30_000);
  assert.equal(of(disabled.takeEffects(), "spawnChecker").length, 0);
});

test("CheckedOK (and bump) works on a disabled client without re-enabling it", () => {
  const m = new ClientModel(record({ enabled: false, expires: null }));
  m.checkedOK(1000);
  assert.equal(m.record.lastCheckedOK, 1000);
  assert.equal(m.record.lastCheckerStatus, 0);
  assert.equal(m.record.expires, null);
  assert.equal(m.record.enabled, false);
});

test("a bad checker template is reported and no checker starts", () => {
  const m = new ClientModel(record({ checker: "ping %(nosuch)s" }), { random: () => 0 });
  m.startup(0);
  m.tick(0);
  const effects = m.takeEffects();
  assert.equal(of(effects, "spawnChecker").length, 0);
  assert.ok(of(effects, "log").some((l) => l.level === "error" && l.message.includes("Could not format string")));
});

// ---- Approval ---------------------------------------------------------------

function requestResult(effects: Effect[], id: number): boolean | undefined {
  return of(effects, "requestDone").find((e) => e.requestId === id)?.granted;
}

test("no approval delay: granted at once, even when not approved by default (as Mandos)", () => {
  const m = new ClientModel(record({ approvedByDefault: false }));
  m.beginRequest(0, 1);
  const effects = m.takeEffects();
  assert.equal(requestResult(effects, 1), true);
  assert.equal(signals(effects).length, 0);
  assert.equal(m.approvalPending, false);
});

test("a disabled client is rejected with Rejected(\"Disabled\")", () => {
  const m = new ClientModel(record({ enabled: false, expires: null }));
  m.beginRequest(0, 1);
  const effects = m.takeEffects();
  assert.equal(requestResult(effects, 1), false);
  assert.deepEqual(signals(effects), [{ name: "Rejected", reason: "Disabled" }]);
});

test("with a delay: NeedApproval, ApprovalPending, then Approve(true) grants", () => {
  const m = new ClientModel(record({ approvalDelayMs: 30_000, approvedByDefault: false }));
  m.beginRequest(1000, 7);
  let effects = m.takeEffects();
  assert.deepEqual(signals(effects), [{ name: "NeedApproval", timeoutMs: 30_000, approvedByDefault: false }]);
  assert.equal(requestResult(effects, 7), undefined);
  assert.equal(m.approvalPending, true);
  assert.equal(m.record.lastApprovalRequest, 1000);
  assert.equal(m.nextDeadline(), 31_000);
  m.approve(2000, true);
  effects = m.takeEffects();
  assert.equal(requestResult(effects, 7), true);
  assert.equal(m.approvalPending, false);
});

test("Approve(false) denies with Rejected(\"Denied\")", () => {
  const m = new ClientModel(record({ approvalDelayMs: 30_000 }));
  m.beginRequest(0, 1);
  m.takeEffects();
  m.approve(10, false);
  const effects = m.takeEffects();
  assert.equal(requestResult(effects, 1), false);
  assert.deepEqual(signals(effects), [{ name: "Rejected", reason: "Denied" }]);
});

test("when the delay runs out, approved_by_default decides", () => {
  const yes = new ClientModel(record({ approvalDelayMs: 5000, approvedByDefault: true }));
  yes.beginRequest(0, 1);
  yes.tick(4999);
  assert.equal(requestResult(yes.takeEffects(), 1), undefined);
  yes.tick(5000);
  assert.equal(requestResult(yes.takeEffects(), 1), true);

  const no = new ClientModel(record({ approvalDelayMs: 5000, approvedByDefault: false }));
  no.beginRequest(0, 1);
  no.takeEffects();
  no.tick(5000);
  const effects = no.takeEffects();
  assert.equal(requestResult(effects, 1), false);
  assert.deepEqual(signals(effects), [{ name: "Rejected", reason: "Approval timed out" }]);
  assert.equal(no.approvalPending, false);
});

test("an approval lasts approval_duration: requests in that window are answered at once", () => {
  const m = new ClientModel(record({ approvalDelayMs: 30_000, approvalDurationMs: 10_000, approvedByDefault: false }));
  m.approve(0, true);
  m.beginRequest(5000, 1);
  let effects = m.takeEffects();
  assert.equal(requestResult(effects, 1), true);
  assert.equal(signals(effects).length, 0, "no NeedApproval within the approval's duration");
  m.tick(10_000);
  m.beginRequest(10_001, 2);
  effects = m.takeEffects();
  assert.equal(requestResult(effects, 2), undefined, "after the duration, a new request waits again");
  assert.equal(signals(effects)[0]?.name, "NeedApproval");
  // A denial within its duration rejects new requests at once.
  m.approve(11_000, false);
  m.beginRequest(12_000, 3);
  assert.equal(requestResult(m.takeEffects(), 3), false);
});

test("disabling a client while a request waits rejects it (Mandos could still send the secret)", () => {
  const m = new ClientModel(record({ approvalDelayMs: 30_000, approvedByDefault: true }));
  m.beginRequest(0, 1);
  m.takeEffects();
  m.disable(1000);
  const effects = m.takeEffects();
  assert.equal(requestResult(effects, 1), false);
  assert.deepEqual(signals(effects), [{ name: "Rejected", reason: "Disabled" }]);
});

test("a request whose peer left is forgotten and no longer pending", () => {
  const m = new ClientModel(record({ approvalDelayMs: 30_000 }));
  m.beginRequest(0, 1);
  m.beginRequest(0, 2);
  m.takeEffects();
  m.cancelRequest(100, 1);
  assert.equal(m.approvalPending, true);
  m.cancelRequest(100, 2);
  assert.equal(m.approvalPending, false);
  m.approve(200, true);
  assert.equal(of(m.takeEffects(), "requestDone").length, 0);
});

test("after the secret is sent: GotSecret and expiry bumped by extended_timeout", () => {
  const m = new ClientModel(record());
  m.secretSent(1000);
  const effects = m.takeEffects();
  assert.deepEqual(signals(effects), [{ name: "GotSecret" }]);
  assert.equal(m.record.expires, 1000 + 15 * MIN);
  assert.ok(of(effects, "log").some((l) => l.message === "Sending secret to foo"));
});
