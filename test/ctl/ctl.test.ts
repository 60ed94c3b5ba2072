// Our mandos-ctl against Debian's: the same usage errors for the same
// command lines, and the same table and JSON for the same client data
// (Debian's formatting code is loaded as a Python module and fed the data).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { BIN, requires, run } from "../helpers/index.js";
import { ctl } from "../helpers/server.js";
import { DEBIAN_CTL, debianPeer, debianPeerMissing } from "../helpers/debian-peer.js";
import { formatJson, formatTable, millisecondsToString, type ClientProperties } from "../../src/ctl/format.js";
import { checkCtlArgs, commandsToRun, parseCtlArgs, parseTime, CtlUsageError } from "../../src/ctl/options.js";

const debianMissing = requires({ files: ["/usr/bin/python3"] }) || debianPeerMissing(DEBIAN_CTL);
const env = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: "unix:path=/nonexistent/bus" };

test("usage errors are the same as Debian's mandos-ctl, exit status 2", { skip: debianMissing, timeout: 120_000 }, async () => {
  const cases = [
    ["-e"],
    ["--all"],
    ["-v", "-e", "foo"],
    ["-j", "-v"],
    ["-j", "-e", "foo"],
    ["-V", "a", "b"],
    ["-r", "-e", "foo"],
    ["-e", "-d", "foo"],
    ["--start-checker", "--stop-checker", "foo"],
    ["--approve-by-default", "--deny-by-default", "foo"],
    ["-A", "-D", "foo"],
    ["-t"],
    ["--bogus"],
    ["-s", "/nonexistent/secret", "foo"],
  ];
  for (const args of cases) {
    const d = await ctl("debian", args, env);
    const o = await ctl("ours", args, env);
    assert.equal(o.code, 2, `ours: ${args.join(" ")}: ${o.stderr}`);
    assert.equal(d.code, 2, `Debian's: ${args.join(" ")}`);
    const last = (s: string) => s.trim().split("\n").at(-1)!;
    if (args[0] === "-s") {
      // Python's message names its own exception; ours names errno.
      assert.match(last(o.stderr), /^mandos-ctl: error: argument -s\/--secret: can't open '\/nonexistent\/secret'/);
      continue;
    }
    assert.equal(last(o.stderr), last(d.stderr), `error for: ${args.join(" ")}`);
    assert.equal(o.stderr, d.stderr, `whole stderr for: ${args.join(" ")}`);
  }
});

test("connection failure is one line, exit status 1", { timeout: 20_000 }, async () => {
  const o = await run(process.execPath, [join(BIN, "mandos-ctl")], { env, timeoutMs: 15_000 });
  assert.equal(o.code, 1);
  assert.match(o.stderr, /^Could not connect to Mandos server: .+\n$/);
});

/** Debian's PrintTable and DumpJSON on the given clients (properties as JSON). */
async function debianFormat(clients: Record<string, unknown>[], mode: "table" | "verbose" | "json"): Promise<string> {
  const script = `
import importlib.machinery, importlib.util, json, sys
loader = importlib.machinery.SourceFileLoader("mandos_ctl", ${JSON.stringify(debianPeer(DEBIAN_CTL))})
spec = importlib.util.spec_from_loader("mandos_ctl", loader)
m = importlib.util.module_from_spec(spec)
loader.exec_module(m)
clients = {"/clients/%d" % i: c for i, c in enumerate(json.loads(sys.stdin.read()))}
mode = ${JSON.stringify(mode)}
if mode == "json":
    m.command.DumpJSON().run(clients)
else:
    m.command.PrintTable(verbose=(mode == "verbose")).run(clients)
`;
  const r = await run("/usr/bin/python3", ["-c", script], { input: JSON.stringify(clients), timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.toString();
}

function sample(name: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    Name: name,
    Enabled: true,
    Timeout: 300_000,
    LastCheckedOK: "",
    Created: "2024-01-02T03:04:05.678000",
    Interval: 120_000,
    Host: "host.example",
    KeyID: "A".repeat(64),
    Fingerprint: "",
    CheckerRunning: false,
    LastEnabled: "2024-01-02T03:04:05.678000",
    ApprovalPending: false,
    ApprovedByDefault: true,
    LastApprovalRequest: "",
    ApprovalDelay: 0,
    ApprovalDuration: 1000,
    Checker: "fping -q -- %(host)s",
    ExtendedTimeout: 900_000,
    Expires: "2024-01-02T03:09:05.678000",
    LastCheckerStatus: -2,
    ...over,
  };
}

test("table and JSON output are byte for byte Debian's, odd names and values included", { skip: debianMissing, timeout: 60_000 }, async () => {
  const clients = [
    sample("foo.example"),
    sample("bär ünïcode ✓", { Enabled: false, Expires: "", Timeout: 90_061_999, Host: 'quo"te\\back\tslash' }),
    sample("123", { Interval: 86_400_000 * 400, LastCheckerStatus: 3, ApprovalDelay: 1500, Checker: "a\u0001b\u007f" }),
    sample("𝔘nicode astral", { KeyID: "" }),
  ];
  const ours = clients.map((c) => new Map(Object.entries(c)) as ClientProperties);
  assert.equal(formatTable(ours, false) + "\n", await debianFormat(clients, "table"));
  assert.equal(formatTable(ours, true) + "\n", await debianFormat(clients, "verbose"));
  assert.equal(formatJson(ours) + "\n", await debianFormat(clients, "json"));
  assert.equal(formatJson([]) + "\n", await debianFormat([], "json"));
});

test("durations print as mandos-ctl prints them", () => {
  assert.equal(millisecondsToString(0), "00:00:00");
  assert.equal(millisecondsToString(999), "00:00:00");
  assert.equal(millisecondsToString(300_000), "00:05:00");
  assert.equal(millisecondsToString(86_400_000), "1T00:00:00");
  assert.equal(millisecondsToString(90_061_000), "1T01:01:01");
});

test("TIME arguments: RFC 3339, else the pre-1.6.1 form with a warning", () => {
  const warnings: string[] = [];
  const warn = (m: string) => void warnings.push(m);
  assert.equal(parseTime("PT5M", warn), 300_000);
  assert.equal(parseTime("P1W", warn), 604_800_000);
  assert.equal(warnings.length, 0);
  assert.equal(parseTime("5m 30s", warn), 330_000);
  assert.equal(parseTime("2dxy7zz11y3m5m", warn), 2 * 86_400_000 + 480_000 + 18);
  assert.equal(parseTime("PT52W", warn), 52);
  assert.equal(warnings.length, 3);
  assert.equal(warnings[0], 'Invalid RFC 3339 duration: "5m 30s" - Parsing as pre-1.6.1 interval instead');
});

test("commands keep command-line order; --deny moves before --remove", () => {
  const a = parseCtlArgs(["-t", "PT1M", "--enable", "-H", "h", "foo"]);
  checkCtlArgs(a);
  assert.deepEqual(
    commandsToRun(a).map((c) => (c.kind === "set" ? c.property : c.kind)),
    ["Timeout", "Enabled", "Host"],
  );
  const r = parseCtlArgs(["--remove", "--deny", "--all"]);
  checkCtlArgs(r);
  assert.deepEqual(commandsToRun(r).map((c) => c.kind), ["approve", "remove"]);
  assert.deepEqual(commandsToRun(parseCtlArgs(["-v"])), [{ kind: "table", verbose: true }]);
  assert.throws(() => checkCtlArgs(parseCtlArgs(["--remove", "--approve", "x"])), CtlUsageError);
  const s = parseCtlArgs(["-tPT2M", "--interval=PT3M", "x"]);
  assert.deepEqual(s.commands.map((c) => (c.kind === "set" ? c.value : null)), [120_000, 180_000]);
});
