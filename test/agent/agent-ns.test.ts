// password-agent against systemd's real ask-password tools, each scenario
// in its own mount+PID namespaces (see test/helpers/agent.ts). The Mandos
// client is replaced by small shell scripts that print a secret, fail or
// sleep: that mock is deliberate — the real client is tested on its own, and
// here only the agent's handling of a client's exit and output matters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync, symlinkSync, mkdirSync, chmodSync, chownSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import {
  ASK_DIR,
  REPLY_PASSWORD,
  exitWithin,
  needsAskRig,
  runScenario,
  runScenarioIfInner,
  waitFor,
  type InnerRig,
  type Json,
  type Scenario,
} from "../helpers/agent.js";
import { requires } from "../helpers/index.js";

const SELF = fileURLToPath(import.meta.url);
const secretText = () => `s3cret-${randomBytes(12).toString("hex")}`;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/** Wait until the fake client wrote something to `record` (it has started). */
const started = (record: string, timeoutMs = 10_000) =>
  waitFor(() => readFileSync(record, "utf8").length > 0, timeoutMs, `client start (${record})`);

/**
 * A fake client that records its PID, then runs `then` (by default: sleeps
 * for a minute); `before` runs first (e.g. a trap). `started()` waits until
 * it runs and resolves with that PID.
 */
function pidClient(rig: InnerRig, then = "exec sleep 60", before = "") {
  const record = rig.recordFile("pid");
  const path = rig.script("client", `${before}echo $$ >> ${record}\n${then}`);
  return {
    path,
    started: async () => {
      await started(record);
      return Number(readFileSync(record, "utf8").trim());
    },
  };
}

function cancel(socket: string): number | null {
  return spawnSync(REPLY_PASSWORD, ["0", socket], { timeout: 5000 }).status;
}

function pidGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/** A question written by hand, asked "by" this process, answered to a socket we bind. */
async function handmadeQuestion(name: string, notAfterUs: bigint, id = "cryptsetup:handmade") {
  const { bindDatagram } = await import("../../src/sys/unix-dgram.js");
  const socket = join(ASK_DIR, `sck.${name}`);
  const receiver = bindDatagram(socket);
  const tmp = join(ASK_DIR, `.#${name}`);
  writeFileSync(tmp, `[Ask]\nPID=${process.pid}\nSocket=${socket}\nAcceptCached=0\nEcho=0\nNotAfter=${notAfterUs}\nMessage=hand made\nId=${id}\n`, { mode: 0o644 });
  renameSync(tmp, join(ASK_DIR, `ask.${name}`));
  return receiver;
}

