// The client's root supervisor against real worker processes (user 65534)
// that misbehave: flooding their output, sending thousands of requests,
// oversized or malformed ones. It must stay bounded, kill such a worker at
// once, and fail with one line saying what the worker did. A well-behaved
// worker's requests are served by a real network session inside a network
// namespace this test creates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { makeLogger } from "../../src/cli/log.js";
import { superviseWorker, MAX_WORKER_OUTPUT, WorkerError } from "../../src/client/supervisor.js";
import { NetworkSession } from "../../src/client/network/session.js";
import { listRoutes } from "../../src/client/network/routes.js";
import { REQUEST_LIMITS } from "../../src/protocol/privileged-requests.js";
import type { StartMessage } from "../../src/client/ipc.js";
import { requires } from "../helpers/index.js";
import { Netns, childMain, isChild, runInNetns } from "../helpers/client-network.js";

const SELF = fileURLToPath(import.meta.url);
const quiet = makeLogger("test", { level: "error", write: () => {} });
const START: StartMessage = {
  type: "start",
  keys: { tlsPublicPem: "tls public", tlsPrivatePem: "tls private", pgpPublic: "pgp public", pgpSecret: "pgp secret" },
  zone: null,
  interfaces: ["va"],
};

// What every scripted worker starts with: its end of the channel (fd 3),
// replies collected, and helpers to send requests and to wait.
const PRELUDE = `
const net = require("node:net");
const ch = new net.Socket({ fd: 3, readable: true, writable: true });
ch.on("close", () => process.exit(1)); // the supervisor is gone
const replies = new Map(); const waiters = []; let buf = "";
ch.on("data", (d) => {
  buf += d;
  for (let i; (i = buf.indexOf("\\n")) >= 0; buf = buf.slice(i + 1)) {
    const m = JSON.parse(buf.slice(0, i));
    if (m.type === "reply") { replies.set(m.id, m.error); waiters.splice(0).forEach((w) => w()); }
  }
});
const reply = async (id) => { while (!replies.has(id)) await new Promise((w) => waiters.push(w)); return replies.get(id); };
const route = (id, address, iface) => JSON.stringify({ type: "request", id, op: "add-route", address, interface: iface }) + "\\n";
const ask = async (id, address, iface) => { ch.write(route(id, address, iface)); return reply(id); };
const bringUp = async (id, iface) => { ch.write(JSON.stringify({ type: "request", id, op: "bring-up", interface: iface }) + "\\n"); return reply(id); };
const hang = () => setInterval(() => {}, 1e6);
`;

interface Served {
  calls: string[];
  outcome: { code: number; output: string } | { error: string };
}

/** Supervise `body` (run after PRELUDE) as user 65534; `addRoute` answers its route requests, bring-up requests are refused. */
async function supervise(body: string, addRoute: (address: string, iface: string) => Promise<void> = async () => {}): Promise<Served> {
  const calls: string[] = [];
  const started = Date.now();
  try {
    const { code, output } = await superviseWorker({
      command: [process.execPath, "-e", PRELUDE + body],
      start: START,
      steps: {
        addRoute: (address, iface) => {
          calls.push(`${address}%${iface}`);
          return addRoute(address, iface);
        },
        bringUp: async (iface) => {
          calls.push(`up ${iface}`);
          throw new Error("not here");
        },
      },
      uid: 65534,
      gid: 65534,
      log: quiet,
      signal: new AbortController().signal,
    });
    return { calls, outcome: { code, output: output.toString() } };
  } catch (err) {
    assert.ok(err instanceof WorkerError, String(err));
    assert.ok(Date.now() - started < 10_000, "stopped at once");
    return { calls, outcome: { error: err.message } };
  }
}

const stopped = (what: string) => ({ error: `the network worker ${what}; stopped it` });

// ------------------------------------------------------------ in the namespace

