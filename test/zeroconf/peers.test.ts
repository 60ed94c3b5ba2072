// Debian's Mandos 1.8.16 programs as Zeroconf peers of ours, between two
// network namespaces: mandos-client (which embeds avahi-core, so it needs
// no avahi-daemon) finds our announcements and connects; the reference
// server, announcing through avahi-daemon, is found by our browser.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { mkdirSync, writeFileSync } from "node:fs";
import { ROOT, requires, tempDir } from "../helpers/index.js";
import { spawnInNs, startAnnouncer, startBrowser, testRig, type NsProcess } from "../helpers/netns.js";
import { DEBIAN_CLIENT, DEBIAN_KEYGEN, DEBIAN_SERVER, debianPeer, debianPeerMissing, makeDebianKeys } from "../helpers/debian-peer.js";

const DIST = join(ROOT, "dist");
const clientSkip = requires({ root: true, commands: ["ip", "unshare"] }) || debianPeerMissing(DEBIAN_KEYGEN, DEBIAN_CLIENT);
const avahiSkip = requires({ root: true, commands: ["ip", "unshare", "avahi-daemon", "dbus-daemon"] }) || debianPeerMissing(DEBIAN_KEYGEN, DEBIAN_CLIENT);
const serverSkip = requires({ root: true, commands: ["ip", "unshare", "avahi-daemon", "dbus-daemon"] }) || debianPeerMissing(DEBIAN_SERVER);

type Ev = Record<string, unknown>;

describe("Debian's mandos-client and mandos as Zeroconf peers", () => {
  const dir = tempDir("mandos-zc-peers-");
  const keys = join(dir.path, "keys");
  after(() => dir.cleanup());
  before(async () => {
    if (clientSkip) return;
    mkdirSync(keys, { recursive: true });
    await makeDebianKeys(keys);
  });

  const startClient = (ns: string, iface: string) =>
    spawnInNs(
      ns,
      debianPeer(DEBIAN_CLIENT),
      [
        "--debug",
        `--interface=${iface}`,
        `--pubkey=${keys}/pubkey.txt`,
        `--seckey=${keys}/seckey.txt`,
        `--tls-pubkey=${keys}/tls-pubkey.pem`,
        `--tls-privkey=${keys}/tls-privkey.pem`,
      ],
      { timeoutMs: 60_000 },
    );

  /** Wait for mandos-client's "found" line; returns [name, host, address, ifindex, port]. */
  const clientFound = async (client: NsProcess, name: string) => {
    const re = new RegExp(`Mandos server "${name}" found on (\\S+) \\(([^,]+), (\\d+)\\) on port (\\d+)`);
    const m = await client.waitUntil(`mandos-client finds "${name}"`, () => re.exec(client.stderr), 20_000);
    return { host: m[1]!, address: m[2]!, ifindex: Number(m[3]), port: Number(m[4]) };
  };

  test("mandos-client finds our built-in IPv6 announcement and connects to its link-local address", { skip: clientSkip }, async (t) => {
    const r = testRig(t);
    const pair = await r.pair();
    const { llA, llB } = pair.links[0]!;
    const ann = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Mandos", port: 4711, backend: "builtin", listen: true }));
    await ann.waitEvent("announce", (e) => e.event === "announced", 10_000);
    const client = r.keep(startClient(pair.nsB, "vethB"));
    const f = await clientFound(client, "Mandos");
    assert.equal(f.address, llA);
    assert.equal(f.port, 4711);
    await client.waitUntil("connects with the zone", () => client.stderr.includes(`Connection to: ${llA}%vethB, port 4711`), 10_000);
    const conn = await ann.waitEvent("connection", (e: Ev) => e.event === "connection", 10_000);
    assert.equal(conn.remote, `${llB}%vethA`);
    assert.equal(conn.data, "1\r\n", "the Mandos protocol's first line");
  });

  test("mandos-client finds our built-in IPv4-only announcement", { skip: clientSkip }, async (t) => {
    const r = testRig(t);
    const pair = await r.pair({ ipv4: true });
    const { v4A } = pair.links[0]!;
    const ann = r.keep(startAnnouncer(pair.nsA, DIST, { name: "Four", port: 4712, backend: "builtin", protocol: "ipv4", listen: true }));
    await ann.waitEvent("announce", (e) => e.event === "announced", 10_000);
    const client = r.keep(startClient(pair.nsB, "vethB"));
    const f = await clientFound(client, "Four");
    assert.equal(f.address, v4A);
    assert.equal(f.port, 4712);
    const conn = await ann.waitEvent("connection", (e: Ev) => e.event === "connection", 10_000);
    assert.equal(conn.data, "1\r\n");
  });

  test("mandos-client finds our announcement made through avahi-daemon", { skip: avahiSkip }, async (t) => {
    const r = testRig(t);
    const pair = await r.pair();
    const avahiA = await r.avahi(pair.nsA, join(dir.path, "avahi-c"), "avahi-a", "vethA");
    const ann = r.keep(
      startAnnouncer(pair.nsA, DIST, { name: "Through avahi", port: 4713, listen: true }, { DBUS_SYSTEM_BUS_ADDRESS: avahiA.busAddress }),
    );
    assert.equal((await ann.waitEvent("announce", (e) => e.event === "announced", 10_000)).via, "avahi");
    const client = r.keep(startClient(pair.nsB, "vethB"));
    const f = await clientFound(client, "Through avahi");
    assert.deepEqual([f.host, f.address, f.port], ["avahi-a.local", pair.links[0]!.llA, 4713]);
    await ann.waitEvent("connection", (e: Ev) => e.event === "connection" && e.data === "1\r\n", 10_000);
  });

  test("Debian's mandos server (through avahi-daemon) is found by our browser; ours renames on its name", { skip: serverSkip }, async (t) => {
    const r = testRig(t);
    const pair = await r.pair();
    const avahiA = await r.avahi(pair.nsA, join(dir.path, "avahi-s"), "avahi-a", "vethA");
    const conf = join(dir.path, "server");
    mkdirSync(join(conf, "state"), { recursive: true });
    writeFileSync(join(conf, "mandos.conf"), "[DEFAULT]\nport = 4714\nuse_dbus = False\nzeroconf = True\n");
    writeFileSync(join(conf, "clients.conf"), "");
    const br = r.keep(startBrowser(pair.nsB, DIST, {}));
    const server = r.keep(
      spawnInNs(
        pair.nsA,
        debianPeer(DEBIAN_SERVER),
        ["--debug", "--configdir", conf, "--statedir", join(conf, "state"), "--no-dbus", "--no-restore"],
        { env: { DBUS_SYSTEM_BUS_ADDRESS: avahiA.busAddress }, timeoutMs: 120_000 },
      ),
    );
    const f = await br
      .waitEvent("browse finds Debian's server", (e) => e.event === "found" && e.name === "Mandos", 20_000)
      .catch((err: Error) => {
        throw new Error(`${err.message}; server: ${server.stderr.slice(-3000)}`);
      });
    assert.deepEqual([f.host, f.address, f.port, f.protocol], ["avahi-a.local", `${pair.links[0]!.llA}%vethB`, 4714, "ipv6"]);
    // Our built-in responder in the other namespace yields the name.
    const ours = r.keep(startAnnouncer(pair.nsB, DIST, { name: "Mandos", port: 4715, backend: "builtin" }));
    assert.equal((await ours.waitEvent("ours", (e) => e.event === "announced", 10_000)).name, "Mandos #2");
  });
});
