// k-of-n against real servers on loopback: a password split 2-of-3 by our
// keygen, its shares held by our mandos and Debian's mandos 1.8, fetched by
// our client given every server with a repeated --connect.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { requires, tempDir } from "../helpers/index.js";
import { debianInteropMissing, freePort } from "../helpers/debian-peer.js";
import { ctl, sleep, waitFor } from "../helpers/server.js";
import { corruptedShareSection, shareSections, startOurClient, startShareServer, ourKeys, type ShareServer } from "../helpers/shares.js";

const SKIP = debianInteropMissing() || requires({ root: true });
const PASSWORD = "split over three servers\n";
const KINDS = ["ours", "debian", "ours"] as const;

let dir: ReturnType<typeof tempDir>;
let keys: string;
let right: string[];
let otherSet: string;
let corrupted: string;

before(async () => {
  if (SKIP) return;
  dir = tempDir();
  keys = await ourKeys(dir.path);
  right = (await shareSections(keys, PASSWORD, 2, 3)).sections;
  otherSet = (await shareSections(keys, PASSWORD, 2, 3)).sections[0]!;
  corrupted = await corruptedShareSection(keys, right[0]!); // an index the right two do not have
});

/** Servers stopped at the end of a test, whatever happens. */
function fleet() {
  const running: ShareServer[] = [];
  let n = 0;
  return {
    async start(kind: "ours" | "debian", section: string, port: number, opts: { dbus?: boolean } = {}) {
      const s = await startShareServer(kind, join(dir.path, `srv-${port}-${n++}`), section, port, opts);
      running.push(s);
      return s;
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(running.map((s) => s.stop()));
    },
  };
}

const ports = () => Promise.all([freePort(), freePort(), freePort()]);
const shareNotes = (stderr: string) => (stderr.match(/ of 2 so far/g) ?? []).length;

function assertUnlocked(r: { code: number | null; stdout: Buffer; stderr: string }) {
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString(), PASSWORD, `exactly the password, never a share: ${r.stderr}`);
  assert.ok(!r.stderr.includes("split over"), "the password never reaches the log");
}

test("2 of 3, ours and Debian's mandos mixed: any 2 up unlock", { skip: SKIP, timeout: 180_000 }, async () => {
  for (const pair of [[0, 1], [1, 2], [0, 2]] as const) {
    const p = await ports();
    await using servers = fleet();
    for (const i of pair) await servers.start(KINDS[i], right[i]!, p[i]!);
    const client = startOurClient(keys, p, ["--debug", "--retry", "1"]);
    const r = await client.result;
    assertUnlocked(r);
    for (const i of pair) assert.match(r.stderr, new RegExp(`\\[::1\\]:${p[i]}: share \\d+ of set [0-9a-f]{8} \\(2 needed\\)`), `share from ${KINDS[i]} server ${i}`);
  }
});

test("with 1 up it keeps waiting and never asks that one again; unlocks when a second comes up", { skip: SKIP, timeout: 120_000 }, async () => {
  const p = await ports();
  await using servers = fleet();
  const debian = await servers.start("debian", right[1]!, p[1]!);
  const client = startOurClient(keys, p, ["--debug", "--retry", "1"]);
  try {
    await waitFor("the first share", () => shareNotes(client.stderr()) === 1, 30_000);
    await sleep(3500); // several retry rounds of the two servers that are down
    assert.ok(client.running(), `gave up or unlocked with one share: ${client.stderr()}`);
    assert.ok((client.stderr().match(/retrying in 1 s/g) ?? []).length >= 4, client.stderr());
    assert.equal((debian.log().match(/Sending secret to kofn/g) ?? []).length, 1, "the server that gave a share is not asked again");
    await servers.start("ours", right[0]!, p[0]!);
    assertUnlocked(await client.result);
  } finally {
    client.kill();
  }
});

for (const [what, section, why] of [
  ["a share of another set", () => otherSet, (port: number) => new RegExp(`\\[::1\\]:${port}: share of another set [0-9a-f]{8} \\(2 needed\\), not combined`)],
  ["a corrupted share", () => corrupted, (port: number) => new RegExp(`\\[::1\\]:${port}: share \\d+ of set [0-9a-f]{8} \\(2 needed\\) does not fit the others`)],
] as const) {
  test(`a server with ${what} is logged by name and the right two still unlock`, { skip: SKIP, timeout: 120_000 }, async () => {
    const p = await ports();
    await using servers = fleet();
    await servers.start("ours", section(), p[0]!);
    await servers.start("debian", right[1]!, p[1]!);
    const client = startOurClient(keys, p, ["--debug", "--retry", "1"]);
    try {
      // Both shares are in before the right second one exists.
      await waitFor("two shares", () => shareNotes(client.stderr()) === 2, 30_000);
      assert.ok(client.running(), client.stderr());
      await servers.start("ours", right[2]!, p[2]!);
      const r = await client.result;
      assertUnlocked(r);
      assert.match(r.stderr, why(p[0]!));
      assert.ok(!r.stderr.includes(`[::1]:${p[1]}: share of another`) && !r.stderr.includes(`[::1]:${p[2]}: share of another`));
    } finally {
      client.kill();
    }
  });
}

test("approval required on one of the two: unlocks only after Debian's mandos-ctl --approve", { skip: SKIP, timeout: 120_000 }, async () => {
  const p = await ports();
  await using servers = fleet();
  await servers.start("ours", right[0]!, p[0]!);
  const debian = await servers.start("debian", `${right[1]!.trimEnd()}\napproved_by_default = False\napproval_delay = PT60S\n`, p[1]!, { dbus: true });
  const client = startOurClient(keys, [p[0]!, p[1]!], ["--debug", "--retry", "1"]);
  try {
    await waitFor("the share that needs no approval", () => shareNotes(client.stderr()) === 1, 30_000);
    await sleep(2000);
    assert.ok(client.running(), `unlocked without approval: ${client.stderr()}`);
    const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: (debian as { busAddress?: string }).busAddress };
    const approved = await ctl("debian", ["--approve", "kofn"], env);
    assert.equal(approved.code, 0, approved.stderr);
    assertUnlocked(await client.result);
  } finally {
    client.kill();
  }
});

test("cleanup", { skip: SKIP }, () => dir.cleanup());