const scenarios = {
  /** A real session (interfaces va and vc selected; vc made after the start) serving a scripted worker's requests. */
  async realSession() {
    const session = new NetworkSession({ interfaces: ["va", "vc"], connect: null, delaySeconds: 0, hookDir: null, debug: false, log: quiet, quietConsole: false });
    await session.start();
    const { execFileSync } = await import("node:child_process");
    execFileSync("ip", ["link", "add", "vc", "type", "veth", "peer", "name", "vd"]);
    const flagsOf = `const up = (n) => (Number(require("node:fs").readFileSync("/sys/class/net/" + n + "/flags", "utf8")) & 1) === 1;`;
    const routesNow = `const routes = () => JSON.parse(require("node:child_process").execFileSync("ip", ["-j", "-6", "route", "show", "table", "main"], { encoding: "utf8" })).map((r) => r.dst + "@" + r.dev).sort();`;
    const served = await superviseWorker({
      command: [
        process.execPath,
        "-e",
        `${PRELUDE}${routesNow}${flagsOf}
        (async () => {
          const out = { uid: process.getuid() };
          out.added = await ask(1, "2001:db8::5", "va");
          out.during = routes();
          out.again = await ask(2, "2001:db8::5", "va");
          out.linkLocal = await ask(3, "fe80::1", "va");
          out.otherInterface = await ask(4, "2001:db8::6", "vb");
          out.multicast = await ask(5, "ff02::fb", "va");
          out.v4 = await ask(6, "192.0.2.7", "va");
          out.vcBefore = up("vc");
          out.lateNamed = await bringUp(7, "vc");
          out.vcDuring = up("vc");
          out.notSelected = await bringUp(8, "vd");
          out.missing = await bringUp(9, "nope0");
          process.stdout.write(JSON.stringify(out));
          process.exit(0);
        })();`,
      ],
      start: START,
      steps: { addRoute: (address, iface) => session.addTemporaryRoute(address, iface), bringUp: (iface) => session.adopt(iface) },
      uid: 65534,
      gid: 65534,
      log: quiet,
      signal: new AbortController().signal,
    });
    const show = (routes: { dst: string; dev?: string }[]) => routes.map((r) => `${r.dst}@${r.dev}`);
    const v4During = show(await listRoutes(4));
    await session.close();
    const { readInterface } = await import("../../src/sys/interfaces.js");
    return {
      vcAfter: readInterface("vc")!.flags & 1,
      code: served.code,
      worker: JSON.parse(served.output.toString()) as unknown,
      v4During,
      after: show([...(await listRoutes(6)), ...(await listRoutes(4))]),
    };
  },
};

