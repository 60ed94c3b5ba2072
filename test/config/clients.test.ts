// clients.conf: Debian's own files, a real mandos-keygen section, secfile
// names, Mandos's defaults, and bad clients refused one by one while the
// others load. Valid files are also read by Debian's Mandos (Python) and the
// results compared.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, createPublicKey } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { parseClientsConf, loadClientsConf, type ClientConfig, type ClientsConfResult } from "../../src/config/clients.js";
import { requires, run, tempDir } from "../helpers/index.js";
import { askMandos, oracleSkip } from "../helpers/config.js";
import { DEBIAN_KEYGEN, debianPasswordSection, debianPeerMissing, makeDebianKeys } from "../helpers/debian-peer.js";

const DEBIAN_CLIENTS = "/etc/mandos/clients.conf";
const onlyKeyAndSecret = "key_id = " + "ab".repeat(32) + "\nsecret = c2VjcmV0\n";
// Debian's Mandos 1.8.16 fails with KeyError on a client without a fingerprint
// (its man page says key_id alone is enough, and so do we), so the files it is
// asked to read give every client one.
const withFingerprints = (text: string) => text.replace(/^(key_id.*\n)/gim, `$1fingerprint = ${"ef".repeat(20)}\n`);

/** A client as Debian's Mandos reports it through the oracle. */
function asMandos(c: ClientConfig): Record<string, string | number | boolean> {
  return {
    keyId: c.keyId ?? "",
    fingerprint: c.fingerprint ?? "",
    secret: c.secret.toString("base64"),
    host: c.host,
    timeoutMs: c.timeoutMs,
    intervalMs: c.intervalMs,
    extendedTimeoutMs: c.extendedTimeoutMs,
    approvalDelayMs: c.approvalDelayMs,
    approvalDurationMs: c.approvalDurationMs,
    approvedByDefault: c.approvedByDefault,
    enabled: c.enabled,
    checker: c.checker,
  };
}

async function sameAsMandos(text: string, result: ClientsConfResult, opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const [answer] = await askMandos([{ op: "clients", text }], opts);
  assert.ok(answer && "clients" in answer, `Mandos refused the file: ${JSON.stringify(answer)}`);
  assert.deepEqual(result.errors, []);
  assert.deepEqual(Object.fromEntries(result.clients.map((c) => [c.name, asMandos(c)])), answer.clients);
}

test("Debian's installed clients.conf (all commented out) gives no clients and no errors", { skip: requires({ files: [DEBIAN_CLIENTS] }) }, () => {
  const result = loadClientsConf(DEBIAN_CLIENTS);
  assert.deepEqual(result, { clients: [], errors: [] });
});

