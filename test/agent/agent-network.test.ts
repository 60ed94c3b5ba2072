// The agent doing network steps for the client it runs as user 65534,
// inside a network namespace this test creates: requests over the
// client's descriptor 3 checked against the client's own --interface
// option, everything undone when the client ends, and a client past the
// protocol's bounds killed with one log line. The clients here are small
// Node scripts that send requests by hand (the real client against the
// agent is in test/client/netns.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BIN, requires, tempDir } from "../helpers/index.js";
import { Netns, childMain, isChild, runInNetns } from "../helpers/client-network.js";
import { readInterface } from "../../src/sys/interfaces.js";
import { REQUEST_LIMITS } from "../../src/protocol/privileged-requests.js";

const SELF = fileURLToPath(import.meta.url);

/** What a scripted client starts with: its channel, and asking with replies awaited. */
const PRELUDE = `
const net = require("node:net");
const ch = new net.Socket({ fd: 3, readable: true, writable: true });
const replies = new Map(); const waiters = []; let buf = "";
ch.on("data", (d) => {
  buf += d;
  for (let i; (i = buf.indexOf("\\n")) >= 0; buf = buf.slice(i + 1)) {
    const m = JSON.parse(buf.slice(0, i));
    replies.set(m.id, m.error); waiters.splice(0).forEach((w) => w());
  }
});
let id = 0;
const send = (r) => { ch.write(JSON.stringify({ type: "request", id: ++id, ...r }) + "\\n"); return id; };
const ask = async (r) => { const n = send(r); while (!replies.has(n)) await new Promise((w) => waiters.push(w)); return replies.get(n); };
const up = (n) => (Number(fs.readFileSync("/sys/class/net/" + n + "/flags", "utf8")) & 1) === 1;
const routes = () => require("node:child_process").execFileSync("ip", ["-6", "route", "show", "2001:db8::5"], { encoding: "utf8" }).trim();
`;

interface AgentRun {
  code: number | null;
  stderr: string;
  record: unknown;
  vaAfter: boolean;
  routeAfter: string;
}

