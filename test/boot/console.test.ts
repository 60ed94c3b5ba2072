// What the boot test and bench:boot read from a guest's console, checked on
// console text alone (no VM): the rig probe's process reports and the
// privilege check on them, the steps, and the benchmark's figures and targets.
// The samples are lines as the guest printed them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { firstMissingStep, privilegeProblems, processStatuses, questionLists, stepsSeen } from "../helpers/boot.js";
import { bootFigures, openingFloor, parseTimespan, reportTable, targets, type BenchResult, type BootFigures } from "../../bench/boot-report.js";

/** The probe's report on a client with today's ambient network capabilities (seen in a real boot). */
const CLIENT_WITH_CAPS = `MANDOS-BOOT-RIG: pending questions at 26.80 s:
MANDOS-BOOT-RIG:   'Please enter passphrase for disk luks-0117:' (PID 310)
MANDOS-BOOT-RIG: end of list
MANDOS-BOOT-RIG: process 365 at 26.80 s:
MANDOS-BOOT-RIG:   Name:\tmandos-client
MANDOS-BOOT-RIG:   Uid:\t65534\t65534\t65534\t65534
MANDOS-BOOT-RIG:   Gid:\t65534\t65534\t65534\t65534
MANDOS-BOOT-RIG:   CapInh:\t0000000000003000
MANDOS-BOOT-RIG:   CapPrm:\t0000000000003000
MANDOS-BOOT-RIG:   CapEff:\t0000000000003000
MANDOS-BOOT-RIG:   CapAmb:\t0000000000003000
MANDOS-BOOT-RIG:   NoNewPrivs:\t0
MANDOS-BOOT-RIG: end of process
`;

const UNPRIVILEGED = CLIENT_WITH_CAPS.replace(/0000000000003000/g, "0000000000000000").replace("NoNewPrivs:\t0", "NoNewPrivs:\t1");

describe("the rig probe's process reports", () => {
  test("are parsed with their PID, guest time and fields", () => {
    const [st, ...rest] = processStatuses(`[   26.9] noise\r\n${CLIENT_WITH_CAPS}[   27.0] more noise\n`);
    assert.equal(rest.length, 0);
    assert.equal(st!.pid, 365);
    assert.equal(st!.seconds, 26.8);
    assert.equal(st!.fields.Name, "mandos-client");
    assert.equal(st!.fields.CapEff, "0000000000003000");
    assert.equal(st!.fields.NoNewPrivs, "0");
    // The question list before it is its own block.
    assert.deepEqual(questionLists(CLIENT_WITH_CAPS), [{ seconds: 26.8, questions: ["'Please enter passphrase for disk luks-0117:' (PID 310)"] }]);
  });

  test("a client with network capabilities and without NoNewPrivs fails the check, naming each set", () => {
    const problems = privilegeProblems(processStatuses(CLIENT_WITH_CAPS)[0]!, 65534);
    assert.deepEqual(problems, [
      "CapInh is 0x0000000000003000, not 0",
      "CapPrm is 0x0000000000003000, not 0",
      "CapEff is 0x0000000000003000, not 0",
      "CapAmb is 0x0000000000003000, not 0",
      "NoNewPrivs is 0, not 1",
    ]);
  });

  test("uid 65534 throughout, empty sets and NoNewPrivs pass; another uid or a missing field does not", () => {
    const st = processStatuses(UNPRIVILEGED)[0]!;
    assert.deepEqual(privilegeProblems(st, 65534), []);
    assert.equal(privilegeProblems(st, 0).length, 1);
    const savedRoot = processStatuses(UNPRIVILEGED.replace("Uid:\t65534\t65534\t65534\t65534", "Uid:\t65534\t65534\t0\t65534"))[0]!;
    assert.match(privilegeProblems(savedRoot, 65534).join(), /Uid .* not 65534/);
    const cut = processStatuses(UNPRIVILEGED.replace(/^.*CapAmb.*\n/m, ""))[0]!;
    assert.deepEqual(privilegeProblems(cut, 65534), ["CapAmb is missing"]);
  });

  test("a report cut off by the end of the console is not counted", () => {
    assert.deepEqual(processStatuses(CLIENT_WITH_CAPS.replace("MANDOS-BOOT-RIG: end of process\n", "")), []);
  });
});

/** A prefetching boot, abridged from a real console (timestamps as the guest printed them). */
const PREFETCH_BOOT = `[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)
[    4.567678] systemd[1]: Running in initrd.
[   11.831454] systemd[1]: Started ask-password-mandos.service - Forward Password Questions to a Mandos Server.
[   14.355765] systemd[1]: Starting systemd-cryptsetup@luks\\x2d0117.service - Cryptography Setup for luks-0117...
[   15.139820] systemd[1]: Finished mandos-boot-rig-question.service - Mandos boot test: a password question appeared.
[   20.458788] password-agent[242]: mandos-client: debug: will use interface "eth0"
[   22.318238] password-agent[242]: mandos-client: debug: Zeroconf: browsing for _mandos._tcp on eth0 (index 2)
[   23.915416] password-agent[242]: mandos-client: debug: found server [fe80::1%eth0]:41829
[   25.280565] password-agent[242]: password-agent: holding the secret for questions to come, for 120 s at most
[   25.322667] password-agent[242]: password-agent: answered question /run/systemd/ask-password/ask.q (cryptsetup:/dev/disk/by-uuid/0117)
[   25.339101] systemd-cryptsetup[301]: Set cipher aes, mode xts-plain64, key size 512 bits for device /dev/disk/by-uuid/0117.
[   26.782024] systemd[1]: Finished systemd-cryptsetup@luks\\x2d0117.service - Cryptography Setup for luks-0117.
[   28.610030] EXT4-fs (dm-0): mounted filesystem with ordered data mode. Quota mode: none.
[   29.013310] systemd[1]: Mounted sysroot.mount - /sysroot.
[   30.696721] password-agent[242]: password-agent: dropped the held secret: the agent is stopping
[   30.714518] systemd[1]: ask-password-mandos.service: Consumed 14.660s CPU time.
[   32.673879] MANDOS-BOOT-RIG: root file system mounted, init running at 32.67 s
`;