test("Debian's example clients, uncommented, load with Mandos's values", { skip: requires({ files: [DEBIAN_CLIENTS] }) }, async (t) => {
  const text = readFileSync(DEBIAN_CLIENTS, "utf8").replace(/^;/gm, "");
  const result = parseClientsConf(text, "clients.conf");
  // "bar" reads its secret from /etc/keys/mandos/bar-secret.bin, which does not exist.
  assert.equal(result.errors.length, 1);
  assert.match(result.errors[0]!, /^clients\.conf:\d+: \[bar\] secfile: cannot read "\/etc\/keys\/mandos\/bar-secret\.bin": no such file or directory$/);
  const lineNo = Number(/:(\d+):/.exec(result.errors[0]!)![1]);
  assert.match(text.split("\n")[lineNo - 1]!, /^secfile = /);
  assert.equal(result.clients.length, 1);
  const foo = result.clients[0]!;
  assert.equal(foo.name, "foo");
  assert.equal(foo.keyId, "F33FCBED11ED5E03073F6A55B86FFE92AF0E24C045FB6E3B40547B3DC0C030ED");
  assert.equal(foo.fingerprint, "778827225BA7DE539C5A7CFA59CFF7CDBD9A5920");
  assert.equal(foo.host, "foo.example.org");
  assert.equal(foo.secret.length, 620);
  assert.deepEqual(foo.secret.subarray(0, 3), Buffer.from([0x85, 0x02, 0x0e])); // an OpenPGP PKESK packet
  assert.equal(foo.checker, "fping -q -- %(host)s");
  assert.deepEqual(
    [foo.timeoutMs, foo.intervalMs, foo.extendedTimeoutMs, foo.approvalDelayMs, foo.approvalDurationMs, foo.approvedByDefault, foo.enabled],
    [300_000, 120_000, 900_000, 0, 1000, true, true],
  );

  await t.test("with bar's secret file present, bar loads too, exactly as Mandos reads it", { skip: oracleSkip }, async () => {
    using dir = tempDir();
    const secfile = join(dir.path, "bar-secret.bin");
    writeFileSync(secfile, Buffer.from([0, 1, 2, 255, 10, 13]), { mode: 0o600 });
    const withFile = text.replace("/etc/keys/mandos/bar-secret.bin", secfile);
    const both = parseClientsConf(withFile, "clients.conf");
    const bar = both.clients.find((c) => c.name === "bar")!;
    assert.equal(bar.keyId, "F33FCBED11ED5E03073F6A55B86FFE92AF0E24C045FB6E3B40547B3DC0C030ED");
    assert.equal(bar.fingerprint, "3E393AEAEFB84C7E89E2F547B3A107558FCA3A27");
    assert.deepEqual(bar.secret, Buffer.from([0, 1, 2, 255, 10, 13]));
    assert.equal(bar.host, "192.0.2.3");
    assert.equal(bar.intervalMs, 60_000);
    assert.equal(bar.approvedByDefault, false);
    assert.equal(bar.approvalDelayMs, 30_000);
    await sameAsMandos(withFile, both);
  });
});

test("a section printed by Debian's mandos-keygen --passfile", { skip: requires({ commands: ["gpg"] }) || debianPeerMissing(DEBIAN_KEYGEN), timeout: 120_000 }, async () => {
  using dir = tempDir();
  const keys = join(dir.path, "keys");
  mkdirSync(keys);
  await makeDebianKeys(keys);
  const text = await debianPasswordSection(keys, "hunter2", "testclient");
  assert.match(text, /^secret =\n {4}\S/m); // the secret spans continuation lines

  const result = parseClientsConf(text, "keygen-output");
  assert.deepEqual(result.errors, []);
  assert.equal(result.clients.length, 1);
  const client = result.clients[0]!;
  assert.equal(client.name, "testclient");
  assert.equal(client.host, "testclient");
  // key_id is the SHA-256 of the TLS public key's DER SubjectPublicKeyInfo.
  const spki = createPublicKey(readFileSync(join(keys, "tls-pubkey.pem"))).export({ type: "spki", format: "der" });
  assert.equal(client.keyId, createHash("sha256").update(spki).digest("hex").toUpperCase());
  assert.match(client.fingerprint ?? "", /^[0-9A-F]{40}$/);

  // The secret is byte-exact: gpg decrypts it with the client's key to the password.
  const home = join(dir.path, "gnupg");
  mkdirSync(home);
  chmodSync(home, 0o700);
  try {
    // Both read standard input (run() always writes to it).
    const imported = await run("gpg", ["--homedir", home, "--batch", "--quiet", "--import"], {
      input: readFileSync(join(keys, "seckey.txt")),
      timeoutMs: 30_000,
    });
    assert.equal(imported.code, 0, imported.stderr);
    const decrypted = await run("gpg", ["--homedir", home, "--batch", "--quiet", "--decrypt"], { input: client.secret, timeoutMs: 30_000 });
    assert.equal(decrypted.code, 0, decrypted.stderr);
    assert.equal(decrypted.stdout.toString(), "hunter2");
  } finally {
    // gpg started an agent for this home; stop it.
    spawnSync("gpgconf", ["--homedir", home, "--kill", "all"], { timeout: 10_000 });
  }

  if (!oracleSkip) await sameAsMandos(text, result);
});

