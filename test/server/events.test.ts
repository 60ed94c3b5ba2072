// The pure parts of events, metrics and the journal: how a record is encoded
// for journald's native protocol (read back here as journald parses it), when
// standard error counts as the journal, which failures are refusals, what the
// metrics endpoint answers, which fields each event carries, and the
// approval events of the client model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeLogger } from "../../src/cli/log.js";
import { ProtocolError } from "../../src/protocol/version-line.js";
import { refusalOf } from "../../src/server/connection.js";
import { journalFields, MESSAGE_IDS, type ServerEvent } from "../../src/server/events.js";
import { route } from "../../src/server/metrics-http.js";
import { createMetrics, type ClientView } from "../../src/server/metrics.js";
import { ClientModel, type ClientRecord, type Effect } from "../../src/server/client-model.js";
import { encodeJournalRecord, journalLogger, MAX_FIELD_BYTES, stderrIsJournal } from "../../src/sys/journal.js";
import { bindDatagram } from "../../src/sys/unix-dgram.js";
import { tempDir } from "../helpers/index.js";

/** journald's parser of a native datagram (journald-native.c), for what we send. */
function decode(buf: Buffer): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  while (i < buf.length) {
    const nl = buf.indexOf(0x0a, i);
    const line = buf.subarray(i, nl);
    const eq = line.indexOf(0x3d);
    if (eq >= 0) {
      out.push([line.subarray(0, eq).toString(), line.subarray(eq + 1).toString()]);
      i = nl + 1;
    } else {
      const size = Number(buf.readBigUInt64LE(nl + 1));
      out.push([line.toString(), buf.subarray(nl + 9, nl + 9 + size).toString()]);
      assert.equal(buf[nl + 9 + size], 0x0a, "binary field ends with a newline");
      i = nl + 10 + size;
    }
  }
  return out;
}

test("journal records: KEY=value, the binary form for newlines, values bounded, bad names refused", () => {
  const fields: [string, string][] = [
    ["MESSAGE", "Sending secret to foo"],
    ["MANDOS_CLIENT", "a=b"],
    ["MULTI", "one\ntwo"],
  ];
  const buf = encodeJournalRecord(fields);
  assert.ok(buf.toString("latin1").startsWith("MESSAGE=Sending secret to foo\nMANDOS_CLIENT=a=b\nMULTI\n"));
  assert.deepEqual(decode(buf), fields);
  const long = decode(encodeJournalRecord([["MESSAGE", "x".repeat(MAX_FIELD_BYTES + 100)]]));
  assert.equal(long[0]![1].length, MAX_FIELD_BYTES);
  for (const bad of ["lower", "_TRUSTED", "1ST", "A-B", "", "A".repeat(65)]) assert.throws(() => encodeJournalRecord([[bad, "x"]]), /bad journal field name/);
});

test("standard error is the journal only when JOURNAL_STREAM names its device and inode", () => {
  const st = () => ({ dev: 9, ino: 1224460 });
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: "9:1224460" }, st), true);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: "9:1224461" }, st), false, "redirected elsewhere");
  assert.equal(stderrIsJournal({}, st), false);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: "9:" }, st), false);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: "9:1224460" }, () => { throw new Error("EBADF"); }), false);
});

test("the journal logger sends one native datagram per record; without journald, standard error", () => {
  using dir = tempDir();
  const socket = join(dir.path, "socket");
  const receiver = bindDatagram(socket);
  const lines: string[] = [];
  const fallback = makeLogger("mandos", { write: (l) => lines.push(l) });
  try {
    const log = journalLogger("mandos", "info", fallback, socket);
    log.debug("not at this level");
    log.warning("Client foo was not approved\nsecond line", journalFields({ kind: "refused", reason: "approval_denied", client: "foo" }));
    assert.deepEqual(decode(receiver.receive(2000)!), [
      ["MESSAGE", "Client foo was not approved second line"],
      ["PRIORITY", "4"],
      ["SYSLOG_IDENTIFIER", "mandos"],
      ["MESSAGE_ID", MESSAGE_IDS.refused],
      ["MANDOS_REASON", "approval_denied"],
      ["MANDOS_CLIENT", "foo"],
    ]);
    assert.equal(receiver.receive(50), null, "the debug line was filtered");
    journalLogger("mandos", "info", fallback, join(dir.path, "absent")).info("no journald");
    assert.deepEqual(lines, ["mandos: no journald\n"]);
  } finally {
    receiver.close();
  }
});

test("refusals: a bad version line, any handshake failure; not a peer that sent nothing or left", () => {
  assert.equal(refusalOf("line", new ProtocolError("unsupported protocol version 2")), "bad_version");
  assert.equal(refusalOf("line", new ProtocolError("no protocol line within 3000 ms", false)), null);
  assert.equal(refusalOf("handshake", new Error("GnuTLS: handshake failed")), "handshake_failure");
  assert.equal(refusalOf("request", new Error("x")), null);
  assert.equal(refusalOf("answer", new Error("EPIPE")), null);
});

