// mandos-check's decisions, as pure functions: which images, which
// devices, the client's command line from the unit, when to stop asking,
// what each server's line says, and the client's event lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultRelease, imagesToCheck } from "../../src/check/initramfs.js";
import { parseCrypttab, selectDevices, sourcePath } from "../../src/check/devices.js";
import { clientCommand, unitEnvironment, unitWords } from "../../src/check/client-args.js";
import { applyEvent, describeState, stopNow, type ServerState } from "../../src/check/servers.js";
import { formatEvent, parseEventLine } from "../../src/client/events.js";

test("the default boot entry's kernel is what /vmlinuz (or /boot/vmlinuz) points to", () => {
  const links: Record<string, string> = { "/vmlinuz": "boot/vmlinuz-6.1.0-9-amd64" };
  assert.equal(defaultRelease("/boot", (p) => links[p] ?? null), "6.1.0-9-amd64");
  assert.equal(defaultRelease("/boot", (p) => ({ "/boot/vmlinuz": "vmlinuz-6.2" })[p] ?? null), "6.2");
  assert.equal(defaultRelease("/boot", () => null), null);
  assert.deepEqual(imagesToCheck("/boot", "6.1", "6.1"), [{ path: "/boot/initrd.img-6.1", release: "6.1", roles: ["running kernel", "default boot entry"] }]);
  assert.deepEqual(imagesToCheck("/boot", "6.1", "6.2").map((i) => [i.path, i.roles]), [
    ["/boot/initrd.img-6.1", ["running kernel"]],
    ["/boot/initrd.img-6.2", ["default boot entry"]],
  ]);
});

test("the devices: those in the image's crypttab or marked initramfs/x-initrd.attach; key files are not Mandos's", () => {
  const entries = parseCrypttab(`# comment
root UUID=1234 none luks,discard
data /dev/sdb1 none luks,initramfs
late /dev/sdc1 none luks
keyed /dev/sdd1 /etc/keys/k luks,x-initrd.attach
swap /dev/sde1 /dev/urandom swap
`);
  const { unlock, withKeyFile } = selectDevices(entries, new Set(["root"]));
  assert.deepEqual(unlock.map((e) => e.name), ["root", "data"]);
  assert.deepEqual(withKeyFile.map((e) => e.name), ["keyed"]);
  assert.equal(sourcePath("UUID=1234"), "/dev/disk/by-uuid/1234");
  assert.equal(sourcePath('PARTLABEL="x"'), "/dev/disk/by-partlabel/x");
  assert.equal(sourcePath("/dev/sdb1"), "/dev/sdb1");
});

test("the client's command line: the unit's ExecStart after --, $VAR split, drop-ins in order", () => {
  const unit = `[Service]\nExecStart=/agent --prefetch $PASSWORD_AGENT_OPTIONS -- /usr/lib/mandos-ts/mandos-client --pubkey=/k/p "--x=a b" $MANDOS_CMDLINE_OPTIONS $MANDOS_CLIENT_OPTIONS\n`;
  const generated = `[Service]\nEnvironment="MANDOS_CMDLINE_OPTIONS=--connect=::1:4711 --interface=eth0"\n`;
  const admin = `[Service]\nEnvironment=MANDOS_CLIENT_OPTIONS=--retry=3 OTHER=1\nEnvironment="MANDOS_CLIENT_OPTIONS=--retry=5 --delay=1"\n`;
  const texts = [unit, generated, admin];
  assert.deepEqual(clientCommand(texts, unitEnvironment(texts)), [
    "/usr/lib/mandos-ts/mandos-client", "--pubkey=/k/p", "--x=a b", "--connect=::1:4711", "--interface=eth0", "--retry=5", "--delay=1",
  ]);
  assert.deepEqual(unitWords(`a "b c" 'd e' f\\ g`), ["a", "b c", "d e", "f g"]);
  assert.equal(clientCommand(["[Service]\nExecStart=/agent\n"], new Map()), null);
});

const state = (events: Parameters<typeof applyEvent>[2][]): ServerState => {
  const states = new Map<string, ServerState>();
  for (const e of events) applyEvent(states, "[::1]:1", e);
  return states.get("[::1]:1")!;
};

