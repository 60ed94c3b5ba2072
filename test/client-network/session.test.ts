// NetworkSession: the order of the steps and what close() undoes. With
// recorded stand-in effects (fast, every interleaving), and for real in a
// network namespace with a hook that creates the interface it names.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { chmodSync, writeFileSync } from "node:fs";
import { makeLogger } from "../../src/cli/log.js";
import { IFF, type NetInterface } from "../../src/sys/interfaces.js";
import { NetworkSession, type NetworkEffects, type SessionOptions } from "../../src/client/network/session.js";
import { NetworkError } from "../../src/client/network/ip.js";
import { requires, tempDir } from "../helpers/index.js";
import { Netns, childMain, isChild, runInNetns } from "../helpers/client-network.js";

const SELF = fileURLToPath(import.meta.url);
const VETH = 0x1002;

/** Stand-in effects over an in-memory set of interfaces, recording every call. */
function fakeNetwork(initial: Record<string, { flags: number; operstate?: string }>) {
  const state = new Map<string, NetInterface>();
  let index = 1;
  for (const [name, s] of Object.entries(initial)) {
    state.set(name, { name, index: index++, flags: s.flags, operstate: s.operstate ?? "down", carrier: null, ipv6: [], ipv4: [] });
  }
  const calls: string[] = [];
  let t = 0;
  const hooks: Record<string, (() => Promise<void>) | undefined> = {};
  const fx: NetworkEffects = {
    listInterfaces: async () => {
      calls.push("list");
      return [...state.values()];
    },
    readInterface: async (n) => state.get(n) ?? null,
    bringUp: async (n, allowed) => {
      calls.push(`up ${n} [${[...allowed].join(",")}]`);
      await hooks[`up ${n}`]?.();
      const i = state.get(n)!;
      if (i.flags & IFF.UP) return "already-up";
      i.flags |= IFF.UP;
      i.operstate = "up";
      return "brought-up";
    },
    bringDown: async (n, allowed) => {
      calls.push(`down ${n} [${[...allowed].join(",")}]`);
      const i = state.get(n)!;
      i.flags &= ~IFF.UP;
      i.operstate = "down";
      return "taken-down";
    },
    runHooks: async (mode) => {
      calls.push(`hooks ${mode}`);
      await hooks[`hooks ${mode}`]?.();
      return [];
    },
    quietConsole: async () => {
      calls.push("quiet");
      return async () => void calls.push("loud");
    },
    sleep: async (ms) => {
      calls.push(`sleep ${ms}`);
      await hooks.sleep?.();
      t += ms;
    },
    now: () => t,
  };
  return { fx, calls, state, hooks };
}

function session(fx: NetworkEffects, opts: Partial<SessionOptions> = {}) {
  const lines: string[] = [];
  const log = makeLogger("mandos-client", { level: "debug", write: (l) => lines.push(l) });
  const s = new NetworkSession({
    interfaces: [],
    connect: null,
    delaySeconds: 1,
    hookDir: "/unused",
    debug: false,
    log,
    quietConsole: true,
    effects: fx,
    ...opts,
  });
  return { s, lines };
}

const scenarios = {
  /** A hook creates the interface named with --interface; the session brings it up and the stop hook removes it. */
  async hookMadeInterface(arg: unknown) {
    const { hookDir } = arg as { hookDir: string };
    const log = makeLogger("mandos-client", { level: "error", write: () => {} });
    const s = new NetworkSession({ interfaces: ["vc"], connect: null, delaySeconds: 3, hookDir, debug: false, log, quietConsole: false });
    const report = await s.start();
    const { readInterface } = await import("../../src/sys/interfaces.js");
    const during = readInterface("vc");
    await s.close();
    return { report, during, after: readInterface("vc") };
  },
};