const scenarios: Record<string, Scenario> = {
  async one(p, rig) {
    const secret = secretText();
    const record = rig.recordFile("ids");
    const client = rig.script(
      "client",
      `{ id -u; id -g; id -G; echo "$MANDOSPLUGINHELPERDIR"; echo "args:$*"; } >> ${record}\necho client-stderr-marker >&2\nprintf '%s' '${secret}'`,
    );
    const asker = rig.ask({ id: "cryptsetup:one" });
    await rig.questionOf(asker);
    const agent = rig.agent([...(p["args"] as string[]), "--", client, "--client-option", "x"]);
    const askerExit = await exitWithin(asker, 10_000, "asker");
    const agentExit = await exitWithin(agent, 10_000, "agent");
    return {
      secret,
      askerCode: askerExit.code,
      askerOut: asker.stdout(),
      agentCode: agentExit.code,
      agentStderr: agent.stderr(),
      record: readFileSync(record, "utf8").split("\n"),
    };
  },

  async several(_p, rig) {
    const secret = secretText();
    const runs = rig.recordFile("runs");
    const client = rig.script("client", `echo run >> ${runs}\nsleep 0.3\nprintf '%s' '${secret}'`);
    const askers = [1, 2, 3].map((i) => rig.ask({ id: `cryptsetup:disk${i}` }));
    for (const a of askers) await rig.questionOf(a);
    const agent = rig.agent(["--", client]);
    const exits = await Promise.all(askers.map((a) => exitWithin(a, 10_000, "asker")));
    const agentExit = await exitWithin(agent, 10_000, "agent");
    return {
      secret,
      askerCodes: exits.map((e) => e.code),
      askerOuts: askers.map((a) => a.stdout()),
      clientRuns: readFileSync(runs, "utf8").split("\n").filter(Boolean).length,
      agentCode: agentExit.code,
      agentStderr: agent.stderr(),
    };
  },

  async withdrawn(_p, rig) {
    const secret = secretText();
    const client = pidClient(rig, `sleep 1.5\nprintf '%s' '${secret}'`);
    const a = rig.ask({ id: "cryptsetup:a" });
    const b = rig.ask({ id: "cryptsetup:b" });
    const qa = await rig.questionOf(a);
    await rig.questionOf(b);
    const agent = rig.agent(["--", client.path]);
    await client.started();
    const cancelStatus = cancel(qa.socket);
    const [ea, eb] = await Promise.all([exitWithin(a, 10_000, "asker a"), exitWithin(b, 10_000, "asker b")]);
    const agentExit = await exitWithin(agent, 10_000, "agent");
    return {
      secret,
      cancelStatus,
      withdrawnFile: qa.file,
      aCode: ea.code,
      aOut: a.stdout(),
      bCode: eb.code,
      bOut: b.stdout(),
      agentCode: agentExit.code,
      agentStderr: agent.stderr(),
    };
  },

  async withdrawnOnly(_p, rig) {
    const client = pidClient(rig);
    const a = rig.ask({ id: "cryptsetup:a" });
    const qa = await rig.questionOf(a);
    const agent = rig.agent(["--", client.path]);
    const clientPid = await client.started();
    const t0 = process.hrtime.bigint();
    cancel(qa.socket);
    const agentExit = await exitWithin(agent, 10_000, "agent");
    return { agentCode: agentExit.code, agentMs: ms(t0), clientGone: pidGone(clientPid), agentStderr: agent.stderr() };
  },

  async stubbornClient(_p, rig) {
    // Ignores SIGTERM (and so does its sleep, which inherits that): only SIGKILL ends it.
    const client = pidClient(rig, "sleep 60", "trap '' TERM\n");
    const a = rig.ask({ id: "cryptsetup:a" });
    const qa = await rig.questionOf(a);
    const agent = rig.agent(["--", client.path]);
    const clientPid = await client.started();
    const t0 = process.hrtime.bigint();
    cancel(qa.socket);
    await new Promise((r) => setTimeout(r, 2000));
    const aliveAfter2s = !pidGone(clientPid);
    const agentExit = await exitWithin(agent, 15_000, "agent");
    return { agentCode: agentExit.code, agentMs: ms(t0), aliveAfter2s, clientGone: pidGone(clientPid) };
  },

  async expiredReal(_p, rig) {
    const client = pidClient(rig);
    const a = rig.ask({ id: "cryptsetup:a", timeout: 1 });
    await rig.questionOf(a);
    const t0 = process.hrtime.bigint();
    const agent = rig.agent(["--", client.path]);
    const clientPid = await client.started();
    const askerExit = await exitWithin(a, 10_000, "asker");
    const agentExit = await exitWithin(agent, 10_000, "agent");
    return { askerCode: askerExit.code, agentCode: agentExit.code, agentMs: ms(t0), clientGone: pidGone(clientPid), agentStderr: agent.stderr() };
  },

  async expiredHandmade(_p, rig) {
    const { monotonicMicros } = await import("../../src/agent/host.js");
    const client = pidClient(rig);
    // One already past its NotAfter (ignored at once), one that expires while the client works.
    const past = await handmadeQuestion("past", monotonicMicros() - 1_000_000n);
    const soon = await handmadeQuestion("soon", monotonicMicros() + 1_000_000n);
    const t0 = process.hrtime.bigint();
    const agent = rig.agent(["--", client.path]);
    const clientPid = await client.started();
    const agentExit = await exitWithin(agent, 10_000, "agent");
    const agentMs = ms(t0);
    const got = [past.receive(0), soon.receive(0)].map((d) => d !== null);
    past.close();
    soon.close();
    return { agentCode: agentExit.code, agentMs, clientGone: pidGone(clientPid), answered: got, agentStderr: agent.stderr() };
  },

  async askerDied(_p, rig) {
    const client = pidClient(rig);
    const a = rig.ask({ id: "cryptsetup:a" });
    const qa = await rig.questionOf(a);
    const agent = rig.agent(["--", client.path]);
    const clientPid = await client.started();
    const t0 = process.hrtime.bigint();
    a.child.kill("SIGKILL"); // leaves its question file behind
    await a.done;
    const agentExit = await exitWithin(agent, 10_000, "agent");
    const fileLeft = rig.questions().some((q) => q.file === qa.file);
    return { agentCode: agentExit.code, agentMs: ms(t0), clientGone: pidGone(clientPid), fileLeft, askerPid: a.pid, agentStderr: agent.stderr() };
  },

  async badFiles(_p, rig) {
    const secret = secretText();
    const record = rig.recordFile("started");
    const client = rig.script("client", `echo go >> ${record}\nsleep 2\nprintf '%s' '${secret}'`);
    const good = rig.ask({ id: "cryptsetup:good" });
    const gq = await rig.questionOf(good);
    const valid = readFileSync(join(ASK_DIR, gq.file), "utf8");
    const put = (name: string, content: string | Buffer, mode = 0o644) => {
      writeFileSync(join(ASK_DIR, name), content, { mode });
      chmodSync(join(ASK_DIR, name), mode);
    };
    const bad: Record<string, string> = {};
    // Before the agent starts (first scan) …
    put("ask.nosocket", valid.replace(/^Socket=.*$/m, ""));
    bad["ask.nosocket"] = "has no Socket";
    put("ask.badpid", valid.replace(/^PID=.*$/m, "PID=12abc"));
    bad["ask.badpid"] = "bad PID";
    put("ask.garbage", randomBytes(300));
    bad["ask.garbage"] = "";
    put("ask.huge", Buffer.alloc(1024 * 1024, "A"));
    bad["ask.huge"] = "too large";
    const agent = rig.agent(["--", client]);
    await started(record);
    // … and while it waits for the client (found by the watch).
    writeFileSync(join(rig.work, "elsewhere"), valid, { mode: 0o644 });
    symlinkSync(join(rig.work, "elsewhere"), join(ASK_DIR, "ask.symlink"));
    bad["ask.symlink"] = "symbolic link";
    put("ask.writable", valid, 0o666);
    bad["ask.writable"] = "writable by group or others";
    mkdirSync(join(ASK_DIR, "ask.directory"));
    bad["ask.directory"] = "directory";
    put("ask.notroot", valid);
    chownSync(join(ASK_DIR, "ask.notroot"), 1234, 1234);
    bad["ask.notroot"] = "owned by uid 1234";
    // More events for the same files: they must still be reported once.
    for (let i = 0; i < 5; i++) {
      writeFileSync(join(ASK_DIR, `noise${i}`), "x");
      await new Promise((r) => setTimeout(r, 20));
    }
    const goodExit = await exitWithin(good, 10_000, "good asker");
    // Bad files alone do not keep the agent: it exits once the good one is answered.
    const agentExit = await exitWithin(agent, 10_000, "agent");
    return { secret, goodCode: goodExit.code, goodOut: good.stdout(), agentCode: agentExit.code, bad, agentStderr: agent.stderr() };
  },

  async backoff(_p, rig) {
    const secret = secretText();
    const count = rig.recordFile("count");
    const starts = rig.recordFile("starts");
    const client = rig.script(
      "client",
      `n=$(($(cat ${count} | wc -l) + 1))\necho x >> ${count}\ncat /proc/uptime >> ${starts}\n[ "$n" -ge 3 ] || { echo "fake client failure $n" >&2; exit 3; }\nprintf '%s' '${secret}'`,
    );
    const a = rig.ask({ id: "cryptsetup:a" });
    await rig.questionOf(a);
    const agent = rig.agent(["--", client]);
    const askerExit = await exitWithin(a, 20_000, "asker");
    const agentExit = await exitWithin(agent, 10_000, "agent");
    const times = readFileSync(starts, "utf8").split("\n").filter(Boolean).map((l) => Number(l.split(" ")[0]));
    return { secret, askerCode: askerExit.code, askerOut: a.stdout(), agentCode: agentExit.code, starts: times, agentStderr: agent.stderr() };
  },

  async notOurs(p, rig) {
    const secret = secretText();
    const client = rig.script("client", `printf '%s' '${secret}'`);
    const good = rig.ask({ id: "cryptsetup:good" });
    const echo = rig.ask({ id: "cryptsetup:echo", echo: true, timeout: 2 });
    const foreign = rig.ask({ id: "httpd:cert", timeout: 2 });
    const none = rig.ask({ timeout: 2 });
    for (const a of [good, echo, foreign, none]) await rig.questionOf(a);
    const agent = rig.agent([...(p["args"] as string[]), "--", client]);
    const exits = await Promise.all([good, echo, foreign, none].map((a) => exitWithin(a, 10_000, "asker")));
    const agentExit = await exitWithin(agent, 10_000, "agent");
    return {
      secret,
      codes: exits.map((e) => e.code),
      outs: [good, echo, foreign, none].map((a) => a.stdout()),
      agentCode: agentExit.code,
      agentStderr: agent.stderr(),
    };
  },

  async noQuestions(_p, rig) {
    const client = rig.script("client", "printf x");
    const agent = rig.agent(["--", client]);
    const e = await exitWithin(agent, 10_000, "agent");
    return { agentCode: e.code, agentStderr: agent.stderr() };
  },

  async terminated(_p, rig) {
    const client = pidClient(rig);
    const a = rig.ask({ id: "cryptsetup:a" });
    await rig.questionOf(a);
    const agent = rig.agent(["--", client.path]);
    const clientPid = await client.started();
    agent.child.kill("SIGTERM");
    const e = await exitWithin(agent, 10_000, "agent");
    return { agentCode: e.code, agentSignal: e.signal, clientGone: pidGone(clientPid), askerRunning: a.child.exitCode === null };
  },

  async luks(_p, rig) {
    const secret = secretText();
    const vol = join(rig.work, "vol.img");
    const sh = (cmd: string, args: string[], input?: string) => spawnSync(cmd, args, { input, encoding: "utf8", timeout: 60_000 });
    const trunc = sh("truncate", ["-s", "20M", vol]);
    if (trunc.status !== 0) throw new Error(`truncate: ${trunc.stderr}`);
    const fmt = sh("cryptsetup", ["luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file=-", vol], secret);
    if (fmt.status !== 0) throw new Error(`luksFormat: ${fmt.stderr}`);
    const client = rig.script("client", `printf '%s' '${secret}'`);
    const a = rig.ask({ id: `cryptsetup:${vol}`, message: "Please enter passphrase for disk vol.img:" });
    await rig.questionOf(a);
    const agent = rig.agent(["--", client]);
    const askerExit = await exitWithin(a, 10_000, "asker");
    const agentExit = await exitWithin(agent, 10_000, "agent");
    const test = (pw: string) => sh("cryptsetup", ["open", "--test-passphrase", "--key-file=-", vol], pw).status;
    return { secret, askerCode: askerExit.code, agentCode: agentExit.code, answerOpens: test(a.stdout()), wrongOpens: test(a.stdout() + "x"), agentStderr: agent.stderr() };
  },

  async missingClient(_p, rig) {
    const a = rig.ask({ id: "cryptsetup:a" });
    await rig.questionOf(a);
    const agent = rig.agent(["--", join(rig.work, "no-such-client")]);
    const e = await exitWithin(agent, 10_000, "agent");
    return { agentCode: e.code, agentStderr: agent.stderr(), askerRunning: a.child.exitCode === null };
  },

  async sendFails(_p, rig) {
    const secret = secretText();
    const client = rig.script("client", `printf '%s' '${secret}'`);
    // A question whose socket nobody listens on: sending fails, the other is still answered.
    const dead = await handmadeQuestion("dead", 0n);
    dead.close(); // leaves a socket file with no one bound to it
    const good = rig.ask({ id: "cryptsetup:good" });
    await rig.questionOf(good);
    const agent = rig.agent(["--", client]);
    const goodExit = await exitWithin(good, 10_000, "asker");
    // The answered question file is still there and its asker (us) alive: the agent stays …
    await new Promise((r) => setTimeout(r, 1500));
    const stayed = agent.child.exitCode === null;
    // … until it is gone.
    rmSync(join(ASK_DIR, "ask.dead"));
    const agentExit = await exitWithin(agent, 10_000, "agent");
    return { secret, goodCode: goodExit.code, goodOut: good.stdout(), stayed, agentCode: agentExit.code, agentStderr: agent.stderr() };
  },

  async clock(_p, rig) {
    const { monotonicMicros } = await import("../../src/agent/host.js");
    const before = monotonicMicros();
    const a = rig.ask({ id: "cryptsetup:clock", timeout: 100 });
    const q = await rig.questionOf(a);
    const after = monotonicMicros();
    return { before: String(before), after: String(after), notAfter: q.notAfter };
  },
};

