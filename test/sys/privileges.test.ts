// The one privilege drop, shared by the server and the client: done only
// when the kernel confirms it. Each case runs in a child process started
// as root, some under setpriv(1) with a piece of root's power taken away
// or a securebit that makes setuid() keep the capabilities.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { privilegeLeft } from "../../src/sys/privileges.js";
import type { ProcStatus } from "../../src/sys/proc-status.js";
import { ROOT, requires, run } from "../helpers/index.js";

const dist = join(ROOT, "dist", "src", "sys");

/** Drop to `ids` in a child (run by `wrapper`, e.g. setpriv); its report. */
async function dropInChild(ids: { uid: number; gid: number }, wrapper: string[] = [], spawnAs: { uid?: number; gid?: number } = {}) {
  const code = `
    const { dropPrivilegesTo } = await import(${JSON.stringify(join(dist, "privileges.js"))});
    const { readProcStatus } = await import(${JSON.stringify(join(dist, "proc-status.js"))});
    const report = {};
    try {
      dropPrivilegesTo(${JSON.stringify(ids)});
      report.dropped = true;
    } catch (err) {
      report.error = err.message;
      report.untouched = err.untouched;
    }
    const s = readProcStatus();
    report.uids = s.uids;
    report.caps = [s.capInh, s.capPrm, s.capEff, s.capAmb].map(String);
    console.log(JSON.stringify(report));`;
  const [cmd, ...args] = [...wrapper, process.execPath, "--input-type=module", "-e", code];
  const r = await run(cmd!, args, spawnAs);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as { dropped?: true; error?: string; untouched?: boolean; uids: number[]; caps: string[] };
}

const status = (over: Partial<ProcStatus>): ProcStatus => ({
  uids: [1000, 1000, 1000, 1000],
  gids: [1000, 1000, 1000, 1000],
  groups: [1000],
  capInh: 0n,
  capPrm: 0n,
  capEff: 0n,
  capAmb: 0n,
  capBnd: 0x1ffffffffffn,
  noNewPrivs: false,
  ...over,
});

test("privilegeLeft: every id the target's, only its own group, no capability", () => {
  const ids = { uid: 1000, gid: 1000 };
  assert.equal(privilegeLeft(status({}), ids), null);
  assert.equal(privilegeLeft(status({ groups: [] }), ids), null);
  assert.equal(privilegeLeft(status({}), { uid: 0, gid: 1000 }), "uid 0, gid 1000 is root");
  assert.equal(privilegeLeft(status({ uids: [1000, 1000, 0, 1000] }), ids), "its user ids are 1000 1000 0 1000, not all 1000");
  assert.equal(privilegeLeft(status({ gids: [1000, 0, 1000, 1000] }), ids), "its group ids are 1000 0 1000 1000, not all 1000");
  assert.equal(privilegeLeft(status({ groups: [1000, 4] }), ids), "it keeps supplementary groups 1000 4");
  assert.equal(
    privilegeLeft(status({ capAmb: 0x3000n }), ids),
    "it keeps capabilities (inheritable 0x0, permitted 0x0, effective 0x0, ambient 0x3000)",
  );
  assert.match(privilegeLeft(status({ capInh: 1n }), ids)!, /inheritable 0x1,/);
});

const skip = requires({ root: true, commands: ["setpriv"] });

test("as root: dropped, confirmed, and root cannot be regained", { skip }, async () => {
  const r = await dropInChild({ uid: 65534, gid: 65534 });
  assert.deepEqual(r, { dropped: true, uids: [65534, 65534, 65534, 65534], caps: ["0", "0", "0", "0"] });
});

test("setuid() that keeps the capabilities (no-setuid-fixup) is not a drop", { skip }, async () => {
  const r = await dropInChild({ uid: 65534, gid: 65534 }, ["setpriv", "--securebits", "+no_setuid_fixup"]);
  assert.match(r.error!, /^dropped privileges to uid 65534, gid 65534, but it keeps capabilities \(inheritable 0x0, permitted 0x[0-9a-f]+, effective 0x[0-9a-f]+, ambient 0x0\)$/);
  assert.equal(r.untouched, false);
});

test("root without CAP_SETGID and CAP_SETUID: refused at the first step, nothing changed", { skip }, async () => {
  const r = await dropInChild({ uid: 65534, gid: 65534 }, ["setpriv", "--bounding-set", "-setgid,-setuid"]);
  assert.equal(r.error, "cannot drop privileges to uid 65534, gid 65534: setgroups failed: EPERM");
  assert.equal(r.untouched, true);
  assert.deepEqual(r.uids, [0, 0, 0, 0]);
});

test("root without CAP_SETUID only: the half-done drop is an error", { skip }, async () => {
  const r = await dropInChild({ uid: 65534, gid: 65534 }, ["setpriv", "--bounding-set", "-setuid"]);
  assert.equal(r.error, "cannot drop privileges to uid 65534, gid 65534: setuid failed: EPERM");
  assert.equal(r.untouched, false);
});

test("never root as the target; a process that is not root cannot drop", { skip }, async () => {
  const toRoot = await dropInChild({ uid: 0, gid: 0 });
  assert.equal(toRoot.error, "refusing to drop privileges to uid 0, gid 0: that is root");
  assert.equal(toRoot.untouched, false);
  const notRoot = await dropInChild({ uid: 65534, gid: 65534 }, [], { uid: 1234, gid: 1234 });
  assert.equal(notRoot.error, "cannot drop privileges to uid 65534, gid 65534: setgroups failed: EPERM");
  assert.equal(notRoot.untouched, true);
  assert.deepEqual(notRoot.uids, [1234, 1234, 1234, 1234]);
});
