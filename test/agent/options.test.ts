// password-agent's command line, checked against Mandos 1.8's conventions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { UsageError } from "../../src/cli/args.js";
import {
  DEFAULT_AGENT_DIRECTORY,
  DEFAULT_HELPER_DIRECTORY,
  DEFAULT_MANDOS_CLIENT,
  parseAgentArguments,
  type AgentOptions,
} from "../../src/agent/options.js";
import { BIN } from "../helpers/index.js";

function opts(argv: string[]): AgentOptions {
  const r = parseAgentArguments(argv);
  assert.equal(r.kind, "run");
  return (r as { kind: "run"; options: AgentOptions }).options;
}

test("defaults", () => {
  assert.deepEqual(opts([]), {
    agentDirectory: DEFAULT_AGENT_DIRECTORY,
    helperDirectory: DEFAULT_HELPER_DIRECTORY,
    user: 65534,
    group: 65534,
    idPrefixes: ["cryptsetup:"],
    client: [DEFAULT_MANDOS_CLIENT],
    prefetch: false,
    holdMs: 120_000,
  });
  assert.equal(DEFAULT_AGENT_DIRECTORY, "/run/systemd/ask-password");
  assert.equal(DEFAULT_HELPER_DIRECTORY, "/lib/mandos/plugin-helpers");
});

test("--prefetch and --hold-time, bounded", () => {
  assert.deepEqual([opts(["--prefetch"]).prefetch, opts(["--prefetch"]).holdMs], [true, 120_000]);
  assert.equal(opts(["--hold-time", "5", "--", "/c", "--hold-time=9"]).holdMs, 5000);
  assert.deepEqual(opts(["--hold-time=5", "/c", "--hold-time=9"]).client, ["/c", "--hold-time=9"]);
  for (const bad of ["0", "-1", "1.5", "86401", "", "10s"]) {
    assert.throws(() => parseAgentArguments([`--hold-time=${bad}`]), (e: unknown) => e instanceof UsageError && /^--hold-time: /.test(e.message), bad);
  }
});

test("long, short and separate-value forms", () => {
  const o = opts(["--agent-directory=/a", "--helper-directory", "/h", "-u", "10", "-g20", "--id-prefix=zfs:", "--id-prefix", "cryptsetup:"]);
  assert.equal(o.agentDirectory, "/a");
  assert.equal(o.helperDirectory, "/h");
  assert.equal(o.user, 10);
  assert.equal(o.group, 20);
  assert.deepEqual(o.idPrefixes, ["zfs:", "cryptsetup:"]);
  assert.equal(opts(["-d", "/b"]).agentDirectory, "/b");
});

test("the client and its options: after -- or from the first non-option", () => {
  assert.deepEqual(opts(["--user=5", "--", "/c", "--user=7", "-d", "x"]).client, ["/c", "--user=7", "-d", "x"]);
  assert.equal(opts(["--user=5", "--", "/c", "--user=7"]).user, 5);
  assert.deepEqual(opts(["/usr/local/sbin/alternate", "--pubkey=k"]).client, ["/usr/local/sbin/alternate", "--pubkey=k"]);
  // A value given as the next word is not mistaken for the client.
  assert.deepEqual(opts(["--user", "5", "/c"]).client, ["/c"]);
  assert.deepEqual(opts(["--"]).client, [DEFAULT_MANDOS_CLIENT]);
});

test("help, usage and version", () => {
  assert.deepEqual(parseAgentArguments(["--help"]), { kind: "help" });
  assert.deepEqual(parseAgentArguments(["-?"]), { kind: "help" });
  assert.deepEqual(parseAgentArguments(["--usage"]), { kind: "usage" });
  assert.deepEqual(parseAgentArguments(["-V"]), { kind: "version" });
  assert.deepEqual(parseAgentArguments(["--version"]), { kind: "version" });
});

test("bad arguments are usage errors with one-line messages", () => {
  for (const argv of [["--bogus"], ["--user=abc"], ["--group=-5"], ["--user=4294967295"], ["--user="], ["--agent-directory="], ["-u"]]) {
    assert.throws(() => parseAgentArguments(argv), (e: unknown) => e instanceof UsageError && !e.message.includes("\n"), argv.join(" "));
  }
  // 0 is accepted (documented): our client is no set-user-ID program.
  assert.equal(opts(["--user=0", "--group=0"]).user, 0);
});

test("bin/password-agent exits 64 on a usage error and prints help", () => {
  const agent = join(BIN, "password-agent");
  const bad = spawnSync(process.execPath, [agent, "--bogus"], { encoding: "utf8", timeout: 10_000 });
  assert.equal(bad.status, 64);
  assert.match(bad.stderr, /^password-agent: .*bogus.*\nTry 'password-agent --help'/);
  const help = spawnSync(process.execPath, [agent, "--help"], { encoding: "utf8", timeout: 10_000 });
  assert.equal(help.status, 0);
  for (const o of ["--agent-directory", "--helper-directory", "--user", "--group", "--version"]) assert.ok(help.stdout.includes(o), o);
  const version = spawnSync(process.execPath, [agent, "--version"], { encoding: "utf8", timeout: 10_000 });
  assert.match(version.stdout, /^password-agent \S+\n$/);
});

test("a missing agent directory exits 72 (EX_OSFILE) as Mandos 1.8", () => {
  const r = spawnSync(process.execPath, [join(BIN, "password-agent"), "--agent-directory=/nonexistent/dir", "--", "/bin/true"], {
    encoding: "utf8",
    timeout: 10_000,
  });
  assert.equal(r.status, 72);
  assert.match(r.stderr, /^password-agent: error: cannot watch agent directory \/nonexistent\/dir: .*ENOENT/);
  assert.equal(r.stderr.trim().split("\n").length, 1);
});
