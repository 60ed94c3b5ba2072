// A split password through the password agent: systemd-ask-password asks,
// our agent runs our real client (as user 65534) with two --connect, and the
// client combines the shares held by our mandos and Debian's mandos 1.8.
// The asker and the agent run in mount+PID namespaces of their own (see
// test/helpers/agent.ts); the servers listen on ::1 outside them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exitWithin, needsAskRig, runScenario, runScenarioIfInner, type Json } from "../helpers/agent.js";
import { BIN, tempDir } from "../helpers/index.js";
import { debianInteropMissing, freePort } from "../helpers/debian-peer.js";
import { keyArgs } from "../helpers/client.js";
import { keysAndShares, startShareServer } from "../helpers/shares.js";

const SELF = fileURLToPath(import.meta.url);
const PASSWORD = "two of three, asked by systemd";

const scenarios = {
  async ask(params: Record<string, Json>, rig: import("../helpers/agent.js").InnerRig): Promise<Json> {
    const ports = params["ports"] as number[];
    const asker = rig.ask({ id: "cryptsetup:kofn", timeout: 60 });
    await rig.questionOf(asker);
    const client = [join(BIN, "mandos-client"), ...ports.map((p) => `--connect=[::1]:${p}`), "--interface=none", "--retry=1", ...keyArgs(params["keys"] as string)];
    const agent = rig.agent(["--", ...client]);
    const asked = await exitWithin(asker, 50_000, "systemd-ask-password");
    const ended = await exitWithin(agent, 20_000, "password-agent");
    return { askCode: asked.code, answer: asker.stdout(), agentCode: ended.code, agentErr: agent.stderr() };
  },
};

if (!(await runScenarioIfInner(scenarios))) {
  test("systemd-ask-password gets the password combined from two of three servers (ours and Debian's)", { skip: needsAskRig() || debianInteropMissing(), timeout: 180_000 }, async () => {
    using dir = tempDir();
    chmodSync(dir.path, 0o755);
    const { keys, sections } = await keysAndShares(dir.path, PASSWORD, 2, 3);
    // The agent runs the client as user 65534, which reads the keys itself.
    chmodSync(keys, 0o755);
    for (const f of readdirSync(keys)) chownSync(join(keys, f), 65534, 65534);
    const ports = [await freePort(), await freePort(), await freePort()];
    const servers = [
      await startShareServer("ours", join(dir.path, "ours"), sections[0]!, ports[0]!),
      await startShareServer("debian", join(dir.path, "debian"), sections[1]!, ports[1]!),
    ];
    try {
      // The third server is down: two of three are enough.
      const { report } = await runScenario(SELF, "ask", { ports, keys }, 120_000);
      assert.equal(report["askCode"], 0, String(report["agentErr"]));
      assert.equal(String(report["answer"]).trimEnd(), PASSWORD);
      assert.equal(report["agentCode"], 0, String(report["agentErr"]));
      assert.ok(!String(report["agentErr"]).includes(PASSWORD));
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  });
}