describe("the boot's steps on the console", () => {
  test("the question is the rig's marker, not the agent's start", () => {
    const seen = stepsSeen(PREFETCH_BOOT);
    assert.equal(seen.get("agent")?.seconds, 11.831454);
    assert.equal(seen.get("question")?.seconds, 15.13982);
    assert.equal(seen.get("held")?.seconds, 25.280565);
    assert.equal(seen.get("dropped")?.seconds, 30.696721);
    assert.equal(firstMissingStep(PREFETCH_BOOT, "init"), null);
  });

  test("a root with no password: the steps it has no reason to show can be left out", () => {
    const plain = PREFETCH_BOOT.split("\n")
      .filter((l) => !/cryptsetup|rig-question|answered/.test(l))
      .join("\n")
      .replace("EXT4-fs (dm-0)", "EXT4-fs (vda)");
    assert.equal(firstMissingStep(plain, "init")?.key, "cryptsetup");
    assert.equal(firstMissingStep(plain, "init", ["cryptsetup", "question", "answered", "unlocked"]), null);
  });
});

describe("bench:boot's figures", () => {
  test("systemd's time spans", () => {
    assert.equal(parseTimespan("14.660s"), 14.66);
    assert.equal(parseTimespan("1min 2.5s"), 62.5);
    assert.equal(parseTimespan("987ms"), 0.987);
    assert.equal(parseTimespan("soon"), null);
  });

  test("one boot: question → unlocked and its last part, kernel → root, the agent's CPU", () => {
    const f = bootFigures(PREFETCH_BOOT);
    assert.ok(Math.abs(f.questionToUnlocked! - (26.782024 - 15.13982)) < 1e-9);
    assert.ok(Math.abs(f.openingToUnlocked! - (26.782024 - 25.339101)) < 1e-9);
    assert.equal(f.kernelToRoot, 29.01331, "from systemd's line: Debian's client hides the kernel's");
    assert.equal(f.agentCpu, 14.66);
    assert.deepEqual(bootFigures("[    0.000000] Linux version 6.1\n"), { kernelToRoot: null, questionToUnlocked: null, openingToUnlocked: null, agentCpu: null });
  });

  test("targets: ratios of medians and growth, met or not", () => {
    const boot = (q: number, k: number, o: number | null = null): BootFigures => ({ questionToUnlocked: q, openingToUnlocked: o, kernelToRoot: k, agentCpu: null });
    const r: BenchResult = {
      runs: { ours: [boot(1, 20), boot(9, 21), boot(1.1, 19)], debian: [boot(4, 22), boot(5, 22), boot(4.8, 23)] },
      growth: { ours: { gzip: 30e6, zstd: 27e6 }, debian: { gzip: 5.8e6, zstd: 4.7e6 } },
    };
    const t = targets(r);
    assert.deepEqual(
      t.map((x) => [x.what, x.value === null ? null : Number(x.value.toFixed(4)), x.value! <= x.limit]),
      [
        ["question → unlocked", Number((1.1 / 4.8).toFixed(4)), true],
        ["kernel → root mounted", Number((20 / 22).toFixed(4)), true],
        ["initramfs growth, zstd -19", 27e6, false],
        ["initramfs growth, gzip -9", 30e6, true],
      ],
    );
    const table = reportTable(r);
    assert.match(table, /\| question → LUKS unlocked \(median\) \| 1\.1 s \| 4\.8 s \| 0\.23× \|/);
    assert.match(table, /\| initramfs growth, zstd -19 \| ≤ \+26\.0 MB \| \+27\.0 MB \| \*\*not met\*\* \|/);
    const unmeasured = reportTable({ runs: { ours: [], debian: [] }, growth: null });
    assert.match(unmeasured, /\| question → unlocked \| ≤ 0\.25× Debian's \| — \| not measured \|/);
    assert.doesNotMatch(table + unmeasured, /cannot be shorter/, "no floor without systemd-cryptsetup's lines");
  });

  test("the floor of question → unlocked: systemd-cryptsetup opening the volume, against Debian's whole wait", () => {
    const boot = (q: number, o: number): BootFigures => ({ questionToUnlocked: q, openingToUnlocked: o, kernelToRoot: 12, agentCpu: null });
    const r: BenchResult = { runs: { ours: [boot(0.8, 0.66), boot(0.9, 0.7), boot(0.75, 0.62)], debian: [boot(2.8, 0.5), boot(3.8, 0.52), boot(2.9, 0.51)] }, growth: null };
    assert.deepEqual(openingFloor(r), { opening: 0.66, ratio: 0.66 / 2.9 });
    const table = reportTable(r);
    assert.match(table, /\| of which systemd-cryptsetup opening the volume \(median\) \| 0\.7 s \| 0\.5 s \| 1\.29× \|/);
    assert.match(table, /Question → unlocked cannot be shorter than systemd-cryptsetup opening the volume after the answer: ours took 0\.7 s \(median\), 0\.23× Debian's median question → unlocked\./);
  });
});
