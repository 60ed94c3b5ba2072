// Structured events in the journal. What is real: Debian's systemd-journald
// (run privately, in a mount namespace of the test's own, its sockets on a
// tmpfs over /run/systemd/journal and its files in the test's directory),
// journald's stream connected to the server's stdout and stderr by
// systemd-cat, our server, Debian's mandos-client doing real handshakes, and
// journalctl reading the result. What is not: systemd as PID 1. The service
// manager sets JOURNAL_STREAM to the stream's device:inode; systemd-cat does
// not, so a shell line sets it exactly so before exec'ing the server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { BIN, requires, run, tempDir } from "../helpers/index.js";
import { freePort, serverWritableDir, startFetch, waitFor, writeConfig } from "../helpers/server.js";
import { DEBIAN_CLIENT, debianPeerMissing } from "../helpers/debian-peer.js";
import { MESSAGE_IDS } from "../../src/server/events.js";
import { eventClients } from "../helpers/event-clients.js";

const JOURNALD = "/lib/systemd/systemd-journald";
const skip = requires({ root: true, files: [JOURNALD], commands: ["unshare", "systemd-cat", "journalctl", "gpg"] }) || debianPeerMissing(DEBIAN_CLIENT);

/** A private journald, then the server with its stderr on journald's stream, as a unit's would be. */
const SCRIPT = String.raw`
set -e
mount -t tmpfs -o mode=0755 tmpfs /run/systemd/journal
mount --bind "$LOGDIR" /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
"$JOURNALD" &
while [ ! -S /run/systemd/journal/stdout ]; do sleep 0.05; done
exec systemd-cat -t mandos sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"' sh "$@"
`;

type Entry = Record<string, string>;

function journalDir(logDir: string): string | null {
  const base = join(logDir, "journal");
  if (!existsSync(base)) return null;
  const ids = readdirSync(base);
  return ids.length ? join(base, ids[0]!) : null;
}

async function entries(logDir: string, ...match: string[]): Promise<Entry[]> {
  const dir = journalDir(logDir);
  if (!dir) return [];
  const r = await run("journalctl", ["-D", dir, "-o", "json", "--no-pager", ...match]);
  return r.stdout
    .toString()
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Entry);
}

test("under journald, events go natively with MESSAGE_ID and MANDOS_CLIENT; secrets never", { skip, timeout: 120_000 }, async () => {
  using dir = tempDir("mandos-journal-");
  chmodSync(dir.path, 0o755);
  const { served, sleepy, stranger, clients } = await eventClients(dir.path);
  const servedSection = served.section("served");
  const port = await freePort();
  const configDir = writeConfig(join(dir.path, "conf"), { clients, port });
  const stateDir = serverWritableDir(join(dir.path, "state"));
  const logDir = join(dir.path, "log");
  mkdirSync(logDir);
  const args = [join(BIN, "mandos"), "--debug", "--no-dbus", "--no-zeroconf", "--configdir", configDir, "--statedir", stateDir];
  const child = spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh", process.execPath, ...args], {
    env: { ...process.env, LOGDIR: logDir, JOURNALD },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d));
  child.stderr!.on("data", (d: Buffer) => (out += d));
  try {
    await waitFor("the server listening", async () => (await entries(logDir, "MESSAGE=Now listening on address \"::1\", port " + port)).length > 0, 30_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${out}`);
    });
    const fetched = await startFetch(served, port).result;
    assert.equal(fetched.code, 0, fetched.stderr);
    const refused = MESSAGE_IDS.refused;
    for (const [keys, client] of [[stranger, null], [sleepy, "sleepy"]] as const) {
      if (client) await waitFor("sleepy disabled", async () => (await entries(logDir, `MESSAGE_ID=${MESSAGE_IDS.disabled_by_timeout}`)).length > 0, 15_000);
      const fetch = startFetch(keys, port);
      await waitFor(`a refusal of ${client ?? "the stranger"}`, async () => (await entries(logDir, `MESSAGE_ID=${refused}`, ...(client ? [`MANDOS_CLIENT=${client}`] : []))).length > 0, 20_000);
      fetch.kill();
      await fetch.result;
    }

    const one = async (id: string, ...match: string[]) => {
      const found = await entries(logDir, `MESSAGE_ID=${id}`, ...match);
      assert.ok(found.length >= 1, `no event ${id} ${match.join(" ")}`);
      // Sent with the native protocol, not parsed from the stream.
      assert.equal(found[0]!._TRANSPORT, "journal");
      assert.equal(found[0]!.SYSLOG_IDENTIFIER, "mandos");
      return found[0]!;
    };
    assert.equal((await one(MESSAGE_IDS.served, "MANDOS_CLIENT=served")).MESSAGE, "Sending secret to served");
    assert.equal((await one(MESSAGE_IDS.approval_requested, "MANDOS_CLIENT=served")).PRIORITY, "6");
    assert.equal((await one(MESSAGE_IDS.approval_given, "MANDOS_CLIENT=served")).MANDOS_APPROVED_BY, "default");
    await one(MESSAGE_IDS.disabled_by_timeout, "MANDOS_CLIENT=sleepy");
    assert.equal((await one(MESSAGE_IDS.checker_failed, "MANDOS_CLIENT=sleepy")).MANDOS_CHECKER_RESULT, "failure");
    assert.equal((await one(refused, "MANDOS_CLIENT=sleepy")).MANDOS_REASON, "disabled");
    const unknown = await one(refused, "MANDOS_REASON=unknown_key");
    assert.match(unknown.MANDOS_KEY_ID ?? "", /^[0-9A-F]{64}$/);
    assert.equal(unknown.MANDOS_ADDRESS, "::1");
    // Plain lines are native records too (with a priority), just without an id.
    const plain = await entries(logDir, "SYSLOG_IDENTIFIER=mandos", "PRIORITY=7");
    assert.ok(plain.some((e) => e._TRANSPORT === "journal" && !e.MESSAGE_ID), "debug lines sent natively");

    // No secret in any record: neither the encrypted one from clients.conf nor the passwords.
    const everything = JSON.stringify(await entries(logDir));
    const encrypted = /^secret = (\S+)/m.exec(servedSection)?.[1] ?? /^\s+(\S{40,})/m.exec(servedSection)![1]!;
    for (const s of [encrypted.slice(0, 40), "served secret", "sleepy secret"]) assert.ok(!everything.includes(s), `journal holds ${s}`);
  } finally {
    // The whole group: the namespace's shell, journald and the server.
    try {
      process.kill(-child.pid!, "SIGTERM");
    } catch {
      // already gone
    }
    await new Promise((r) => child.once("close", r));
  }
});