test("Mandos's defaults for a client that sets only key_id and secret", () => {
  const { clients, errors } = parseClientsConf(`[c]\n${onlyKeyAndSecret}`, "f");
  assert.deepEqual(errors, []);
  assert.deepEqual(clients, [
    {
      name: "c",
      keyId: "AB".repeat(32),
      fingerprint: null,
      secret: Buffer.from("secret"),
      host: "",
      timeoutMs: 300_000,
      intervalMs: 120_000,
      extendedTimeoutMs: 900_000,
      approvalDelayMs: 0,
      approvalDurationMs: 1000,
      approvedByDefault: true,
      enabled: true,
      checker: "fping -q -- %(host)s",
    },
  ]);
});

test("[DEFAULT] values reach every client, which may override them; interpolation at load time", () => {
  const text = [
    "[DEFAULT]",
    "timeout = 10m",
    "Interval: PT1M",
    "checker = ssh-keyscan -p %(sshport)s %%(host)s | grep -q %(keytype)s",
    "sshport = 22",
    "keytype = ed25519",
    "approved_by_default = no",
    "[a]",
    "key_id = " + "0a".repeat(32),
    "secret = YQ==",
    "[b]",
    "fingerprint = 3e39 3aea efb8 4c7e 89e2  f547 b3a1 0755 8fca 3a27",
    "secret: Yg==",
    "sshport = 2222",
    "timeout = P1D",
    "ENABLED = Off",
    "host = %(sshport)s.example",
  ].join("\n");
  const { clients, errors } = parseClientsConf(text, "f");
  assert.deepEqual(errors, []);
  const [a, b] = clients;
  assert.equal(a!.timeoutMs, 600_000);
  assert.equal(a!.intervalMs, 60_000);
  assert.equal(a!.approvedByDefault, false);
  assert.equal(a!.checker, "ssh-keyscan -p 22 %(host)s | grep -q ed25519");
  assert.equal(b!.checker, "ssh-keyscan -p 2222 %(host)s | grep -q ed25519");
  assert.equal(b!.timeoutMs, 86_400_000);
  assert.equal(b!.enabled, false);
  assert.equal(b!.host, "2222.example");
  assert.equal(b!.keyId, null);
  assert.equal(b!.fingerprint, "3E393AEAEFB84C7E89E2F547B3A107558FCA3A27");
});

test("valid files read the same as Debian's Mandos reads them", { skip: oracleSkip }, async () => {
  const files = [
    `[c]\n${onlyKeyAndSecret}`,
    "[DEFAULT]\ntimeout = 5m 30s\nchecker = echo %%%%(x)s %%(name)s\n[x]\nfingerprint = aa bb cc dd ee ff 00 11 22 33 44 55 66 77 88 99 aa bb cc dd\nsecret =\n  QUJD\n\n  REVG\nhost = h\n",
    "[DEFAULT]\nhost = %(name2)s.lan\nname2 = box\n[one]\nkey_id = " + "12".repeat(32) + "\nsecret = AAEC\napproval_duration = 2w\nextended_timeout = P1M\n[two]\nKey_ID = " + "34".repeat(32) + "\nsecret = AAEC\nname2 = other\nenabled = 0\n",
  ].map(withFingerprints);
  for (const text of files) await sameAsMandos(text, parseClientsConf(text, "f"));
});

