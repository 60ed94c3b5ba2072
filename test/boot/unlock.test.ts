// A real boot: a LUKS2-root virtual machine (qemu, TCG) whose host-only
// dracut initramfs holds our module (node, our agent and client, keys from
// our mandos-keygen) must unlock its root unattended through our server.
// The guest has no network configuration: no DHCP, no addresses; the
// client brings its interface up and finds the server with Zeroconf over
// IPv6 link-local, on a tap device inside a network namespace of this test
// (the server and qemu run there; nothing leaves it).
//
// The initramfs is built once and the LUKS image made once; each scenario
// boots a copy of the image, with its own namespace and servers, bounded
// in time. The guest's console and the servers' logs are kept for a failed
// scenario (the directory is printed); everything else is removed.
//
// In the initramfs the agent starts early and prefetches (--prefetch): the
// client fetches the secret before any question, the agent holds it and
// answers the question the moment it appears.
//
// Scenarios:
//   1. normal boot: unlocks unattended;
//   2. the client disabled on the server (mandos-ctl --disable): no unlock,
//      systemd's own question still pending (listed from inside the guest,
//      and the console prompt shown); the run is ended by the test. The
//      rig's probe also prints the running client's /proc/PID/status, and
//      a separate test checks its credentials: uid 65534, every capability
//      set empty, NoNewPrivs (issue 12, section 2);
//   3. the server started 20 s after the client began browsing: found, unlocks;
//   4. two servers, the first does not know this client: the second unlocks;
//   5. approval_delay with approved_by_default = false, approved with
//      mandos-ctl --approve while the guest waits: unlocks;
//   6. early agent, late server: the server starts 20 s after qemu, and the
//      agent answers the question within 3 s of the server's start (host
//      times: the server listening, the answer's line on the console);
//   7. no question: a root that is not encrypted (same initramfs); the
//      agent fetches and holds the secret anyway, answers nothing, and
//      drops the secret at switch-root;
//   8. k-of-n: the passphrase split 2-of-2 by our keygen, one share on
//      each of two servers, both found by Zeroconf: the client combines
//      them and the root unlocks;
//   9. the same without Zeroconf: two mandos=connect: options on the
//      kernel command line, one per server (mandos-generator(8)).
// At the end (if time allows) the initramfs is rebuilt without a Mandos
// module and with Debian's 90mandos to report the size ours adds.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRoot, requires } from "../helpers/index.js";
import { needsBuild } from "../helpers/integration.js";
import { sleep } from "../helpers/server.js";
import { shareSections } from "../helpers/shares.js";
import {
  QEMU,
  bootGuest,
  bootKernel,
  buildInitramfs,
  cleanConsole,
  cleanupBootRig,
  clientsConf,
  comparisonBuilds,
  createTapNamespace,
  firstMissingStep,
  guestCommandLine,
  guestStep,
  imageSize,
  type ImageSize,
  installMissingPackages,
  makeLuksRoot,
  makePlainRoot,
  mandosCtl,
  privilegeProblems,
  processStatuses,
  questionLists,
  startBootServer,
  stepsSeen,
  workDir,
  ROOT_MARKER,
  type BootServer,
  type Initramfs,
  type Logged,
  type LuksRoot,
  type PlainRoot,
  type RootDisk,
  type TapNamespace,
} from "../helpers/boot.js";

const CLIENT = "vm";
const PASSPHRASE = "boot-rig passphrase, not a real secret";
/**
 * Whole run, and each scenario (a TCG boot on a loaded 2-core machine
 * takes 40-120 s). CI has 90 minutes for npm test and this together.
 */