if (isChild()) {
  await childMain(scenarios);
} else {
  test("start: hooks, then interfaces, bring-up of the chosen ones, wait; close undoes only its own", async () => {
    const net = fakeNetwork({ lo: { flags: 0x9, operstate: "unknown" }, va: { flags: VETH }, vb: { flags: VETH | IFF.UP, operstate: "up" } });
    const { s, lines } = session(net.fx);
    const report = await s.start();
    assert.deepEqual(report.selection.use, ["va", "vb"]);
    assert.deepEqual(report.broughtUp, ["va"]);
    assert.deepEqual(report.running, ["va", "vb"]);
    assert.deepEqual(net.calls, ["hooks start", "list", "quiet", "up va [va,vb]", "up vb [va,vb]", "loud"]);
    net.calls.length = 0;
    await Promise.all([s.close(), s.close()]);
    await s.close();
    assert.deepEqual(net.calls, ["hooks stop", "down va [va]"]);
    assert.equal(net.state.get("vb")!.flags & IFF.UP, IFF.UP, "vb was up before and stays up");
    assert.ok(lines.includes('mandos-client: debug: interface "vb" is already up\n'));
    await assert.rejects(s.start(), /shutting down/);
    await assert.rejects(s.addTemporaryRoute("2001:db8::1", "va"), /shutting down/);
  });

  test('"none" and missing names: only interfaces before "none" are brought up', async () => {
    const net = fakeNetwork({ va: { flags: VETH }, vb: { flags: VETH } });
    const { s, lines } = session(net.fx, { interfaces: ["gone", "va", "none", "vb"], delaySeconds: 0, connect: "[fe80::1]:1" });
    const report = await s.start();
    assert.deepEqual(report.selection.use, ["va", "vb"]);
    assert.deepEqual(report.broughtUp, ["va"]);
    // With --connect, as Mandos; without it, Zeroconf's survey warns and adopts it when it appears.
    assert.ok(lines.includes('mandos-client: warning: not using nonexisting interface "gone"\n'));
    await s.close();
    assert.deepEqual(net.calls.filter((c) => c.startsWith("up") || c.startsWith("down")), ["up va [va]", "down va [va]"]);
  });

  test('"none" alone: nothing is brought up and the console is left alone', async () => {
    const net = fakeNetwork({ va: { flags: VETH } });
    const { s } = session(net.fx, { interfaces: ["none"] });
    const report = await s.start();
    assert.deepEqual(report.selection.use, []);
    await s.close();
    assert.deepEqual(net.calls, ["hooks start", "list", "hooks stop"]);
  });

  test("an interface that cannot be brought up is a warning, not taken down later", async () => {
    const net = fakeNetwork({ va: { flags: VETH }, vb: { flags: VETH } });
    net.fx.bringUp = async (n) => {
      net.calls.push(`up ${n}`);
      if (n === "va") throw new NetworkError("cannot bring up va: Operation not permitted");
      net.state.get(n)!.flags |= IFF.UP;
      net.state.get(n)!.operstate = "up";
      return "brought-up";
    };
    const { s, lines } = session(net.fx);
    const report = await s.start();
    assert.deepEqual(report.failed, [{ name: "va", message: "cannot bring up va: Operation not permitted" }]);
    assert.deepEqual(report.broughtUp, ["vb"]);
    assert.deepEqual(report.running, ["vb"]);
    assert.ok(lines.includes("mandos-client: warning: cannot bring up va: Operation not permitted\n"));
    await s.close();
    assert.ok(net.calls.includes("down vb [vb]") && !net.calls.some((c) => c.startsWith("down va")));
  });

  test("no suitable interface: with --connect start fails, close still runs the stop hooks; without, it waits for one", async () => {
    const net = fakeNetwork({ lo: { flags: 0x9 }, noarp0: { flags: 0x1082 } });
    const { s } = session(net.fx, { connect: "192.0.2.1:1" });
    await assert.rejects(s.start(), { name: "NetworkError", message: "could not find a network interface" });
    await s.close();
    assert.deepEqual(net.calls, ["hooks start", "list", "hooks stop"]);
    const browsing = session(net.fx);
    assert.deepEqual((await browsing.s.start()).selection.use, []);
    assert.ok(browsing.lines.includes("mandos-client: no network interface yet; will use one when it appears\n"));
    await browsing.s.close();
  });

  test("adopt: a late interface the selection takes is brought up and taken down at close; others are refused", async () => {
    const net = fakeNetwork({ va: { flags: VETH } });
    const { s } = session(net.fx, { interfaces: ["va", "vc", "none", "vd"], delaySeconds: 0 });
    await s.start();
    for (const [name, flags] of [["vc", VETH], ["vd", VETH], ["ve", VETH]] as const) {
      net.state.set(name, { name, index: 9, flags, operstate: "down", carrier: null, ipv6: [], ipv4: [] });
    }
    await s.adopt("vc");
    await assert.rejects(s.adopt("vd"), { message: 'cannot bring up vd: it is named after "none", to be used as it is' });
    await assert.rejects(s.adopt("ve"), { message: "cannot bring up ve: the --interface selection does not take it (not using unnamed interface)" });
    await assert.rejects(s.adopt("vf"), { message: "cannot bring up vf: no such interface" });
    assert.deepEqual([...s.inUse], ["va", "vc"]);
    assert.deepEqual(s.broughtUp, ["va", "vc"]);
    await s.close();
    assert.deepEqual(net.calls.filter((c) => c.startsWith("up") || c.startsWith("down")), ["up va [va]", "up vc [vc]", "down va [va,vc]", "down vc [va,vc]"]);
    await assert.rejects(s.adopt("vc"), /shutting down/);
  });

  test("adopt without start (the password agent's side): rules from the interfaces there now; patterns decide", async () => {
    const net = fakeNetwork({ eth0: { flags: VETH }, tun0: { flags: 0x1090 }, wlan0: { flags: VETH } });
    const { s } = session(net.fx, { interfaces: ["!wlan*"] });
    await s.adopt("eth0");
    await assert.rejects(s.adopt("wlan0"), { message: "cannot bring up wlan0: the --interface selection does not take it (rejecting (--interface !wlan*) interface)" });
    await assert.rejects(s.adopt("tun0"), { message: "cannot bring up tun0: the --interface selection does not take it (rejecting (--interface !tun*) interface)" });
    await s.close();
    assert.deepEqual(net.calls, ["list", "up eth0 [eth0]", "down eth0 [eth0]"], "no hooks: never started");
  });

  test("delegated steps: the other process brings up and adds routes, and nothing is taken down here", async () => {
    const net = fakeNetwork({ va: { flags: VETH } });
    const asked: string[] = [];
    const { s } = session(net.fx, {
      delaySeconds: 0,
      delegate: {
        bringUp: async (n) => void asked.push(`up ${n}`),
        addRoute: async (a, n) => void asked.push(`route ${a} ${n}`),
      },
    });
    await s.start();
    await s.adopt("va");
    await s.addTemporaryRoute("2001:db8::5", "va");
    await s.close();
    assert.deepEqual(asked, ["up va", "up va", "route 2001:db8::5 va"]);
    assert.deepEqual(net.calls.filter((c) => c.startsWith("up") || c.startsWith("down")), []);
  });

  test("close during the wait: start stops, the console is restored, what was brought up goes down", async () => {
    const net = fakeNetwork({ va: { flags: VETH }, vb: { flags: VETH } });
    // The links never run: start() would wait the whole delay.
    net.fx.bringUp = async (n) => {
      net.calls.push(`up ${n}`);
      net.state.get(n)!.flags |= IFF.UP;
      net.state.get(n)!.operstate = "lowerlayerdown";
      return "brought-up";
    };
    const { s } = session(net.fx, { delaySeconds: 100 });
    let closing: Promise<void> | null = null;
    net.hooks.sleep = async () => {
      closing ??= s.close();
    };
    await assert.rejects(s.start(), /interrupted/);
    await closing;
    const sleeps = net.calls.filter((c) => c.startsWith("sleep"));
    assert.equal(sleeps.length, 1, "stopped after the first poll");
    assert.deepEqual(
      net.calls.filter((c) => !c.startsWith("sleep")),
      ["hooks start", "list", "quiet", "up va", "up vb", "loud", "hooks stop", "down va [va,vb]", "down vb [va,vb]"],
    );
  });

  test("close while an interface is being brought up: it is still taken down", async () => {
    const net = fakeNetwork({ va: { flags: VETH }, vb: { flags: VETH } });
    const { s } = session(net.fx);
    let closing: Promise<void> | null = null;
    net.hooks["up va"] = async () => {
      closing = s.close();
      await new Promise((r) => setTimeout(r, 10));
    };
    await assert.rejects(s.start(), /interrupted/);
    await closing;
    assert.ok(!net.calls.includes("up vb [va,vb]"), "stopped before the next interface");
    assert.deepEqual(net.calls.slice(-2), ["hooks stop", "down va [va]"]);
  });

  test("close during the start hooks: no interface is touched, stop hooks still run", async () => {
    const net = fakeNetwork({ va: { flags: VETH } });
    const { s } = session(net.fx);
    let closing: Promise<void> | null = null;
    net.hooks["hooks start"] = async () => {
      closing = s.close();
    };
    await assert.rejects(s.start(), /interrupted/);
    await closing;
    assert.deepEqual(net.calls, ["hooks start", "hooks stop"]);
  });

  test("close without start does nothing at all", async () => {
    const net = fakeNetwork({ va: { flags: VETH } });
    const { s } = session(net.fx);
    await s.close();
    assert.deepEqual(net.calls, []);
  });

  test(
    "for real: a hook creates the interface named with --interface; it is used, brought up, and removed at close",
    { skip: requires({ root: true, commands: ["ip"] }) },
    async () => {
      using dir = tempDir();
      chmodSync(dir.path, 0o755);
      writeFileSync(
        `${dir.path}/veth`,
        `#!/bin/sh
case "$DEVICE" in *vc*) ;; *) exit 0;; esac
case "$MODE" in
  start) ip link add vc type veth peer name vd && ip link set vd up ;;
  stop) ip link del vc ;;
esac
`,
      );
      chmodSync(`${dir.path}/veth`, 0o755);
      const ns = Netns.create();
      try {
        const out = await runInNetns<{
          report: { selection: { use: string[]; missing: string[] }; broughtUp: string[]; running: string[] };
          during: NetInterface | null;
          after: NetInterface | null;
        }>(ns, SELF, "hookMadeInterface", { hookDir: dir.path });
        assert.equal(out.error, null);
        const r = out.result!;
        assert.deepEqual(r.report.selection.use, ["vc"]);
        assert.deepEqual(r.report.selection.missing, []);
        assert.deepEqual(r.report.broughtUp, ["vc"]);
        assert.deepEqual(r.report.running, ["vc"]);
        assert.equal(r.during!.operstate, "up");
        assert.equal(r.after, null, "the stop hook removed it");
      } finally {
        ns.delete();
      }
    },
  );
}