test("secfile: relative names, ~, ~user, $VAR and ${VAR}, as Python expands them", { skip: oracleSkip }, async () => {
  using dir = tempDir();
  mkdirSync(join(dir.path, "home"));
  mkdirSync(join(dir.path, "sub"));
  writeFileSync(join(dir.path, "home", "s1"), "one");
  writeFileSync(join(dir.path, "sub", "s2"), "two");
  writeFileSync(join(dir.path, "s3"), "three");
  const env = { ...process.env, HOME: join(dir.path, "home") + "/", SECRETS: join(dir.path, "sub") };
  const key = (n: number) => `key_id = ${String(n).repeat(64)}\n`;
  const text = [
    `[home]\n${key(1)}secfile = ~/s1`,
    `[var]\n${key(2)}secfile = $SECRETS/s2`,
    `[braces]\n${key(3)}secfile = \${SECRETS}/s2`,
    `[relative]\n${key(4)}secfile = s3`,
    `[rootdir]\n${key(5)}secfile = ~root/../${dir.path.slice(1)}/s3`,
  ].join("\n");
  const result = parseClientsConf(text, "f", { env, cwd: dir.path });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(
    result.clients.map((c) => [c.name, c.secret.toString()]),
    [["home", "one"], ["var", "two"], ["braces", "two"], ["relative", "three"], ["rootdir", "three"]],
  );
  const forMandos = withFingerprints(text + "\n");
  await sameAsMandos(forMandos, parseClientsConf(forMandos, "f", { env, cwd: dir.path }), { env, cwd: dir.path });
});

test("secfile: unset variables and unknown users stay as written; homeDir and readFile can be supplied", () => {
  const seen: string[] = [];
  const opts = {
    env: { HOME: "/h" },
    cwd: "/work",
    homeDir: (user: string | null) => (user === "alice" ? "/home/alice/" : null),
    readFile: (p: string) => {
      seen.push(p);
      return Buffer.from("x");
    },
  };
  const text = ["~alice/k", "~nobody-here/k", "$UNSET/k", "${UNSET}/k", "~", "rel/k", "$HOME$HOME"]
    .map((secfile, i) => `[c${i}]\nkey_id = ${String(i).repeat(64)}\nsecfile = ${secfile}`)
    .join("\n");
  const result = parseClientsConf(text, "f", opts);
  assert.deepEqual(result.errors, []);
  assert.deepEqual(seen, ["/home/alice/k", "/work/~nobody-here/k", "/work/$UNSET/k", "/work/${UNSET}/k", "/h", "/work/rel/k", "/h/h"]);
});

/** Three good clients around one bad one: the bad one is refused, the others load. */
function withBadClient(bad: string, fileName = "clients.conf"): ClientsConfResult {
  const good = (name: string, n: number) => `[${name}]\nkey_id = ${String(n).repeat(64)}\nsecret = c2VjcmV0\n`;
  return parseClientsConf(`[DEFAULT]\n${good("first", 1)}${bad}\n${good("last", 2)}`, fileName);
}