const RUN_MS = 19 * 60_000;
const SCENARIO_MS = 240_000;
/** Build + scenarios past this: the size comparison is skipped to stay under RUN_MS. */
const SIZES_BUDGET_MS = 15 * 60_000;
/** Scenario 6: the server starts this long after qemu, and the answer must follow within ANSWER_AFTER_SERVER_MS. */
const LATE_SERVER_MS = 20_000;
const ANSWER_AFTER_SERVER_MS = 3_000;
/** The user the client runs as at boot (the agent's default). */
const CLIENT_UID = 65534;
/** MANDOS_BOOT_KEEP_LOGS=1 keeps the logs of passing scenarios too. */
const KEEP_LOGS = process.env.MANDOS_BOOT_KEEP_LOGS === "1";

const missingPackages = isRoot ? installMissingPackages() : [];
const kernel = bootKernel();
const skip =
  requires({ root: true }) ||
  (missingPackages.length > 0 && `needs Debian packages ${missingPackages.join(" ")} (apt-get failed)`) ||
  needsBuild() ||
  requires({
    commands: [QEMU, "dracut", "cryptsetup", "mkfs.ext4", "truncate", "unshare", "ip", "dbus-daemon", "gzip", "zstd", "ldd", "strip"],
    files: ["/usr/lib/dracut", "/etc/keys/mandos", "/dev/net/tun"],
  }) ||
  (kernel === null && "needs a kernel image in /boot with modules (apt-get install linux-image-amd64)");

interface Summary {
  scenario: string;
  result: "pass" | "FAIL";
  toRoot: number | null;
  qemuToRoot: number | null;
  questionToAnswer: number | null;
  note: string;
}