const scenarios = {
  /** The agent (root, --prefetch) runs `body` as its client with `args`; report what it saw and what is left after. */
  async agent(arg: unknown): Promise<AgentRun> {
    const { work, body, args } = arg as { work: string; body: string; args: string[] };
    const questions = join(work, "questions");
    mkdirSync(questions, { mode: 0o755 });
    const record = join(work, "record.json");
    writeFileSync(record, "", { mode: 0o666 });
    chmodSync(record, 0o666);
    const client = join(work, "client");
    const prelude = body.includes("ask(") ? PRELUDE : "";
    writeFileSync(client, `#!${process.execPath}\nconst fs = require("node:fs");\nconst RECORD = ${JSON.stringify(record)};\n${prelude}\n${body}\n`, { mode: 0o755 });
    chmodSync(client, 0o755);
    const agent = spawn(process.execPath, [join(BIN, "password-agent"), "--prefetch", "--hold-time=1", `--agent-directory=${questions}`, "--", client, ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    agent.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => agent.on("close", resolve));
    const { execFileSync } = await import("node:child_process");
    return {
      code,
      stderr,
      record: JSON.parse(readFileSync(record, "utf8") || "null") as unknown,
      vaAfter: (readInterface("va")!.flags & 1) === 1,
      routeAfter: execFileSync("ip", ["-6", "route", "show", "2001:db8::5"], { encoding: "utf8" }).trim(),
    };
  },
};

function inNamespace(body: string, args: string[]): Promise<AgentRun> {
  const work = tempDir();
  chmodSync(work.path, 0o755);
  const ns = Netns.create();
  return (async () => {
    try {
      ns.ip("link", "set", "lo", "up");
      ns.veth("va", "vb");
      ns.veth("vc", "vd");
      const r = await runInNetns<AgentRun>(ns, SELF, "agent", { work: work.path, body, args }, { timeoutMs: 60_000 });
      assert.equal(r.error, null, r.stderr);
      return r.result!;
    } finally {
      ns.delete();
      work.cleanup();
    }
  })();
}

if (isChild()) {
  await childMain(scenarios);
} else {
  const skip = requires({ root: true, commands: ["ip"] });

  test("requests the client's --interface allows are done for it, others refused, all undone when it ends", { skip, timeout: 90_000 }, async () => {
    const r = await inNamespace(
      `(async () => {
        const out = { uid: process.getuid(), role: process.env.MANDOS_CLIENT_ROLE };
        out.upVa = await ask({ op: "bring-up", interface: "va" });
        out.vaDuring = up("va");
        out.upVc = await ask({ op: "bring-up", interface: "vc" });
        out.upGone = await ask({ op: "bring-up", interface: "nope0" });
        out.route = await ask({ op: "add-route", address: "2001:db8::5", interface: "va" });
        out.routeDuring = routes();
        out.routeVc = await ask({ op: "add-route", address: "2001:db8::6", interface: "vc" });
        fs.writeFileSync(RECORD, JSON.stringify(out));
        process.stdout.write("the secret");
        process.exit(0);
      })();`,
      ["--interface", "va", "--debug"],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /holding the secret/);
    const rec = r.record as Record<string, unknown>;
    assert.deepEqual(rec.uid, 65534);
    assert.deepEqual(rec.role, "agent");
    assert.equal(rec.upVa, null);
    assert.equal(rec.vaDuring, true);
    assert.equal(rec.upVc, "cannot bring up vc: the --interface selection does not take it (not using unnamed interface)");
    assert.equal(rec.upGone, "cannot bring up nope0: no such interface");
    assert.equal(rec.route, null);
    assert.match(rec.routeDuring as string, /^2001:db8::5 dev va /);
    assert.equal(rec.routeVc, "cannot add a route to 2001:db8::6 on vc: not one of the interfaces in use");
    assert.deepEqual([r.vaAfter, r.routeAfter], [false, ""], "va down and the route gone once the client ended");
  });

  test("a client past the bounds is killed with one line, its steps undone, and the next run served afresh", { skip, timeout: 90_000 }, async () => {
    const r = await inNamespace(
      `const runs = fs.readFileSync(RECORD, "utf8") === "" ? 1 : 2;
      if (runs === 1) {
        fs.writeFileSync(RECORD, JSON.stringify({ first: true }));
        ask({ op: "bring-up", interface: "va" }).then(() => {
          for (let i = 0; i < 10; i++) send({ op: "bring-up", interface: "va" });
        });
        setInterval(() => {}, 1e6);
      } else {
        ask({ op: "bring-up", interface: "va" }).then((error) => {
          fs.writeFileSync(RECORD, JSON.stringify({ second: error, vaDuring: up("va") }));
          process.stdout.write("the secret");
          process.exit(0);
        });
      }`,
      ["--interface=va"],
    );
    assert.equal(r.code, 0, r.stderr);
    const stopped = r.stderr.split("\n").filter((l) => l.includes("stopped it"));
    assert.equal(stopped.length, 1, r.stderr);
    assert.match(stopped[0]!, new RegExp(`^password-agent: error: the Mandos client \\S+ sent a request while ${REQUEST_LIMITS.maxUnanswered} were unanswered; stopped it$`));
    assert.match(r.stderr, /warning: Mandos client was killed by SIGKILL; next try in 1 s/, "a failed run: tried again");
    assert.deepEqual(r.record, { second: null, vaDuring: true });
    assert.equal(r.vaAfter, false);
  });

  test("a client whose options are not the client's gets no channel", { skip, timeout: 90_000 }, async () => {
    const r = await inNamespace(
      `fs.writeFileSync(RECORD, JSON.stringify({ role: process.env.MANDOS_CLIENT_ROLE ?? null, socket3: (() => { try { return fs.fstatSync(3).isSocket(); } catch { return false; } })() }));
      process.stdout.write("the secret");`,
      ["--not-a-client-option"],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.record, { role: null, socket3: false });
  });
}
