// Run-time checker expansion, compared with what Mandos's start_checker()
// computes (shlex.quote(str(attr)) and Python's "%" operator).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  expandChecker,
  validateCheckerTemplate,
  checkerAttributes,
  shellQuote,
  pythonTimedelta,
  pythonDatetime,
  CheckerTemplateError,
  RUNTIME_EXPANSIONS,
  type CheckerClientState,
} from "../../src/config/checker.js";
import { askMandos, oracleSkip, type OracleValue } from "../helpers/config.js";

test("shellQuote leaves safe words alone and single-quotes the rest", () => {
  assert.equal(shellQuote("foo.example.org"), "foo.example.org");
  assert.equal(shellQuote("fe80::1%eth0"), "fe80::1%eth0");
  assert.equal(shellQuote(""), "''");
  assert.equal(shellQuote("a b"), "'a b'");
  assert.equal(shellQuote("it's"), `'it'"'"'s'`);
  assert.equal(shellQuote("$(reboot)"), "'$(reboot)'");
  assert.equal(shellQuote("héllo"), "'héllo'");
});

test("expandChecker: %(name)s quoted, %% is %, values printed as Python does", () => {
  const attrs = { host: "foo.example.org", name: "my client", enabled: true, expires: null, n: 3 };
  assert.equal(expandChecker("fping -q -- %(host)s", attrs), "fping -q -- foo.example.org");
  assert.equal(expandChecker("echo %(name)s %(enabled)s %(expires)s %(n)s 100%%", attrs), "echo 'my client' True None 3 100%");
  assert.equal(expandChecker("no directives", {}), "no directives");
  assert.equal(expandChecker("[%(host)20s][%(host)-20s][%(host).3s]", attrs), "[     foo.example.org][foo.example.org     ][foo]");
});

test("a host cannot inject shell commands", () => {
  const command = expandChecker("fping -q -- %(host)s", { host: "x; rm -rf / #'" });
  assert.equal(command, `fping -q -- 'x; rm -rf / #'"'"''`);
});

test("bad templates and unknown names are clear errors", () => {
  const cases: [string, RegExp][] = [
    ["%(nosuch)s", /%\(nosuch\)s, which is not a client attribute/],
    ["100%", /"%" not followed by "%" or "\(name\)s"/],
    ["%s", /"%" not followed/],
    ["%(host)d", /only %\(name\)s is supported/],
    ["%(host)", /incomplete/],
  ];
  for (const [template, message] of cases) {
    assert.throws(() => expandChecker(template, { host: "h" }), (e: unknown) => e instanceof CheckerTemplateError && message.test(e.message), template);
  }
  assert.throws(() => expandChecker("%(toString)s", {}), /not a client attribute/);
});

test("validateCheckerTemplate knows Mandos's run-time attributes", () => {
  validateCheckerTemplate("ssh-keyscan %(host)s %(name)s %(dbus_object_path)s %(last_checked_ok)s %%");
  assert.throws(() => validateCheckerTemplate("%(secret)s"), /not a client attribute/);
  assert.throws(() => validateCheckerTemplate("%(extended_timeout)s"), /not a client attribute/);
  assert.equal(RUNTIME_EXPANSIONS.length, 15);
});

test("Python's str() of durations and times", () => {
  assert.equal(pythonTimedelta(0), "0:00:00");
  assert.equal(pythonTimedelta(300_000), "0:05:00");
  assert.equal(pythonTimedelta(1500), "0:00:01.500000");
  assert.equal(pythonTimedelta(86_400_000), "1 day, 0:00:00");
  assert.equal(pythonTimedelta(2 * 86_400_000 + 3_723_000), "2 days, 1:02:03");
  assert.equal(pythonTimedelta(-86_400_000 + 5000), "-1 day, 0:00:05");
  assert.equal(pythonDatetime(new Date(Date.UTC(2024, 0, 2, 3, 4, 5))), "2024-01-02 03:04:05");
  assert.equal(pythonDatetime(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6))), "2024-01-02 03:04:05.006000");
  assert.equal(pythonDatetime(null), "None");
});

const state: CheckerClientState = {
  name: "foo",
  host: "foo example",
  keyId: "F33FCBED11ED5E03073F6A55B86FFE92AF0E24C045FB6E3B40547B3DC0C030ED",
  fingerprint: null,
  enabled: true,
  timeoutMs: 300_000,
  intervalMs: 120_500,
  approvalDelayMs: 0,
  approvalDurationMs: 86_400_000 * 3 + 1000,
  created: new Date(Date.UTC(2024, 4, 6, 7, 8, 9, 123)),
  expires: new Date(Date.UTC(2024, 4, 6, 7, 13, 9)),
  lastEnabled: new Date(Date.UTC(1999, 11, 31, 23, 59, 59, 999)),
  lastCheckedOk: null,
  lastApprovalRequest: null,
  dbusObjectPath: "/clients/foo",
};

test("checker expansions match Debian's Mandos", { skip: oracleSkip }, async () => {
  // The same client as Mandos holds it: timedelta and naive UTC datetime objects.
  const ms = (d: Date | null): OracleValue => (d === null ? null : { datetime: d.getTime() });
  const pythonAttrs: Record<string, OracleValue> = {
    approval_delay: { timedelta: state.approvalDelayMs },
    approval_duration: { timedelta: state.approvalDurationMs },
    created: ms(state.created),
    enabled: state.enabled,
    expires: ms(state.expires),
    key_id: state.keyId!,
    fingerprint: "",
    host: state.host,
    interval: { timedelta: state.intervalMs },
    last_approval_request: ms(state.lastApprovalRequest),
    last_checked_ok: ms(state.lastCheckedOk),
    last_enabled: ms(state.lastEnabled),
    name: state.name,
    timeout: { timedelta: state.timeoutMs },
    dbus_object_path: state.dbusObjectPath!,
  };
  const templates = [
    "fping -q -- %(host)s",
    RUNTIME_EXPANSIONS.map((n) => `${n}=%(${n})s`).join(" "),
    "echo 100%% %(name)-8s|%(host)12s|%(key_id).10s",
    "ssh-keyscan %(host)s | grep %(fingerprint)s",
  ];
  const answers = await askMandos(templates.map((template) => ({ op: "checker" as const, template, attrs: pythonAttrs })));
  const attrs = checkerAttributes(state);
  for (const [i, template] of templates.entries()) {
    const answer = answers[i]!;
    assert.ok("command" in answer, JSON.stringify(answer));
    assert.equal(expandChecker(template, attrs), answer.command, template);
  }
});

test("checkerAttributes leaves out dbus_object_path without D-Bus", () => {
  const { dbusObjectPath: _omit, ...noDbus } = state;
  const attrs = checkerAttributes(noDbus);
  assert.equal("dbus_object_path" in attrs, false);
  assert.throws(() => expandChecker("%(dbus_object_path)s", attrs), CheckerTemplateError);
  assert.equal(attrs.fingerprint, "");
});