describe("boot: a LUKS-root VM unlocks unattended through our dracut module and server", { skip, timeout: RUN_MS }, () => {
  const runStarted = Date.now();
  let work: string;
  let logs: string;
  let initramfs: Initramfs;
  let root: LuksRoot;
  let plainRoot: PlainRoot;
  let keyId: string;
  /** Each scenario's guest console, for tests that read what a scenario's probe printed. */
  const consoles = new Map<string, string>();
  const summary: Summary[] = [];

  before(async () => {
    work = workDir("mandos-boot-");
    // Kept for failed scenarios, so not a work directory.
    logs = mkdtempSync(join(tmpdir(), "mandos-boot-logs-"));
    const started = Date.now();
    initramfs = await buildInitramfs(work, kernel!, PASSPHRASE);
    const section = initramfs.keys.section(CLIENT);
    keyId = /^key_id = ([0-9A-Fa-f]{64})$/m.exec(section)?.[1]?.toUpperCase() ?? "";
    assert.ok(keyId, "our keygen's section has a key_id");
    root = await makeLuksRoot(work, PASSPHRASE);
    plainRoot = await makePlainRoot(work);
    process.stderr.write(
      `# boot rig: kernel ${kernel!.kver}; initramfs built in ${initramfs.build.seconds.toFixed(0)} s; ` +
        `rig ready after ${((Date.now() - started) / 1000).toFixed(0)} s; logs of failed scenarios go to ${logs}\n`,
    );
  });

  after(() => {
    cleanupBootRig();
    // Keep the log directory only if a scenario left something in it.
    if (logs && readdirSync(logs).length === 0) rmSync(logs, { recursive: true, force: true });
    if (summary.length > 0) {
      const f = (n: number | null) => (n === null ? "-" : `${n.toFixed(1)} s`);
      process.stderr.write(
        "# boot scenarios (kernel start -> root mounted | qemu start -> root mounted | question -> answer):\n" +
          summary
            .map((s) => `#   ${s.result} ${s.scenario}: ${f(s.toRoot)} | ${f(s.qemuToRoot)} | ${f(s.questionToAnswer)}${s.note ? `; ${s.note}` : ""}`)
            .join("\n") +
          "\n",
      );
    }
  });

  interface Scenario {
    dir: string;
    ns: TapNamespace;
    disk: string;
    servers: BootServer[];
    guest: Logged | null;
    step(what: string): void;
    note(text: string): void;
    server(name: string, conf: string): Promise<BootServer>;
    boot(extra?: string[]): Logged;
  }

  /**
   * Runs one scenario with its own namespace, disk copy and log directory,
   * bounded by SCENARIO_MS; reports each step; on failure names the step
   * and keeps the logs. Everything it started is stopped in the end.
   */
  async function scenario(
    t: TestContext,
    name: string,
    body: (s: Scenario) => Promise<void>,
    opts: {
      expectRoot: boolean;
      /** The root disk to boot (the LUKS one unless given). */
      root?: RootDisk;
      /** Guest steps this boot has no reason to show (see firstMissingStep). */
      unexpected?: string[];
    } = { expectRoot: true },
  ): Promise<void> {
    const dir = join(logs, name);
    mkdirSync(dir, { recursive: true });
    const ns = createTapNamespace();
    const disk = join(work, `${name}.img`);
    const bootRoot = opts.root ?? root;
    copyFileSync(bootRoot.image, disk);
    const t0 = Date.now();
    let current = "setting up";
    const notes: string[] = [];
    const say = (msg: string) => t.diagnostic(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);
    const s: Scenario = {
      dir,
      ns,
      disk,
      servers: [],
      guest: null,
      step: (what) => {
        current = what;
        say(what);
      },
      note: (text) => {
        notes.push(text);
        say(text);
      },
      server: async (serviceName, conf) => {
        const server = await startBootServer({
          ns,
          dir: join(work, `${name}-${serviceName}`),
          serviceName,
          clientsConf: conf,
          logFile: join(dir, `server-${serviceName}.log`),
        });
        s.servers.push(server);
        return server;
      },
      boot: (extra = []) => {
        const guest = bootGuest({
          ns,
          initramfs,
          disk,
          commandLine: guestCommandLine(bootRoot, extra),
          consoleLog: join(dir, "console.log"),
        });
        s.guest = guest;
        return guest;
      },
    };
    let failure: unknown = null;
    let bound: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        body(s),
        new Promise((_, reject) => {
          bound = setTimeout(() => reject(new Error(`scenario not done within ${SCENARIO_MS / 1000} s`)), SCENARIO_MS);
        }),
      ]);
    } catch (err) {
      failure = err;
    } finally {
      clearTimeout(bound);
      await s.guest?.stop(10_000);
      for (const server of s.servers) await server.stop();
      ns.destroy();
      rmSync(disk, { force: true });
    }

    // Report what the guest did, with its own timestamps.
    const consoleText = s.guest ? s.guest.output() : "";
    consoles.set(name, consoleText);
    const seen = stepsSeen(consoleText);
    for (const step of seen.values()) {
      t.diagnostic(`  guest ${step.seconds === null ? "" : `${step.seconds.toFixed(2)} s `}${step.label}`);
    }
    const question = seen.get("question")?.seconds ?? null;
    const answered = seen.get("answered")?.seconds ?? null;
    const mounted = seen.get("mounted")?.seconds ?? null;
    const qemuToRoot = s.guest && mountedWallMs.has(s.guest) ? (mountedWallMs.get(s.guest)! - s.guest.startedAt) / 1000 : null;
    const questionToAnswer = question !== null && answered !== null ? answered - question : null;
    const passed = failure === null;
    summary.push({ scenario: name, result: passed ? "pass" : "FAIL", toRoot: mounted, qemuToRoot, questionToAnswer, note: notes.join("; ") });
    if (passed) {
      t.diagnostic(
        `PASS ${name}` +
          (opts.expectRoot
            ? `: root mounted ${mounted?.toFixed(1)} s after kernel start (${qemuToRoot?.toFixed(1)} s after qemu start)` +
              (questionToAnswer === null ? "" : `; question answered ${questionToAnswer.toFixed(1)} s after it appeared`)
            : ""),
      );
      if (KEEP_LOGS) t.diagnostic(`logs kept in ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
      return;
    }
    const missing = s.guest ? firstMissingStep(consoleText, opts.expectRoot ? "init" : "question", opts.unexpected) : null;
    const message =
      `FAIL ${name} at step "${current}"` +
      (missing ? ` (first guest step not reached: ${missing.label})` : "") +
      `: ${failure instanceof Error ? failure.message : String(failure)}; console and server logs kept in ${dir}`;
    t.diagnostic(message);
    throw new Error(message);
  }

  /** Host time at which the root mount was seen on each guest's console. */
  const mountedWallMs = new Map<Logged, number>();

  /**
   * Waits for the root's /sbin/init marker and qemu's exit (the init powers
   * off); the agent must have answered, unless `answered` is false.
   */
  async function untilRootMounted(s: Scenario, guest: Logged, opts: { answered: boolean } = { answered: true }): Promise<void> {
    s.step("waiting for the root to be unlocked and mounted");
    await guest.waitFor(guestStep("mounted").re, "the root file system mounted", SCENARIO_MS);
    mountedWallMs.set(guest, Date.now());
    s.step("root mounted; waiting for its /sbin/init and the power-off");
    await guest.waitFor(new RegExp(ROOT_MARKER), "the root's /sbin/init marker", 60_000);
    const exit = await Promise.race([guest.exited, sleep(60_000).then(() => null)]);
    assert.ok(exit, "qemu did not exit after the guest powered off");
    assert.equal(exit.code, 0, `qemu exit status ${exit.code ?? exit.signal}`);
    if (!opts.answered) return;
    const text = cleanConsole(guest.output());
    assert.match(text, /password-agent: answered question/, "the agent (not someone else) answered");
  }

  const conf = (section: string) => clientsConf([section]);

  test("1. normal boot: the root unlocks unattended", async (t) => {
    await scenario(t, "1-normal", async (s) => {
      s.step("starting our server (Zeroconf on) in the namespace");
      const server = await s.server("Mandos", conf(initramfs.keys.section(CLIENT)));
      s.step("booting the guest");
      const guest = s.boot();
      await untilRootMounted(s, guest);
      assert.match(server.process.output(), new RegExp(`Sending secret to ${CLIENT}`));
    });
  });

  test("2. client disabled on the server: no unlock, systemd's question still pending", async (t) => {
    await scenario(
      t,
      "2-disabled",
      async (s) => {
        s.step("starting our server and disabling the client with mandos-ctl --disable");
        const server = await s.server("Mandos", conf(initramfs.keys.section(CLIENT)));
        const disable = await mandosCtl(server, ["--disable", CLIENT]);
        assert.equal(disable.code, 0, `mandos-ctl --disable: ${disable.stderr}`);
        const enabled = await mandosCtl(server, ["-V", CLIENT]);
        assert.equal(enabled.code, 1, "mandos-ctl -V reports the client disabled");
        s.step("booting the guest with the question probe");
        const guest = s.boot(["mandos_boot_rig.probe"]);
        s.step("waiting for the client to ask the server (and be refused)");
        await server.process.waitFor(new RegExp(`Client ${CLIENT} is disabled`), "the server refusing the disabled client", SCENARIO_MS - 60_000);
        await server.process.waitFor(new RegExp(`Client ${CLIENT} is disabled[^]*Client ${CLIENT} is disabled`), "the client retrying", 40_000);
        // Lists printed from now on were taken after the agent's client was refused.
        const listsBefore = questionLists(guest.output()).length;
        s.step("waiting for two more question lists from inside the guest");
        const deadline = Date.now() + 45_000;
        while (questionLists(guest.output()).length < listsBefore + 2) {
          assert.ok(Date.now() < deadline, "the guest's question probe stopped printing");
          assert.ok(!guest.hasExited, "the guest stopped");
          await sleep(500);
        }
        const text = cleanConsole(guest.output());
        const lists = questionLists(guest.output());
        const last = lists.at(-1)!;
        s.note(`question still pending at guest ${last.seconds.toFixed(0)} s: ${last.questions.join(" | ") || "(none)"}`);
        assert.ok(
          last.questions.some((q) => q.includes(`Please enter passphrase for disk luks-${root.uuid}`)),
          `systemd's question is no longer pending: ${JSON.stringify(last)}`,
        );
        assert.match(text, /Please enter passphrase for disk luks-/, "systemd's console prompt");
        assert.doesNotMatch(text, /answered question/);
        assert.doesNotMatch(text, /EXT4-fs \(dm-\d+\): mounted filesystem/);
        assert.doesNotMatch(server.process.output(), /Sending secret/);
        assert.doesNotMatch(text, /ask-password-mandos\.service: (Failed|Main process exited)/, "the agent kept running");
        s.step("ending the run (timeout): stopping qemu");
        const exit = await guest.stop(15_000);
        assert.ok(exit.code !== null || exit.signal !== null);
      },
      { expectRoot: false },
    );
  });

  test("client privileges inside the guest (scenario 2's probe): uid 65534, every capability set empty, NoNewPrivs", (t) => {
    // The process that parses mDNS, TLS and OpenPGP from the network, as
    // the rig's probe read it from /proc/PID/status while it kept asking
    // the server that refused it.
    const text = consoles.get("2-disabled");
    assert.ok(text, "scenario 2 left no guest console to read (it did not boot)");
    const statuses = processStatuses(text);
    assert.ok(statuses.length > 0, "the probe printed no Mandos client process status in scenario 2");
    const pids = new Set<number>();
    for (const st of statuses) {
      if (pids.has(st.pid)) continue;
      pids.add(st.pid);
      const f = Object.fromEntries(Object.entries(st.fields).map(([k, v]) => [k, v.replace(/\s+/g, " ")]));
      t.diagnostic(
        `guest ${st.seconds.toFixed(1)} s: PID ${st.pid} (${f.Name ?? "?"}) Uid ${f.Uid ?? "?"} | Gid ${f.Gid ?? "?"} | ` +
          `CapInh ${f.CapInh ?? "?"} CapPrm ${f.CapPrm ?? "?"} CapEff ${f.CapEff ?? "?"} CapAmb ${f.CapAmb ?? "?"} | NoNewPrivs ${f.NoNewPrivs ?? "?"}`,
      );
    }
    const problems = statuses.flatMap((st) => privilegeProblems(st, CLIENT_UID).map((p) => `PID ${st.pid}: ${p}`));
    assert.deepEqual([...new Set(problems)], [], "the Mandos client at boot is not unprivileged");
  });

  test("3. server started 20 s after the guest's client began browsing: found and unlocks", async (t) => {
    await scenario(t, "3-late-server", async (s) => {
      s.step("booting the guest with no server running");
      const guest = s.boot();
      s.step("waiting for the client to browse for servers");
      await guest.waitFor(/mandos-client: debug: Zeroconf: browsing for _mandos\._tcp/, "the client browsing", SCENARIO_MS - 60_000);
      // 20 s after the client began looking (itself ~20-50 s after qemu
      // started): the agent must already be waiting when the server appears.
      const browsingAt = Date.now();
      s.step("waiting 20 s before starting the server");
      await sleep(20_000);
      assert.ok(!guest.hasExited, "the guest stopped while no server ran");
      assert.doesNotMatch(cleanConsole(guest.output()), /answered question/);
      s.step("starting our server");
      const server = await s.server("Mandos", conf(initramfs.keys.section(CLIENT)));
      s.note(`server started ${((Date.now() - guest.startedAt) / 1000).toFixed(0)} s after qemu, ${((Date.now() - browsingAt) / 1000).toFixed(0)} s after the client began browsing`);
      const serverUp = Date.now();
      await untilRootMounted(s, guest);
      assert.match(server.process.output(), new RegExp(`Sending secret to ${CLIENT}`));
      s.note(`unlocked ${((mountedWallMs.get(guest)! - serverUp) / 1000).toFixed(0)} s after the server started`);
    });
  });

  test("4. two servers, the first does not know this client: the second unlocks it", async (t) => {
    await scenario(t, "4-two-servers", async (s) => {
      s.step("starting server A, which knows only another client");
      const other = initramfs.keys
        .section("other")
        .replace(/^key_id = .*$/m, `key_id = ${"A".repeat(64)}`)
        .replace(/^fingerprint = .*$/m, `fingerprint = ${"B".repeat(40)}`);
      const first = await s.server("Mandos-A", conf(other));
      s.step("booting the guest");
      const guest = s.boot();
      s.step("waiting for server A to refuse the unknown client");
      await first.process.waitFor(new RegExp(`Client not found for key ID: ${keyId}`), "server A refusing the client", SCENARIO_MS - 60_000);
      s.step("starting server B, which knows the client");
      const second = await s.server("Mandos-B", conf(initramfs.keys.section(CLIENT)));
      await untilRootMounted(s, guest);
      assert.match(second.process.output(), new RegExp(`Sending secret to ${CLIENT}`));
      assert.doesNotMatch(first.process.output(), /Sending secret/);
    });
  });

  test("8. k-of-n: a passphrase split 2-of-2 over two servers found by Zeroconf unlocks", async (t) => {
    await scenario(t, "8-two-shares", async (s) => {
      s.step("splitting the passphrase 2-of-2 with our keygen");
      const { sections } = await shareSections(initramfs.keys.dir, PASSPHRASE, 2, 2, CLIENT);
      assert.equal(sections.length, 2);
      s.step("starting two servers, one share each (Zeroconf on)");
      const servers = [await s.server("Mandos-share-1", conf(sections[0]!)), await s.server("Mandos-share-2", conf(sections[1]!))];
      s.step("booting the guest");
      const guest = s.boot();
      await untilRootMounted(s, guest);
      for (const server of servers) assert.match(server.process.output(), new RegExp(`Sending secret to ${CLIENT}`), `${server.name} gave its share`);
    });
  });

  test("9. k-of-n without Zeroconf: two mandos=connect: options, one share on each server, unlocks", async (t) => {
    await scenario(t, "9-two-shares-connect", async (s) => {
      s.step("splitting the passphrase 2-of-2 with our keygen");
      const { sections } = await shareSections(initramfs.keys.dir, PASSPHRASE, 2, 2, CLIENT);
      // A fixed address on the host's side of the link, for the command line.
      const address = "fe80::1:5";
      execFileSync("ip", ["-n", s.ns.name, "addr", "add", `${address}/64`, "dev", s.ns.tap, "nodad"]);
      s.step("starting two servers, one share each");
      const servers = [await s.server("Mandos-share-1", conf(sections[0]!)), await s.server("Mandos-share-2", conf(sections[1]!))];
      const ports = servers.map((server) => server.port);
      s.step(`booting the guest with mandos=connect:${address}%eth0:PORT for each`);
      const guest = s.boot(["mandos=interface:eth0", ...ports.map((p) => `mandos=connect:${address}%eth0:${p}`)]);
      await untilRootMounted(s, guest);
      for (const server of servers) assert.match(server.process.output(), new RegExp(`Sending secret to ${CLIENT}`), `${server.name} gave its share`);
      const console_ = cleanConsole(guest.output());
      assert.doesNotMatch(console_, /Zeroconf: browsing/, "the client did not browse");
      for (const p of ports) assert.match(console_, new RegExp(`trying \\[${address}%eth0\\]:${p}`), `the client tried port ${p}`);
    });
  });

  test("5. approval_delay, not approved by default: approved with mandos-ctl --approve, unlocks", async (t) => {
    await scenario(t, "5-approval", async (s) => {
      s.step("starting our server with approval_delay = 3m, approved_by_default = False");
      const section = `${initramfs.keys.section(CLIENT).trimEnd()}\napproval_delay = 3m\napproved_by_default = False\n`;
      const server = await s.server("Mandos", conf(section));
      s.step("booting the guest");
      const guest = s.boot();
      s.step("waiting for the server to ask for approval");
      await server.process.waitFor(new RegExp(`Client ${CLIENT} needs approval`), "the server waiting for approval", SCENARIO_MS - 60_000);
      // The guest waits: no secret without approval.
      await sleep(5_000);
      assert.doesNotMatch(cleanConsole(guest.output()), /answered question/);
      assert.doesNotMatch(server.process.output(), /Sending secret/);
      s.step("approving with mandos-ctl --approve");
      const approve = await mandosCtl(server, ["--approve", CLIENT]);
      assert.equal(approve.code, 0, `mandos-ctl --approve: ${approve.stderr}`);
      const approvedAt = Date.now();
      await untilRootMounted(s, guest);
      assert.match(server.process.output(), new RegExp(`Sending secret to ${CLIENT}`));
      s.note(`unlocked ${((mountedWallMs.get(guest)! - approvedAt) / 1000).toFixed(0)} s after the approval`);
    });
  });

  test("6. early agent, late server: the server starts 20 s after the guest, the agent answers within 3 s of it", async (t) => {
    await scenario(t, "6-early-agent-late-server", async (s) => {
      s.step("booting the guest with no server running");
      const guest = s.boot();
      s.step(`waiting until ${LATE_SERVER_MS / 1000} s after qemu started`);
      await sleep(Math.max(0, guest.startedAt + LATE_SERVER_MS - Date.now()));
      assert.ok(!guest.hasExited, "the guest stopped while no server ran");
      assert.doesNotMatch(cleanConsole(guest.output()), /answered question/);
      s.step("starting our server");
      const server = await s.server("Mandos", conf(initramfs.keys.section(CLIENT)));
      // The server's start: when the host sees it listening (it announces
      // itself on the tap as it starts listening). Its own start-up before
      // that (node, D-Bus: about 1 s on a loaded host) is not the boot's.
      const spawned = server.process.startedAt;
      const serverStart = server.process.seenAt(/Now listening on address/) ?? spawned;
      await untilRootMounted(s, guest);
      assert.match(server.process.output(), new RegExp(`Sending secret to ${CLIENT}`));

      // Measured: the agent's answer as the host sees it on the console.
      // It ends what Mandos does; the LUKS unlock after it is
      // systemd-cryptsetup's own work (1-2 s under TCG), the same for any agent.
      s.step("comparing the host times of the server's start and the agent's answer");
      const wall = (key: string) => guest.seenAt(guestStep(key).re);
      const after = (at: number | null) => (at === null ? "never" : `${((at - serverStart) / 1000).toFixed(1)} s`);
      const question = wall("question");
      const answered = wall("answered");
      s.note(
        `server started (listening) at qemu +${((serverStart - guest.startedAt) / 1000).toFixed(1)} s, ` +
          `${((serverStart - spawned) / 1000).toFixed(1)} s after its process; from then: ` +
          `client browsing ${after(wall("browsing"))}, question ${after(question)}, secret held ${after(wall("held"))}, ` +
          `answered ${after(answered)}, LUKS unlocked ${after(wall("unlocked"))}`,
      );
      const seen = stepsSeen(guest.output());
      const agentAt = seen.get("agent")?.seconds;
      const questionAt = seen.get("question")?.seconds;
      assert.ok(agentAt != null && questionAt != null && agentAt < questionAt, `the agent started (guest ${agentAt} s) before the question (guest ${questionAt} s)`);
      assert.ok(answered !== null && question !== null);
      // A question that appears after the server started cannot be answered before it appears.
      const from = Math.max(serverStart, question);
      assert.ok(
        answered - from <= ANSWER_AFTER_SERVER_MS,
        `the agent answered ${((answered - from) / 1000).toFixed(1)} s after ` +
          `${question > serverStart ? "the question (which came after the server's start)" : "the server's start"}, ` +
          `not within ${ANSWER_AFTER_SERVER_MS / 1000} s`,
      );
    });
  });

  test("7. no question: a root that needs no password; the secret is fetched, held, and dropped at switch-root", async (t) => {
    await scenario(
      t,
      "7-no-question",
      async (s) => {
        s.step("starting our server");
        const server = await s.server("Mandos", conf(initramfs.keys.section(CLIENT)));
        s.step("booting the guest from the unencrypted root (the switch to it waits for the held secret)");
        const guest = s.boot(["mandos_boot_rig.wait_for_hold"]);
        await untilRootMounted(s, guest, { answered: false });
        assert.match(server.process.output(), new RegExp(`Sending secret to ${CLIENT}`));
        const text = cleanConsole(guest.output());
        assert.doesNotMatch(text, guestStep("question").re, "no password question was asked");
        assert.doesNotMatch(text, /answered question/, "the agent answered no question");
        // The console is one stream: its order is the guest's order.
        const at = (re: RegExp, what: string) => {
          const i = text.search(re);
          assert.ok(i >= 0, `the console does not show ${what}`);
          return i;
        };
        const held = at(guestStep("held").re, "the agent holding the secret");
        const dropped = at(/password-agent: dropped the held secret: the agent is stopping/, 'the secret dropped because "the agent is stopping"');
        const init = at(guestStep("init").re, "the root's init marker");
        assert.ok(held < dropped && dropped < init, "held, then dropped at switch-root, then the root's init");
        assert.doesNotMatch(text.slice(held, dropped), /dropped the held secret/, "the held secret was dropped only once, at switch-root");
        const seen = stepsSeen(guest.output());
        s.note(`secret held at guest ${seen.get("held")?.seconds?.toFixed(1)} s, dropped at ${seen.get("dropped")?.seconds?.toFixed(1)} s`);
      },
      { expectRoot: true, root: plainRoot, unexpected: ["cryptsetup", "question", "answered", "unlocked"] },
    );
  });

  test("size the module adds to the initramfs, against Debian's 90mandos", async (t) => {
    if (Date.now() - runStarted > SIZES_BUDGET_MS) {
      t.skip(`skipped to stay under ${RUN_MS / 60_000} minutes`);
      return;
    }
    const { none, debian } = await comparisonBuilds(initramfs);
    const [base, ours, theirs] = await Promise.all([imageSize(none.image), imageSize(initramfs.image), imageSize(debian.image)]);
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    const growth = (size: ImageSize) =>
      `${mb(size.uncompressed - base.uncompressed)} (gzip -9: +${mb(size.gzip - base.gzip)}, zstd -19: +${mb(size.zstd - base.zstd)})`;
    const line =
      `initramfs without Mandos ${mb(base.uncompressed)} (gzip -9: ${mb(base.gzip)}, zstd -19: ${mb(base.zstd)}); ` +
      `ours adds ${growth(ours)}; Debian's 90mandos adds ${growth(theirs)}`;
    t.diagnostic(line);
    process.stderr.write(`# ${line}\n`);
    assert.ok(ours.uncompressed > base.uncompressed);
    // Issue 12's targets, met with English-only ICU data in the image's
    // node (docs/design.md, "Compressing the initramfs").
    assert.ok(ours.zstd - base.zstd <= 26e6, `zstd -19 growth ${mb(ours.zstd - base.zstd)}, over 26 MB`);
    assert.ok(ours.gzip - base.gzip <= 34e6, `gzip -9 growth ${mb(ours.gzip - base.gzip)}, over 34 MB`);
  });
});