test("bad clients are refused with one line naming file, line, section and key; others still load", () => {
  const key = "key_id = " + "cd".repeat(32);
  const cases: [string, string[]][] = [
    [`[bad]\n${key}\nsecret = c2VjcmV0\ntimeout = 5x`, ['clients.conf:8: [bad] timeout: not a duration: "5x"']],
    [`[bad]\n${key}\nsecret = c2VjcmV0\ninterval = PT5.5S`, ['clients.conf:8: [bad] interval: not a duration: "PT5.5S"']],
    [`[bad]\n${key}\nsecret = c2Vj!mV0`, ["clients.conf:7: [bad] secret: not valid base64"]],
    [`[bad]\n${key}\nsecret = c2VjcmV`, ["clients.conf:7: [bad] secret: not valid base64"]],
    [`[bad]\n${key}\nsecret =`, ["clients.conf:7: [bad] secret: is empty"]],
    [`[bad]\n${key}\nsecfile = /nonexistent/secret`, ['clients.conf:7: [bad] secfile: cannot read "/nonexistent/secret": no such file or directory']],
    [`[bad]\n${key}\nsecfile = /`, ['clients.conf:7: [bad] secfile: cannot read "/": is a directory']],
    [`[bad]\n${key}`, ["clients.conf:5: [bad]: needs a secret (or a secfile)"]],
    [`[bad]\nsecret = c2VjcmV0\nhost = h`, ["clients.conf:5: [bad]: needs a key_id (or a fingerprint)"]],
    [`[bad]\nkey_id =\nfingerprint =\nsecret = c2VjcmV0`, ["clients.conf:5: [bad]: needs a key_id (or a fingerprint)"]],
    [`[bad]\nkey_id = xyz\nsecret = c2VjcmV0`, ['clients.conf:6: [bad] key_id: must be 64 hexadecimal digits (spaces allowed), not "xyz"']],
    [`[bad]\nfingerprint = abcd\nsecret = c2VjcmV0`, ['clients.conf:6: [bad] fingerprint: must be 40 hexadecimal digits (spaces allowed), not "abcd"']],
    [`[bad]\n${key}\nsecret = c2VjcmV0\nenabled = maybe`, ['clients.conf:8: [bad] enabled: not a boolean: "maybe" (use 1/yes/true/on or 0/no/false/off)']],
    [`[bad]\n${key}\nsecret = c2VjcmV0\nchecker = fping %%(hots)s`, ["clients.conf:8: [bad] checker: checker refers to %(hots)s, which is not a client attribute"]],
    [`[bad]\n${key}\nsecret = c2VjcmV0\nunused = 100%`, ['clients.conf:8: [bad] unused: a "%" must be followed by "%" or "("']],
    [`[bad]\n${key}\nsecret = c2VjcmV0\nhost = %(nosuch)s`, ['clients.conf:8: [bad] host: %(nosuch)s refers to no option named "nosuch"']],
    [`[bad]\n${key}\nsecret = c2VjcmV0\ntimeout = 1m\ntimeout = 2m`, ["clients.conf:9: [bad] timeout: set again (first at line 8)"]],
    [`[bad]\n${key}\nsecret = c2VjcmV0\njust words`, ['clients.conf:8: [bad]: not a section header, comment or "key = value" line']],
    [`[first]\nhost = again`, ["clients.conf:5: [first]: section [first] appears again (first at line 2)"]],
  ];
  for (const [bad, expected] of cases) {
    const result = withBadClient(bad);
    assert.deepEqual(
      result.clients.map((c) => c.name).filter((n) => n !== "bad"),
      bad.startsWith("[first]") ? ["last"] : ["first", "last"],
      bad,
    );
    assert.equal(result.clients.some((c) => c.name === "bad"), false, bad);
    assert.equal(result.errors.length, expected.length, `${bad}\n${result.errors.join("\n")}`);
    for (const [i, prefix] of expected.entries()) {
      assert.ok(result.errors[i]!.startsWith(prefix), `${result.errors[i]}\n  should start with\n${prefix}`);
      assert.doesNotMatch(result.errors[i]!, /\n/);
    }
  }
});

test("a checker written with %(host)s (not %%(host)s) is expanded at load time, as in Mandos", () => {
  const { clients } = parseClientsConf(`[c]\n${onlyKeyAndSecret}host = h1\nchecker = fping %(host)s %%(host)s`, "f");
  assert.equal(clients[0]!.checker, "fping h1 %(host)s");
});

test("several problems in one client are each reported", () => {
  const result = withBadClient("[bad]\nkey_id = zz\ntimeout = never\nenabled = perhaps");
  assert.equal(result.errors.length, 4);
  assert.match(result.errors.join("\n"), /key_id: must be/);
  assert.match(result.errors.join("\n"), /timeout: not a duration/);
  assert.match(result.errors.join("\n"), /enabled: not a boolean/);
  assert.match(result.errors.join("\n"), /needs a secret/);
  assert.deepEqual(result.clients.map((c) => c.name), ["first", "last"]);
});

