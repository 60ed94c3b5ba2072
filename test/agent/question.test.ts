// Question files: parsing, trust checks and status, all pure.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  isQuestionFileName,
  parseQuestion,
  questionStatus,
  untrustedDirectoryReason,
  untrustedFileReason,
  type FileFacts,
  type Question,
} from "../../src/agent/question.js";

const SYSTEMD = `[Ask]
PID=4242
Socket=/run/systemd/ask-password/sck.6f78dda33f19896d
AcceptCached=1
Echo=0
NotAfter=264046935
Silent=0
Message=Please enter passphrase for disk root (luks-1234):
Icon=drive-harddisk
Id=cryptsetup:/dev/disk/by-uuid/1234
`;

function parsed(text: string): Question {
  const r = parseQuestion("ask.x", text);
  assert.ok(r.ok, r.ok ? "" : r.reason);
  return r.value;
}
function reason(text: string): string {
  const r = parseQuestion("ask.x", text);
  assert.ok(!r.ok, "parsed although bad");
  return r.reason;
}

test("parses what systemd-cryptsetup writes", () => {
  assert.deepEqual(parsed(SYSTEMD), {
    file: "ask.x",
    pid: 4242,
    socket: "/run/systemd/ask-password/sck.6f78dda33f19896d",
    notAfterUs: 264046935n,
    acceptCached: true,
    echo: false,
    silent: false,
    message: "Please enter passphrase for disk root (luks-1234):",
    icon: "drive-harddisk",
    id: "cryptsetup:/dev/disk/by-uuid/1234",
  });
});

test("optional fields default; booleans in systemd's spellings", () => {
  const q = parsed("[Ask]\nPID=1\nSocket=/s\n");
  assert.equal(q.notAfterUs, 0n);
  assert.equal(q.echo, false);
  assert.equal(q.id, "");
  assert.equal(parsed("[Ask]\nPID=1\nSocket=/s\nEcho=yes\n").echo, true);
  assert.equal(parsed("[Ask]\nPID=1\nSocket=/s\nEcho=true\n").echo, true);
  assert.equal(parsed("[Ask]\nPID=1\nSocket=/s\nEcho=off\n").echo, false);
});

test("bad files have reasons naming the field", () => {
  assert.match(reason(SYSTEMD.replace(/^Socket=.*\n/m, "")), /no Socket/);
  assert.match(reason(SYSTEMD.replace(/^Socket=.*$/m, "Socket=relative/sck")), /Socket.*absolute/);
  assert.match(reason(SYSTEMD.replace(/^Socket=.*$/m, `Socket=/${"x".repeat(120)}`)), /Socket path too long/);
  assert.match(reason(SYSTEMD.replace(/^PID=.*\n/m, "")), /no PID/);
  for (const pid of ["abc", "0", "-1", "12abc", "99999999", "1.5"]) {
    assert.match(reason(SYSTEMD.replace(/^PID=.*$/m, `PID=${pid}`)), /bad PID/, pid);
  }
  assert.match(reason(SYSTEMD.replace(/^NotAfter=.*$/m, "NotAfter=soon")), /bad NotAfter/);
  assert.match(reason(SYSTEMD.replace(/^Echo=.*$/m, "Echo=maybe")), /bad Echo/);
  assert.match(reason("PID=1\nSocket=/s\n"), /no \[Ask\] section/);
  assert.match(reason("\u0000\u0001garbage"), /NUL/);
  assert.match(reason(""), /no \[Ask\] section/);
  assert.match(reason("[__proto__]\nPID=1\n"), /no \[Ask\] section/);
});

test("only ask.* names are questions", () => {
  assert.ok(isQuestionFileName("ask.Ab12Cd"));
  for (const n of ["sck.123", ".#ask.tmp", "ask.", "asking", "Ask.x"]) assert.ok(!isQuestionFileName(n), n);
});

const file: FileFacts = { isFile: true, isSymbolicLink: false, isDirectory: false, uid: 0, mode: 0o100644, size: 150 };

test("file trust: owner, mode, type and size", () => {
  assert.equal(untrustedFileReason(file, [0]), null);
  assert.match(untrustedFileReason({ ...file, isFile: false, isSymbolicLink: true }, [0])!, /symbolic link/);
  assert.match(untrustedFileReason({ ...file, isFile: false, isDirectory: true }, [0])!, /directory/);
  assert.match(untrustedFileReason({ ...file, isFile: false }, [0])!, /not a regular file/);
  assert.match(untrustedFileReason({ ...file, uid: 1000 }, [0])!, /owned by uid 1000/);
  assert.equal(untrustedFileReason({ ...file, uid: 1000 }, [0, 1000]), null);
  assert.match(untrustedFileReason({ ...file, mode: 0o100666 }, [0])!, /writable by group or others \(mode 0666\)/);
  assert.match(untrustedFileReason({ ...file, mode: 0o100664 }, [0])!, /writable/);
  assert.match(untrustedFileReason({ ...file, size: 1 << 20 }, [0])!, /too large/);
});

test("directory trust: sticky world-writable is acceptable, plain world-writable is not", () => {
  const dir: FileFacts = { ...file, isFile: false, isDirectory: true, mode: 0o40755 };
  assert.equal(untrustedDirectoryReason(dir, [0]), null);
  assert.equal(untrustedDirectoryReason({ ...dir, mode: 0o41777 }, [0]), null);
  assert.match(untrustedDirectoryReason({ ...dir, mode: 0o40777 }, [0])!, /without the sticky bit/);
  assert.match(untrustedDirectoryReason({ ...dir, uid: 5 }, [0])!, /owned by uid 5/);
  assert.match(untrustedDirectoryReason(file, [0])!, /not a directory/);
});

test("status: expiry, asker, echo, Id", () => {
  const q = parsed(SYSTEMD); // NotAfter 264046935 µs, PID 4242
  const alive = () => true;
  const prefixes = ["cryptsetup:"];
  assert.equal(questionStatus(q, 264046934n, alive, prefixes), "pending");
  assert.equal(questionStatus(q, 264046935n, alive, prefixes), "expired");
  assert.equal(questionStatus({ ...q, notAfterUs: 0n }, 10n ** 15n, alive, prefixes), "pending");
  const seen: number[] = [];
  assert.equal(questionStatus(q, 0n, (pid) => (seen.push(pid), false), prefixes), "asker-gone");
  assert.deepEqual(seen, [4242]);
  assert.equal(questionStatus({ ...q, echo: true }, 0n, alive, prefixes), "wants-echo");
  assert.equal(questionStatus({ ...q, id: "cryptsetup-pkcs11:x" }, 0n, alive, prefixes), "not-ours");
  assert.equal(questionStatus({ ...q, id: "" }, 0n, alive, prefixes), "not-ours");
  assert.equal(questionStatus({ ...q, id: "" }, 0n, alive, [""]), "pending");
  assert.equal(questionStatus({ ...q, id: "zfs:pool" }, 0n, alive, ["zfs:", "cryptsetup:"]), "pending");
});