test("the metrics endpoint: GET or HEAD /metrics, else 404 or 405 with one line", () => {
  assert.deepEqual(route("GET", "/metrics"), { status: 200 });
  assert.deepEqual(route("HEAD", "/metrics?x=1"), { status: 200 });
  assert.deepEqual(route("GET", "/"), { status: 404, error: "not found: only /metrics is served" });
  assert.deepEqual(route("DELETE", "/metrics"), { status: 405, error: "method DELETE not allowed: use GET" });
});

test("journal fields: a stable MESSAGE_ID per event kind, MANDOS_CLIENT, and why", () => {
  const cases: [ServerEvent, Record<string, string>][] = [
    [{ kind: "served", client: "a" }, { MESSAGE_ID: "ccb8e202e6e84afc9001f31be8d58489", MANDOS_CLIENT: "a" }],
    [{ kind: "refused", reason: "unknown_key", keyId: "AB", address: "::1" }, { MESSAGE_ID: "a0b6adecd62f4a0d8bec70df340b706c", MANDOS_REASON: "unknown_key", MANDOS_KEY_ID: "AB", MANDOS_ADDRESS: "::1" }],
    [{ kind: "disabled_by_timeout", client: "a" }, { MESSAGE_ID: "5aa0d2358841450083ec68d8c9226f06", MANDOS_CLIENT: "a" }],
    [{ kind: "checker_ran", client: "a", outcome: "crashed" }, { MESSAGE_ID: "5262a5c2635f47d89abd040950d5311e", MANDOS_CHECKER_RESULT: "crashed", MANDOS_CLIENT: "a" }],
    [{ kind: "checker_ran", client: "a", outcome: "success" }, { MANDOS_CHECKER_RESULT: "success", MANDOS_CLIENT: "a" }],
    [{ kind: "approval_requested", client: "a" }, { MESSAGE_ID: "b2cdc1538d5748ee8550c3fa73d54544", MANDOS_CLIENT: "a" }],
    [{ kind: "approval_given", client: "a", by: "operator" }, { MESSAGE_ID: "be3a059fbd2d4cb6afa392445c3576b5", MANDOS_APPROVED_BY: "operator", MANDOS_CLIENT: "a" }],
  ];
  for (const [event, fields] of cases) assert.deepEqual(journalFields(event), fields);
});

test("the gauges read the clients at each scrape: clients added or removed at run time are followed", async () => {
  const clients: ClientView[] = [{ record: { enabled: true }, approvalPending: false }];
  const { registry } = createMetrics(() => clients);
  const gauges = async () => {
    const text = await registry.metrics();
    return ["mandos_clients", "mandos_clients_enabled", "mandos_approvals_pending"].map((n) => Number(new RegExp(`^${n} (\\S+)$`, "m").exec(text)?.[1]));
  };
  assert.deepEqual(await gauges(), [1, 1, 0]);
  clients.push({ record: { enabled: false }, approvalPending: false }, { record: { enabled: true }, approvalPending: true });
  assert.deepEqual(await gauges(), [3, 2, 1]);
  clients.splice(0, 3);
  assert.deepEqual(await gauges(), [0, 0, 0]);
});

function record(over: Partial<ClientRecord> = {}): ClientRecord {
  return {
    name: "foo", keyId: "AB", fingerprint: "", host: "foo", checker: "true",
    timeoutMs: 300_000, extendedTimeoutMs: 900_000, intervalMs: 120_000,
    approvalDelayMs: 10_000, approvalDurationMs: 1_000, approvedByDefault: true,
    secret: Buffer.from("s"), enabled: true, created: 0, lastEnabled: 0, lastCheckedOK: null,
    lastCheckerStatus: -2, lastCheckerSignal: null, lastApprovalRequest: null, expires: null,
    ...over,
  };
}

const eventsOf = (effects: Effect[]) => effects.flatMap((e) => (e.type === "log" && e.event ? [e.event] : []));

test("the model tags approval requested, given by an operator or by default, and no approval needed", () => {
  const m = new ClientModel(record());
  m.beginRequest(0, 1);
  assert.deepEqual(eventsOf(m.takeEffects()), [{ kind: "approval_requested", client: "foo" }]);
  m.approve(5, true);
  assert.deepEqual(eventsOf(m.takeEffects()), [{ kind: "approval_given", client: "foo", by: "operator" }]);
  m.tick(2_000);
  m.beginRequest(2_000, 2);
  m.takeEffects();
  m.tick(12_000);
  assert.deepEqual(eventsOf(m.takeEffects()), [{ kind: "approval_given", client: "foo", by: "default" }]);
  const plain = new ClientModel(record({ approvalDelayMs: 0 }));
  plain.beginRequest(0, 1);
  assert.deepEqual(eventsOf(plain.takeEffects()), [], "no approval needed, none given");
});