if (!(await runScenarioIfInner(scenarios))) {
  const skip = needsAskRig();
  const opts = { skip, timeout: 60_000 };
  const run = (name: string, params: Record<string, Json> = {}) => runScenario(SELF, name, params, 50_000);
  const noSecret = (stderr: unknown, secret: unknown) =>
    assert.ok(!String(stderr).includes(String(secret)), "the agent's output contains the secret");

  test("answers one question; client runs as nobody with the helper directory; exits when idle", opts, async () => {
    const { report: r } = await run("one", { args: [] });
    assert.equal(r["askerCode"], 0);
    assert.equal(r["askerOut"], r["secret"]);
    assert.equal(r["agentCode"], 0);
    assert.deepEqual((r["record"] as string[]).slice(0, 5), ["65534", "65534", "65534", "/lib/mandos/plugin-helpers", "args:--client-option x"]);
    assert.match(String(r["agentStderr"]), /client-stderr-marker/); // client's stderr passed through
    assert.match(String(r["agentStderr"]), /answered question \/run\/systemd\/ask-password\/ask\.\S+ \(cryptsetup:one\)/);
    noSecret(r["agentStderr"], r["secret"]);
  });

  test("runs the client as --user/--group, without supplementary groups", opts, async () => {
    const { report: r } = await run("one", { args: ["--user=1234", "--group", "2345", "--helper-directory=/x/helpers"] });
    assert.equal(r["askerOut"], r["secret"]);
    assert.deepEqual((r["record"] as string[]).slice(0, 4), ["1234", "2345", "2345", "/x/helpers"]);
    noSecret(r["agentStderr"], r["secret"]);
  });

  test("answers several questions with one client run", opts, async () => {
    const { report: r } = await run("several");
    assert.deepEqual(r["askerCodes"], [0, 0, 0]);
    assert.deepEqual(r["askerOuts"], [r["secret"], r["secret"], r["secret"]]);
    assert.equal(r["clientRuns"], 1);
    assert.equal(r["agentCode"], 0);
    noSecret(r["agentStderr"], r["secret"]);
  });

  test("a question withdrawn before the secret arrives is not answered; the other is", opts, async () => {
    const { report: r } = await run("withdrawn");
    assert.equal(r["cancelStatus"], 0);
    assert.equal(r["aCode"], 1);
    assert.equal(r["aOut"], "");
    assert.equal(r["bCode"], 0);
    assert.equal(r["bOut"], r["secret"]);
    assert.equal(r["agentCode"], 0);
    // The asker removes its file as it exits: the agent sees one or the other first.
    const file = `${ASK_DIR}/${String(r["withdrawnFile"])}`.replace(/\./g, "\\.");
    assert.match(String(r["agentStderr"]), new RegExp(`question ${file} was withdrawn|dropping question ${file}: asker PID \\d+ is gone`));
    noSecret(r["agentStderr"], r["secret"]);
  });

  test("when the only question is withdrawn the client is stopped and the agent exits", opts, async () => {
    const { report: r } = await run("withdrawnOnly");
    assert.equal(r["agentCode"], 0);
    assert.equal(r["clientGone"], true);
    assert.ok((r["agentMs"] as number) < 3000, `agent took ${String(r["agentMs"])} ms`);
  });

  test("a client that ignores SIGTERM is killed after the grace period", opts, async () => {
    const { report: r } = await run("stubbornClient");
    assert.equal(r["aliveAfter2s"], true);
    assert.equal(r["agentCode"], 0);
    assert.equal(r["clientGone"], true);
    const t = r["agentMs"] as number;
    assert.ok(t >= 4900 && t < 9000, `agent took ${t} ms`);
  });

  test("a question that times out (--timeout=1) stops the client and the agent", opts, async () => {
    const { report: r } = await run("expiredReal");
    assert.equal(r["askerCode"], 1);
    assert.equal(r["agentCode"], 0);
    assert.equal(r["clientGone"], true);
    assert.ok((r["agentMs"] as number) < 4000, `agent took ${String(r["agentMs"])} ms`);
  });

  test("NotAfter is honoured by the agent's own timer, and past questions are ignored", opts, async () => {
    const { report: r } = await run("expiredHandmade");
    assert.equal(r["agentCode"], 0);
    assert.equal(r["clientGone"], true);
    assert.deepEqual(r["answered"], [false, false]);
    assert.match(String(r["agentStderr"]), /ignoring question \/run\/systemd\/ask-password\/ask\.past: expired/);
    assert.match(String(r["agentStderr"]), /dropping question \/run\/systemd\/ask-password\/ask\.soon: expired/);
    assert.ok((r["agentMs"] as number) >= 900 && (r["agentMs"] as number) < 4000, `agent took ${String(r["agentMs"])} ms`);
  });

  test("a question whose asker died is dropped, the client stopped, the agent exits", opts, async () => {
    const { report: r } = await run("askerDied");
    assert.equal(r["fileLeft"], true); // SIGKILL left the file: only the PID check can tell
    assert.equal(r["agentCode"], 0);
    assert.equal(r["clientGone"], true);
    assert.match(String(r["agentStderr"]), new RegExp(`asker PID ${String(r["askerPid"])} is gone`));
    assert.ok((r["agentMs"] as number) < 4000, `agent took ${String(r["agentMs"])} ms`);
  });

  test("bad question files are skipped with one line each; the good question is answered", opts, async () => {
    const { report: r } = await run("badFiles");
    assert.equal(r["goodCode"], 0);
    assert.equal(r["goodOut"], r["secret"]);
    assert.equal(r["agentCode"], 0, String(r["agentStderr"]));
    const lines = String(r["agentStderr"]).split("\n");
    for (const [file, reason] of Object.entries(r["bad"] as Record<string, string>)) {
      const mine = lines.filter((l) => l.includes(`${ASK_DIR}/${file}:`));
      assert.equal(mine.length, 1, `lines about ${file}:\n${mine.join("\n")}\nall:\n${String(r["agentStderr"])}`);
      assert.ok(mine[0]!.includes(reason), `${file}: ${mine[0]}`);
    }
    assert.ok(!/at .*\.js:\d+/.test(String(r["agentStderr"])), "stack trace in the agent's output");
    noSecret(r["agentStderr"], r["secret"]);
  });

  test("a failing client is restarted with backoff until it prints the secret", opts, async () => {
    const { report: r } = await run("backoff");
    assert.equal(r["askerCode"], 0);
    assert.equal(r["askerOut"], r["secret"]);
    assert.equal(r["agentCode"], 0);
    const s = r["starts"] as number[];
    assert.equal(s.length, 3);
    // 1 s then 2 s (uptime has 10 ms resolution).
    assert.ok(s[1]! - s[0]! >= 0.95 && s[1]! - s[0]! < 2.5, `first delay ${s[1]! - s[0]!}`);
    assert.ok(s[2]! - s[1]! >= 1.95 && s[2]! - s[1]! < 3.5, `second delay ${s[2]! - s[1]!}`);
    assert.equal(String(r["agentStderr"]).match(/Mandos client exited with status 3; next try in/g)?.length, 2);
    assert.equal(String(r["agentStderr"]).match(/fake client failure/g)?.length, 2);
    noSecret(r["agentStderr"], r["secret"]);
  });

  test("questions wanting echo or with a foreign Id are left alone by default", opts, async () => {
    const { report: r } = await run("notOurs", { args: [] });
    assert.deepEqual(r["codes"], [0, 1, 1, 1]);
    assert.deepEqual(r["outs"], [r["secret"], "", "", ""]);
    assert.equal(r["agentCode"], 0);
    const err = String(r["agentStderr"]);
    assert.match(err, /asks for a visible answer \(Echo=1\)/);
    assert.match(err, /Id "httpd:cert" is not a question this agent answers/);
    assert.match(err, /Id "" is not a question this agent answers/);
  });

  test("--id-prefix= answers every question except those wanting echo", opts, async () => {
    const { report: r } = await run("notOurs", { args: ["--id-prefix="] });
    assert.deepEqual(r["codes"], [0, 1, 0, 0]);
    assert.deepEqual(r["outs"], [r["secret"], "", r["secret"], r["secret"]]);
  });

  test("started without any question file, it exits 1 as Mandos 1.8 does", opts, async () => {
    const { report: r } = await run("noQuestions");
    assert.equal(r["agentCode"], 1);
    assert.match(String(r["agentStderr"]), /no question files in \/run\/systemd\/ask-password/);
  });

  test("SIGTERM stops the client and the agent exits 0", opts, async () => {
    const { report: r } = await run("terminated");
    assert.equal(r["agentCode"], 0);
    assert.equal(r["clientGone"], true);
    assert.equal(r["askerRunning"], true);
  });

  test(
    "the answer opens a LUKS2 volume (cryptsetup --test-passphrase)",
    { ...opts, skip: skip || requires({ commands: ["cryptsetup", "truncate"] }) },
    async () => {
      const { report: r } = await run("luks");
      assert.equal(r["askerCode"], 0);
      assert.equal(r["answerOpens"], 0);
      assert.equal(r["wrongOpens"], 2);
      noSecret(r["agentStderr"], r["secret"]);
    },
  );

  test("a client that cannot be run is a clear one-line error, exit 1", opts, async () => {
    const { report: r } = await run("missingClient");
    assert.equal(r["agentCode"], 1);
    assert.match(String(r["agentStderr"]), /^password-agent: error: the Mandos client (\S*no-such-client) cannot run as user 65534: \1 does not exist\n$/);
  });

  test("a failed send is logged and others still answered; the agent stays while an answered question remains", opts, async () => {
    const { report: r } = await run("sendFails");
    assert.equal(r["goodCode"], 0);
    assert.equal(r["goodOut"], r["secret"]);
    assert.match(String(r["agentStderr"]), /warning: cannot answer question \/run\/systemd\/ask-password\/ask\.dead: sendto \/run\/systemd\/ask-password\/sck\.dead: ECONNREFUSED/);
    assert.equal(r["stayed"], true);
    assert.equal(r["agentCode"], 0);
    noSecret(r["agentStderr"], r["secret"]);
  });

  test("NotAfter is on the clock process.hrtime reads (CLOCK_MONOTONIC)", opts, async () => {
    const { report: r } = await run("clock");
    const notAfter = BigInt(String(r["notAfter"]));
    // systemd-ask-password wrote now(CLOCK_MONOTONIC) + 100 s between our two readings.
    assert.ok(notAfter >= BigInt(String(r["before"])) + 100_000_000n, `${notAfter} before ${String(r["before"])}`);
    assert.ok(notAfter <= BigInt(String(r["after"])) + 100_000_000n, `${notAfter} after ${String(r["after"])}`);
  });
}
