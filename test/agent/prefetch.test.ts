// password-agent --prefetch, as in the initramfs: the client runs before
// any question, its secret is held in the agent's memory and answers real
// systemd-ask-password questions the moment they appear, a question asked
// again with an Id it answered gets a fresh fetch, and the secret is dropped
// when its hold time is over or the agent stops. Each scenario runs in its
// own mount+PID namespaces (test/helpers/agent.ts); the Mandos client is a
// shell script printing a numbered secret (deliberate: only the agent's
// handling of it is under test here; the real client is tested on its own).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { exitWithin, needsAskRig, runScenario, runScenarioIfInner, waitFor, type InnerRig, type Json, type Scenario } from "../helpers/agent.js";

const SELF = fileURLToPath(import.meta.url);

/** A client that counts its runs and prints "<prefix>-<run number>". */
function countingClient(rig: InnerRig) {
  const prefix = `s3cret-${randomBytes(8).toString("hex")}`;
  const runs = rig.recordFile("runs");
  const path = rig.script("client", `echo run >> ${runs}\nn=$(wc -l < ${runs})\nprintf '%s' "${prefix}-$n"`);
  return { path, prefix, runs: () => readFileSync(runs, "utf8").split("\n").filter(Boolean).length };
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

const scenarios: Record<string, Scenario> = {
  async held(_p, rig) {
    const client = countingClient(rig);
    const agent = rig.agent(["--prefetch", "--hold-time=60", "--", client.path]);
    // No question yet: the client runs anyway, and its secret is held.
    await waitFor(() => /holding the secret/.test(agent.stderr()), 10_000, "the held secret");
    const runsBeforeQuestion = client.runs();
    const answers: Record<string, Json> = {};
    for (const id of ["cryptsetup:root", "cryptsetup:swap"]) {
      const t0 = process.hrtime.bigint();
      const asker = rig.ask({ id });
      const e = await exitWithin(asker, 10_000, id);
      answers[id] = { code: e.code, out: asker.stdout(), ms: ms(t0), runs: client.runs() };
    }
    // systemd-cryptsetup asks again with the same Id when the passphrase failed.
    const again = rig.ask({ id: "cryptsetup:root" });
    const e = await exitWithin(again, 10_000, "asked again");
    answers["again"] = { code: e.code, out: again.stdout(), runs: client.runs() };
    const stillRunning = agent.child.exitCode === null;
    agent.child.kill("SIGTERM");
    const agentExit = await exitWithin(agent, 10_000, "agent");
    return { prefix: client.prefix, runsBeforeQuestion, answers, stillRunning, agentCode: agentExit.code, agentStderr: agent.stderr() };
  },

  async expires(_p, rig) {
    const client = countingClient(rig);
    const t0 = process.hrtime.bigint();
    const agent = rig.agent(["--prefetch", "--hold-time=1", "--", client.path]);
    const agentExit = await exitWithin(agent, 10_000, "agent");
    const lived = ms(t0);
    // A later question: the path unit starts the agent again, which fetches afresh.
    const asker = rig.ask({ id: "cryptsetup:late" });
    await rig.questionOf(asker);
    const again = rig.agent(["--prefetch", "--hold-time=1", "--", client.path]);
    const askerExit = await exitWithin(asker, 10_000, "asker");
    const againExit = await exitWithin(again, 10_000, "second agent");
    return {
      prefix: client.prefix,
      agentCode: agentExit.code,
      lived,
      agentStderr: agent.stderr(),
      askerCode: askerExit.code,
      askerOut: asker.stdout(),
      runs: client.runs(),
      againCode: againExit.code,
      againStderr: again.stderr(),
    };
  },
};

if (!(await runScenarioIfInner(scenarios))) {
  const opts = { skip: needsAskRig(), timeout: 60_000 };
  const run = (name: string) => runScenario(SELF, name, {}, 50_000);
  const noSecret = (stderr: unknown, prefix: unknown) => assert.ok(!String(stderr).includes(String(prefix)), "the agent's output contains the secret");

  test("prefetch: fetched before any question, every question answered from memory at once, a question asked again fetched afresh", opts, async () => {
    const { report: r } = await run("held");
    const a = r["answers"] as Record<string, Record<string, Json>>;
    assert.equal(r["runsBeforeQuestion"], 1);
    assert.deepEqual([a["cryptsetup:root"]!["code"], a["cryptsetup:root"]!["out"], a["cryptsetup:root"]!["runs"]], [0, `${r["prefix"]}-1`, 1]);
    // Another disk's question: the same held secret, no second fetch.
    assert.deepEqual([a["cryptsetup:swap"]!["code"], a["cryptsetup:swap"]!["out"], a["cryptsetup:swap"]!["runs"]], [0, `${r["prefix"]}-1`, 1]);
    // The root disk asks again: never the same held secret twice.
    assert.deepEqual([a["again"]!["code"], a["again"]!["out"], a["again"]!["runs"]], [0, `${r["prefix"]}-2`, 2]);
    assert.equal(r["stillRunning"], true);
    assert.equal(r["agentCode"], 0);
    const log = String(r["agentStderr"]);
    assert.match(log, /dropped the held secret: a question it answered was asked again/);
    assert.match(log, /dropped the held secret: the agent is stopping\n$/);
    noSecret(log, r["prefix"]);
  });

  test("prefetch: the held secret is dropped when its hold time is over; a later question fetches again", opts, async () => {
    const { report: r } = await run("expires");
    assert.equal(r["agentCode"], 0);
    assert.ok(Number(r["lived"]) >= 1000, `exited after ${String(r["lived"])} ms`);
    assert.match(String(r["agentStderr"]), /dropped the held secret: its hold time is over\n$/);
    assert.equal(r["askerCode"], 0);
    assert.equal(r["askerOut"], `${r["prefix"]}-2`);
    assert.equal(r["runs"], 2);
    assert.equal(r["againCode"], 0);
    noSecret(r["agentStderr"], r["prefix"]);
    noSecret(r["againStderr"], r["prefix"]);
  });
}
