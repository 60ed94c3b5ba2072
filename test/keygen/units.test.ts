// Pure parts of mandos-keygen: option parsing, the clients.conf section
// layout, password line editing, backup names, TLS key type names.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseKeygenArgs } from "../../src/keygen/options.js";
import { formatClientSection, secretLines } from "../../src/keygen/section.js";
import { LineEditor, firstLines } from "../../src/keygen/passphrase.js";
import { backupName } from "../../src/keygen/keyfiles.js";
import { resolveTlsKeyType } from "../../src/keygen/tlskey.js";
import { armorComment } from "../../src/keygen/run.js";
import { UsageError } from "../../src/cli/args.js";

const defaults = { dir: "/etc/keys/mandos", name: () => "host.example" };

test("options: Debian's long and short forms, modes and defaults", () => {
  assert.deepEqual(parseKeygenArgs([], defaults), {
    mode: "keygen", dir: "/etc/keys/mandos", name: "host.example", expire: "0", tlsKeyType: "ed25519", force: false,
  });
  assert.deepEqual(
    parseKeygenArgs(["-d", "/k", "-t", "RSA", "-l", "3072", "-s", "RSA", "-L", "2048", "-n", "n", "-e", "a@b", "-c", "cm", "-x", "1y", "-T", "rsa", "-f"], defaults),
    { mode: "keygen", dir: "/k", name: "n", type: "RSA", length: "3072", subtype: "RSA", sublength: "2048", email: "a@b", comment: "cm", expire: "1y", tlsKeyType: "rsa", force: true },
  );
  assert.deepEqual(parseKeygenArgs(["--password", "--dir=/k"], defaults), { mode: "password", dir: "/k", name: "host.example", ssh: true });
  assert.deepEqual(parseKeygenArgs(["-F", "/pw", "-S", "--type", "DSA"], defaults), {
    mode: "password", dir: "/etc/keys/mandos", name: "host.example", ssh: false, passfile: "/pw",
  });
  assert.deepEqual(parseKeygenArgs(["-h"], defaults), { mode: "help" });
  assert.deepEqual(parseKeygenArgs(["--version"], defaults), { mode: "version" });
  let asked = false;
  parseKeygenArgs(["--name", "given"], { dir: "/k", name: () => ((asked = true), "x") });
  assert.equal(asked, false, "host name only looked up when needed");
  for (const bad of [["--nope"], ["stray"], ["--name"], ["--name", "a]b"], ["--type", ""], ["--passfile", ""]]) {
    assert.throws(() => parseKeygenArgs(bad, defaults), UsageError, bad.join(" "));
  }
});

test("section: Debian's layout, 64-character base64 lines", () => {
  const secret = Buffer.alloc(100, 0xab);
  const text = formatClientSection({ name: "c", keyId: "AB", fingerprint: "CD", secret });
  const b64 = secret.toString("base64");
  assert.equal(
    text,
    `[c]\nhost = c\nkey_id = AB\nfingerprint = CD\nsecret =\n    ${b64.slice(0, 64)}\n    ${b64.slice(64, 128)}\n    ${b64.slice(128)}\n`,
  );
  assert.equal(secretLines(Buffer.alloc(48)).length, 1, "exactly 64 characters: one line");
  const withSsh = formatClientSection({ name: "c", fingerprint: "CD", secret, ssh: { keytype: "ed25519", fingerprint: "ssh-ed25519 AAA" } });
  assert.doesNotMatch(withSsh, /key_id/);
  assert.match(withSsh, /\nchecker = ssh-keyscan -t ed25519 %%\(host\)s .*\nssh_fingerprint = ssh-ed25519 AAA\n$/);
  assert.equal(armorComment({ name: "n", comment: "c", email: "e@x" }), "Mandos client key for n (c) <e@x>");
  assert.equal(armorComment({ name: "n" }), "Mandos client key for n");
});

test("terminal line editing: backspace by UTF-8 character, kill line, Ctrl-C, Ctrl-D", () => {
  const e = new LineEditor();
  assert.equal(e.feed(Buffer.from("abé")), "more");
  assert.equal(e.feed(Buffer.from([0x7f])), "more"); // removes both bytes of é
  assert.equal(e.feed(Buffer.from("c\r")), "done");
  assert.equal(e.take().toString(), "abc");
  const k = new LineEditor();
  k.feed(Buffer.from("wrong\x15right"));
  assert.equal(k.feed(Buffer.from("\n")), "done");
  assert.equal(k.take().toString(), "right");
  assert.equal(new LineEditor().feed(Buffer.from("x\x03")), "interrupt");
  assert.equal(new LineEditor().feed(Buffer.from([0x04])), "eof");
  const d = new LineEditor();
  assert.equal(d.feed(Buffer.from("a\x04")), "more", "Ctrl-D on a non-empty line is ignored");
});

test("piped password lines", () => {
  assert.deepEqual(firstLines(Buffer.from("a\nb\nc"), 2)?.map(String), ["a", "b"]);
  assert.equal(firstLines(Buffer.from("a\nb"), 2), undefined, "second line not complete yet");
  assert.deepEqual(firstLines(Buffer.from("a\nb"), 2, true)?.map(String), ["a", "b"], "at end of input");
  assert.equal(firstLines(Buffer.from("a\n"), 2, true), undefined);
});

test("numbered backups and TLS key type names", () => {
  assert.equal(backupName("/k/seckey.txt", ["seckey.txt", "pubkey.txt"]), "/k/seckey.txt.~1~");
  assert.equal(backupName("/k/seckey.txt", ["seckey.txt.~1~", "seckey.txt.~7~", "seckey.txt.~x~"]), "/k/seckey.txt.~8~");
  assert.equal(resolveTlsKeyType("ED25519"), "ed25519");
  assert.equal(resolveTlsKeyType("ecc"), "ecdsa");
  assert.throws(() => resolveTlsKeyType("x25519"), /not sign/);
  assert.throws(() => resolveTlsKeyType("rsa4096"), /unsupported TLS key type/);
});
