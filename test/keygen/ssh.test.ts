// The SSH checker lines of mandos-keygen's clients.conf section, against
// Debian's keygen, with a real sshd. The sshd runs on port 22 (which
// ssh-keyscan localhost asks, as Debian's keygen does) inside network,
// mount and PID namespaces of the test's own, so it never touches the
// host's network, and dies with the namespace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, requires, run, tempDir } from "../helpers/index.js";
import { DEBIAN_KEYGEN, debianPeer, debianPeerMissing, sectionSecret, sectionValue } from "../helpers/debian-peer.js";
import { decryptSecret, loadDecryptionKeys } from "../../src/pgp/index.js";
import { findSshHostKey, parseKeyscan } from "../../src/keygen/ssh.js";
import { sshChecker } from "../../src/keygen/section.js";

const SKIP =
  requires({
    root: true,
    commands: ["unshare", "ip", "ssh-keygen", "ssh-keyscan", "mount"],
    files: ["/usr/sbin/sshd"],
  }) || debianPeerMissing(DEBIAN_KEYGEN);

const SCRIPT = `
set -e
mount -t tmpfs tmpfs /run
mkdir -m 755 /run/sshd
ip link set lo up
if [ "$WITH_SSHD" = 1 ]; then
  /usr/sbin/sshd -D -e -f /dev/null -h "$D/hk_ecdsa" -h "$D/hk_ed25519" -o PidFile=none 2>"$D/sshd.log" &
  i=0
  while ! grep -q ':0016 00000000:0000 0A' /proc/net/tcp; do
    i=$((i+1)); [ $i -lt 200 ] || { echo "sshd did not start" >&2; exit 3; }
    sleep 0.05
  done
fi
"$NODE" "$KEYGEN" --dir "$K" --passfile "$D/pass" --name client1 > "$D/ours.txt"
"$DEBIAN_KEYGEN" --dir "$K" --passfile "$D/pass" --name client1 > "$D/debian.txt"
`;

async function sections(withSshd: boolean) {
  const d = tempDir();
  const k = join(d.path, "keys");
  mkdirSync(k);
  const r0 = await run(process.execPath, [join(BIN, "mandos-keygen"), "--dir", k], { timeoutMs: 60_000 });
  assert.equal(r0.code, 0, r0.stderr);
  writeFileSync(join(d.path, "pass"), "ssh test pw", { mode: 0o600 });
  for (const type of ["ecdsa", "ed25519"]) {
    const g = await run("ssh-keygen", ["-q", "-N", "", "-t", type, "-f", join(d.path, `hk_${type}`)], { timeoutMs: 60_000 });
    assert.equal(g.code, 0, g.stderr);
  }
  const r = await run(
    "unshare",
    ["--net", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "sh", "-c", SCRIPT],
    {
      timeoutMs: 90_000,
      env: {
        ...process.env,
        WITH_SSHD: withSshd ? "1" : "0",
        D: d.path,
        K: k,
        NODE: process.execPath,
        KEYGEN: join(BIN, "mandos-keygen"),
        DEBIAN_KEYGEN: debianPeer(DEBIAN_KEYGEN),
      },
    },
  );
  return { d, k, r, ours: () => readFileSync(join(d.path, "ours.txt"), "utf8"), debian: () => readFileSync(join(d.path, "debian.txt"), "utf8") };
}

test("with an SSH server: the same checker and ssh_fingerprint lines as Debian's keygen", { skip: SKIP, timeout: 120_000 }, async () => {
  const s = await sections(true);
  try {
    assert.equal(s.r.code, 0, s.r.stderr);
    const ours = s.ours();
    const debian = s.debian();
    const hostKey = readFileSync(join(s.d.path, "hk_ecdsa.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ");
    assert.equal(sectionValue(ours, "ssh_fingerprint"), hostKey, "first type tried is ECDSA");
    assert.equal(sectionValue(ours, "checker"), sectionValue(debian, "checker"));
    assert.equal(sectionValue(ours, "ssh_fingerprint"), sectionValue(debian, "ssh_fingerprint"));
    // Same layout as Debian's apart from the (random) secret and key id case.
    const skeleton = (t: string) =>
      t.replace(/^ {4}\S+\n/gm, "").replace(/^key_id = (.*)$/m, (_l, id: string) => `key_id = ${id.toUpperCase()}`);
    assert.equal(skeleton(ours), skeleton(debian));
    const keys = await loadDecryptionKeys(readFileSync(join(s.k, "pubkey.txt")), readFileSync(join(s.k, "seckey.txt")));
    assert.equal((await decryptSecret(sectionSecret(ours), keys)).toString(), "ssh test pw");
    assert.equal((await decryptSecret(sectionSecret(debian), keys)).toString(), "ssh test pw", "Debian's keygen reads our keys");
  } finally {
    s.d.cleanup();
  }
});

test("without an SSH server: no checker, like Debian's keygen", { skip: SKIP, timeout: 120_000 }, async () => {
  const s = await sections(false);
  try {
    assert.equal(s.r.code, 0, s.r.stderr);
    assert.equal(sectionValue(s.ours(), "checker"), undefined);
    assert.equal(sectionValue(s.debian(), "checker"), undefined);
    assert.equal(sectionValue(s.ours(), "ssh_fingerprint"), undefined);
  } finally {
    s.d.cleanup();
  }
});

test("key type order and ssh-keyscan output parsing", async () => {
  const asked: string[] = [];
  const key = await findSshHostKey(async (type) => {
    asked.push(type);
    return type === "ed25519" ? "# localhost:22 SSH-2.0-OpenSSH_9.2\nlocalhost ssh-ed25519 AAAAC3Nza\n" : "";
  });
  assert.deepEqual(asked, ["ecdsa-sha2-nistp256", "ed25519"]);
  assert.deepEqual(key, { keytype: "ed25519", fingerprint: "ssh-ed25519 AAAAC3Nza" });
  assert.equal(await findSshHostKey(async () => ""), undefined);
  assert.equal(parseKeyscan("otherhost ssh-rsa AAA\n", "localhost"), undefined);
  assert.equal(
    sshChecker({ keytype: "rsa", fingerprint: "ssh-rsa AAA" }),
    'ssh-keyscan -t rsa %%(host)s 2>/dev/null | grep --fixed-strings --line-regexp --quiet --regexp=%%(host)s" %(ssh_fingerprint)s"',
  );
});