if (isChild()) {
  await childMain(scenarios);
} else {
  const skip = requires({ root: true });

  test("a worker that floods its output is killed at the output bound", { skip, timeout: 30_000 }, async () => {
    // 8 MiB, then it would wait forever: only a kill ends it.
    const r = await supervise(`
      const b = Buffer.alloc(1 << 16, 120); let n = 0;
      const w = () => { while (n < 128 && process.stdout.write(b)) n++; if (n < 128) process.stdout.once("drain", w); else hang(); };
      w();`);
    assert.deepEqual(r.outcome, stopped(`printed more than ${MAX_WORKER_OUTPUT} bytes`));
  });

  test("a worker that sends thousands of route requests at once gets at most maxUnanswered served", { skip, timeout: 30_000 }, async () => {
    const r = await supervise(
      `let s = ""; for (let i = 1; i <= 5000; i++) s += route(i, "2001:db8::" + i.toString(16), "va"); ch.write(s); hang();`,
      () => new Promise((resolve) => setTimeout(resolve, 200)),
    );
    assert.deepEqual(r.outcome, stopped(`sent a request while ${REQUEST_LIMITS.maxUnanswered} were unanswered`));
    assert.equal(r.calls.length, REQUEST_LIMITS.maxUnanswered);
  });

  test("a worker that asks one request after another is stopped past maxRequests", { skip, timeout: 30_000 }, async () => {
    const r = await supervise(`(async () => { for (let i = 1; i <= 1000; i++) await ask(i, "2001:db8::" + i.toString(16), "va"); hang(); })();`);
    assert.deepEqual(r.outcome, stopped(`sent more than ${REQUEST_LIMITS.maxRequests} requests`));
    assert.equal(r.calls.length, REQUEST_LIMITS.maxRequests);
  });

  test("oversized messages: a long request, and a line that never ends", { skip, timeout: 30_000 }, async () => {
    const long = await supervise(`ch.write(route(1, "2001:db8::5", "x".repeat(2000))); hang();`);
    assert.deepEqual(long.outcome, stopped(`sent a message over ${REQUEST_LIMITS.maxMessageBytes} bytes`));
    const endless = await supervise(`
      const b = Buffer.alloc(1 << 16, 32); let n = 0;
      const w = () => { while (n < 128 && ch.write(b)) n++; if (n < 128) ch.once("drain", w); else hang(); };
      w();`);
    assert.deepEqual(endless.outcome, stopped(`sent a message over ${REQUEST_LIMITS.maxMessageBytes} bytes`));
    assert.deepEqual([...long.calls, ...endless.calls], []);
  });

  test("malformed requests: each one stops the worker before anything is done for it", { skip, timeout: 60_000 }, async () => {
    const cases: [string, string][] = [
      [`"not json\\n"`, "sent a message that is not JSON"],
      [`"[1,2]\\n"`, "sent a message that is not an object"],
      [`JSON.stringify({ type: "start" }) + "\\n"`, 'sent a message of type "start"'],
      [`JSON.stringify({ type: "request", id: 1, op: "run", command: "sh" }) + "\\n"`, 'sent a request for an unknown operation "run"'],
      [`JSON.stringify({ type: "request", id: 1, op: "add-route", address: "2001:db8::5", interface: "va", via: "2001:db8::1" }) + "\\n"`, 'sent a add-route request with an unknown field "via"'],
      [`route(1, "2001:db8::5 dev lo", "va")`, 'sent a add-route request with an invalid address "2001:db8::5 dev lo"'],
      [`route(1, "2001:db8::5", "../../x")`, 'sent a add-route request with an invalid interface "../../x"'],
      [`route(0, "2001:db8::5", "va")`, "sent a request with id 0"],
    ];
    for (const [line, reason] of cases) {
      const r = await supervise(`ch.write(${line}); hang();`);
      assert.deepEqual(r.outcome, stopped(reason), line);
      assert.deepEqual(r.calls, [], line);
    }
    const replay = await supervise(`(async () => { await ask(2, "2001:db8::5", "va"); await ask(1, "2001:db8::6", "va"); hang(); })();`);
    assert.deepEqual(replay.outcome, stopped("sent a request with id 1 after id 2"));
    assert.deepEqual(replay.calls, ["2001:db8::5%va"]);
  });

  test("a worker that cannot be started: one line", { skip, timeout: 30_000 }, async () => {
    await assert.rejects(
      superviseWorker({
        command: ["/nonexistent/mandos-client"],
        start: START,
        steps: { addRoute: async () => {}, bringUp: async () => {} },
        uid: 65534,
        gid: 65534,
        log: quiet,
        signal: new AbortController().signal,
      }),
      { name: "Error", message: /^cannot start the network worker as uid 65534: spawn \/nonexistent\/mandos-client ENOENT$/ },
    );
  });

  test("valid and refused requests of a well-behaved worker, served by a real network session", { skip: skip || requires({ commands: ["ip"] }), timeout: 60_000 }, async () => {
    const ns = Netns.create();
    try {
      ns.ip("link", "set", "lo", "up");
      ns.veth("va", "vb");
      ns.ip("link", "set", "va", "up");
      ns.ip("link", "set", "vb", "up");
      const r = await runInNetns<{ code: number; worker: Record<string, unknown>; v4During: string[]; after: string[]; vcAfter: number }>(
        ns,
        SELF,
        "realSession",
      );
      assert.equal(r.error, null, r.stderr);
      const { code, worker, v4During, after, vcAfter } = r.result!;
      assert.equal(code, 0);
      assert.equal(worker.uid, 65534);
      // vc appeared after the start and is named: brought up on request, and down again at close.
      assert.deepEqual([worker.vcBefore, worker.lateNamed, worker.vcDuring, vcAfter], [false, null, true, 0]);
      assert.equal(worker.notSelected, "cannot bring up vd: the --interface selection does not take it (not using unnamed interface)");
      assert.equal(worker.missing, "cannot bring up nope0: no such interface");
      assert.equal(worker.added, null);
      assert.ok((worker.during as string[]).includes("2001:db8::5@va"), JSON.stringify(worker.during));
      assert.equal(worker.again, "cannot add a route to 2001:db8::5 on va: File exists");
      assert.equal(worker.linkLocal, "cannot add a route to fe80::1: a link-local address needs no route");
      assert.equal(worker.otherInterface, "cannot add a route to 2001:db8::6 on vb: not one of the interfaces in use");
      assert.equal(worker.multicast, "cannot add a route to ff02::fb: not a unicast address");
      assert.equal(worker.v4, null);
      assert.deepEqual(v4During, ["192.0.2.7@va"]);
      assert.deepEqual(after.sort(), ["fe80::/64@va", "fe80::/64@vb"], "the routes are removed at close");
    } finally {
      ns.delete();
    }
  });
}