test("when to stop asking: a decrypted secret not before the deadline; every server failed (with Zeroconf after settling); the deadline", () => {
  const rule = { connectMode: true, waitMs: 30_000, settleMs: 10_000 };
  const failed = state([{ type: "found" }, { type: "connected" }, { type: "failed", reason: "x" }]);
  const waiting = state([{ type: "found" }, { type: "connected" }, { type: "handshake" }]);
  const done = state([{ type: "found" }, { type: "connected" }, { type: "handshake" }, { type: "decrypted" }]);
  assert.equal(stopNow([], 1000, rule), false);
  assert.equal(stopNow([failed], 1000, rule), true);
  assert.equal(stopNow([failed], 1000, { ...rule, connectMode: false }), false);
  assert.equal(stopNow([failed], 10_000, { ...rule, connectMode: false }), true);
  assert.equal(stopNow([failed, waiting], 1000, rule), false);
  assert.equal(stopNow([waiting], 30_000, rule), true);
  assert.equal(stopNow([done], 1000, rule), false);
  assert.equal(stopNow([done], 30_000, rule), true);
});

test("k-of-n: a share is not the password; fewer than K shares stop at the deadline", () => {
  const rule = { connectMode: true, waitMs: 30_000, settleMs: 10_000 };
  const share = state([{ type: "found" }, { type: "connected" }, { type: "handshake" }, { type: "share", index: 2, threshold: 3 }]);
  const failed = state([{ type: "found" }, { type: "connected" }, { type: "failed", reason: "x" }]);
  const awaiting = state([{ type: "found" }, { type: "connected" }, { type: "handshake" }]);
  assert.equal(stopNow([share, failed], 1000, rule), false);
  assert.equal(stopNow([share, failed], 30_000, rule), true);
  assert.equal(stopNow([share, awaiting], 30_000, rule), true);
  assert.equal(describeState(share, "AB".repeat(32), 30), "found; handshake done; share 2 of 3 decrypts");
  const line = formatEvent("[::1]:1", { type: "share", index: 2, threshold: 3 });
  assert.deepEqual(parseEventLine(line.trimEnd()), { server: "[::1]:1", event: { type: "share", index: 2, threshold: 3 } });
  assert.equal(parseEventLine('mandos-client-event {"server":"x","type":"share","index":256,"threshold":2}'), null);
});

test("each server's line says how far it got", () => {
  const id = "AB".repeat(32);
  const line = (events: Parameters<typeof applyEvent>[2][]) => describeState(state(events), id, 30);
  assert.equal(line([{ type: "found" }, { type: "failed", reason: "[::1]:1: cannot connect: ECONNREFUSED" }]), "found; cannot connect: ECONNREFUSED");
  assert.equal(line([{ type: "connected" }, { type: "failed", reason: "[::1]:1: handshake: bad" }]), "found; connected; TLS handshake failed: handshake: bad");
  assert.equal(
    line([{ type: "connected" }, { type: "handshake" }, { type: "failed", reason: "[::1]:1: the server sent no secret" }]),
    `found; handshake done; no secret: the server does not know this client (key id ${id}) or has it disabled`,
  );
  assert.equal(line([{ type: "connected" }, { type: "handshake" }]), "found; handshake done; no answer within 30 s: approval needed, or the server stalls");
  assert.equal(line([{ type: "connected" }, { type: "handshake" }, { type: "decrypted" }]), "found; handshake done; secret decrypts");
  // A retry starts a new attempt: its steps, not the last failure's, count.
  assert.equal(line([{ type: "connected" }, { type: "failed", reason: "x" }, { type: "connected" }, { type: "handshake" }]).includes("no answer"), true);
});

test("event lines: what the client writes is what the check reads; anything else is not an event", () => {
  const line = formatEvent("[fe80::1%eth0]:4711", { type: "failed", reason: "a\nb" });
  assert.deepEqual(parseEventLine(line.trimEnd()), { server: "[fe80::1%eth0]:4711", event: { type: "failed", reason: "a b" } });
  assert.deepEqual(parseEventLine(formatEvent("x", { type: "handshake" }).trimEnd()), { server: "x", event: { type: "handshake" } });
  for (const bad of ["mandos-client: error", 'mandos-client-event {"server":"x","type":"secret"}', 'mandos-client-event {"server":1,"type":"found"}',
    'mandos-client-event {"server":"x","type":"failed"}', "mandos-client-event {", `mandos-client-event ${JSON.stringify({ server: "x".repeat(3000), type: "found" })}`]) {
    assert.equal(parseEventLine(bad), null, bad);
  }
});