test("text before the first section header is reported; the clients still load", () => {
  const key = (n: number) => `key_id = ${String(n).repeat(64)}\n`;
  const result = parseClientsConf(`timeout = PT1M\n\n[a]\n${key(1)}secret = YQ==\n[b]\n${key(2)}secret = Yg==\n`, "c.conf");
  assert.deepEqual(result.errors, ["c.conf:1: text before the first section header (the file must start with a line like [DEFAULT])"]);
  assert.deepEqual(result.clients.map((c) => [c.name, c.timeoutMs]), [["a", 300_000], ["b", 300_000]]);
});

test("a bad value in [DEFAULT] refuses every client that inherits it, saying where it came from", () => {
  const result = parseClientsConf(
    "[DEFAULT]\ninterval = often\n[a]\nkey_id = " + "1".repeat(64) + "\nsecret = YQ==\n[b]\nkey_id = " + "2".repeat(64) + "\nsecret = YQ==\ninterval = PT1M\n",
    "c.conf",
  );
  assert.deepEqual(result.errors, ['c.conf:2: [a] interval (from [DEFAULT]): not a duration: "often" (use an RFC 3339 duration like "PT5M" or "P1DT2H", or e.g. "5m 30s")']);
  assert.deepEqual(result.clients.map((c) => c.name), ["b"]);
});

test("a malformed [DEFAULT] refuses every client", () => {
  const result = parseClientsConf("[DEFAULT]\ntimeout = PT1M\ntimeout = PT2M\n[a]\nkey_id = " + "1".repeat(64) + "\nsecret = YQ==\n", "c.conf");
  assert.deepEqual(result.errors, [
    "c.conf:3: [DEFAULT] timeout: set again (first at line 2)",
    "c.conf:4: [a]: not loaded, because [DEFAULT] has errors",
  ]);
  assert.deepEqual(result.clients, []);
});

test("error messages never contain the secret", () => {
  const secret = "U0VDUkVUU0VDUkVUU0VDUkVU"; // "SECRETSECRETSECRET"
  const texts = [
    `[a]\nsecret = ${secret}%\nkey_id = x`,
    `[a]\nsecret = ${secret}%(${secret})s\n`,
    `[a]\nsecret = ${secret}!\n`,
    `[a]\nsecret =\n  ${secret}\n  ${secret}=\ntimeout = bad\n`,
    `[a]\nsecret = ${secret}\nsecret = ${secret}\n`,
  ];
  for (const text of texts) {
    const { clients, errors } = parseClientsConf(text, "f");
    assert.deepEqual(clients, []);
    assert.ok(errors.length > 0);
    for (const e of errors) {
      assert.ok(!e.includes(secret.slice(0, 8)) && !e.includes("SECRET"), e);
    }
  }
});

test("loadClientsConf: reads a file; an unreadable one gives no clients and one error", () => {
  using dir = tempDir();
  const path = join(dir.path, "clients.conf");
  writeFileSync(path, `[c]\n${onlyKeyAndSecret}`);
  const loaded = loadClientsConf(path);
  assert.deepEqual(loaded.errors, []);
  assert.equal(loaded.clients[0]!.name, "c");
  assert.deepEqual(loadClientsConf(join(dir.path, "missing.conf")), {
    clients: [],
    errors: [`${join(dir.path, "missing.conf")}: cannot read: no such file or directory`],
  });
  writeFileSync(path, Buffer.from([0x5b, 0x63, 0x5d, 0x0a, 0xff, 0xfe]));
  assert.deepEqual(loadClientsConf(path), { clients: [], errors: [`${path}: cannot read: not valid UTF-8 text`] });
  // A loaded client's error names the real path.
  writeFileSync(path, "[c]\nkey_id = 1\nsecret = YQ==\n");
  assert.match(loadClientsConf(path).errors[0]!, new RegExp(`^${path.replaceAll("/", "\\/")}:2: \\[c\\] key_id: `));
});
