// Prometheus metrics of a real server (metrics_address), after real
// handshakes with Debian's mandos-client: one client served after waiting
// for approval (approved by default), one refused because its checker fails
// and its timeout disabled it, one refused because its key is unknown. The
// scrape must pass Debian's `promtool check metrics` and its counters must
// have moved. Also: the endpoint serves GET /metrics only, and Debian's own
// server ignores the option.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { BIN, requires, run, tempDir } from "../helpers/index.js";
import { freePort, metricSample as sample, metricsUrl, serverWritableDir, startBus, startFetch, startServer, waitFor, writeConfig } from "../helpers/server.js";
import { DEBIAN_CLIENT, DEBIAN_SERVER, debianPeerMissing } from "../helpers/debian-peer.js";
import { eventClients } from "../helpers/event-clients.js";

const PROMTOOL = "/usr/bin/promtool";
const skip = requires({ root: true, files: [PROMTOOL], commands: ["gpg"] }) || debianPeerMissing(DEBIAN_CLIENT);


test("metrics after real handshakes pass promtool check metrics, and their counters moved", { skip, timeout: 120_000 }, async () => {
  using dir = tempDir("mandos-metrics-");
  chmodSync(dir.path, 0o755);
  const { served, sleepy, stranger, clients } = await eventClients(dir.path);
  const configDir = writeConfig(join(dir.path, "conf"), { clients, port: 0, extra: "metrics_address = [::1]:0\n" });
  const server = await startServer({ configDir, stateDir: serverWritableDir(join(dir.path, "state")), env: process.env, args: ["--no-dbus"] });
  try {
    const url = metricsUrl(server);
    const scrape = async () => {
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      return res.text();
    };
    const before = await scrape();
    assert.equal(sample(before, 'mandos_connections_total{outcome="served"}'), 0);
    assert.equal(sample(before, "mandos_clients"), 2, server.output());

    const fetched = await startFetch(served, server.port).result;
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.equal(fetched.stdout.toString(), "served secret");

    await waitFor("the timeout to disable sleepy", () => /Disabling client sleepy: timeout passed/.test(server.output()), 15_000);
    for (const keys of [sleepy, stranger]) {
      // Debian's client retries a refusal until its own timeout: one refusal is enough.
      const refused = startFetch(keys, server.port);
      const before = sample(await scrape(), 'mandos_connections_total{outcome="refused"}');
      await waitFor("a refusal", async () => sample(await scrape(), 'mandos_connections_total{outcome="refused"}') > before, 20_000);
      refused.kill();
      await refused.result;
    }

    const text = await scrape();
    const check = await run(PROMTOOL, ["check", "metrics"], { input: text });
    assert.equal(check.code, 0, `promtool: ${check.stdout}${check.stderr}`);
    assert.equal(check.stdout.toString() + check.stderr, "", "promtool has no remarks");

    const moved: [string, (v: number) => boolean][] = [
      ['mandos_connections_total{outcome="served"}', (v) => v === 1],
      ["mandos_secrets_sent_total", (v) => v === 1],
      ['mandos_refusals_total{reason="unknown_key"}', (v) => v >= 1],
      ['mandos_refusals_total{reason="disabled"}', (v) => v >= 1],
      ['mandos_refusals_total{reason="approval_denied"}', (v) => v === 0],
      ['mandos_checker_runs_total{result="failure"}', (v) => v >= 1],
      ["mandos_clients_disabled_by_timeout_total", (v) => v === 1],
      ["mandos_approvals_requested_total", (v) => v === 1],
      ["mandos_approvals_given_total", (v) => v === 1],
      ["mandos_clients", (v) => v === 2],
      ["mandos_clients_enabled", (v) => v === 1],
      ["mandos_approvals_pending", (v) => v === 0],
      ["mandos_handshake_seconds_count", (v) => v >= 3],
      ["mandos_time_to_secret_seconds_count", (v) => v === 1],
      // It waited a second for approval.
      ['mandos_time_to_secret_seconds_bucket{le="0.5"}', (v) => v === 0],
      ["mandos_state_write_seconds_count", (v) => v >= 1],
    ];
    for (const [series, ok] of moved) assert.ok(ok(sample(text, series)), `${series} = ${sample(text, series)}`);
  } finally {
    await server.stop();
  }
});

test("the metrics endpoint serves GET /metrics only, each error one line", { skip: requires({ root: true }), timeout: 60_000 }, async () => {
  using dir = tempDir("mandos-metrics-");
  chmodSync(dir.path, 0o755);
  const configDir = writeConfig(join(dir.path, "conf"), { clients: "", port: 0, extra: "metrics_address = [::1]:0\n" });
  const server = await startServer({ configDir, stateDir: serverWritableDir(join(dir.path, "state")), env: process.env, args: ["--no-dbus"] });
  try {
    const url = new URL(metricsUrl(server));
    const other = await fetch(new URL("/", url));
    assert.equal(other.status, 404);
    assert.equal(await other.text(), "not found: only /metrics is served\n");
    const post = await fetch(url, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    assert.equal(await post.text(), "method POST not allowed: use GET\n");
    const head = await fetch(url, { method: "HEAD" });
    assert.equal(head.status, 200);
    // Headers past the bound: refused, and the server carries on.
    const big = await fetch(url, { headers: { "x-filler": "a".repeat(8192) } });
    assert.equal(big.status, 431);
    assert.equal((await fetch(url)).status, 200);
  } finally {
    await server.stop();
  }
});

test("a metrics_address that cannot be bound stops the start with one line naming it", { skip: requires({ root: true }), timeout: 30_000 }, async () => {
  using dir = tempDir("mandos-metrics-");
  chmodSync(dir.path, 0o755);
  // A port taken by a listener of our own.
  const holder = createServer().listen({ host: "::1", port: 0 });
  await once(holder, "listening");
  const port = (holder.address() as AddressInfo).port;
  try {
    const configDir = writeConfig(join(dir.path, "conf"), { clients: "", port: 0, extra: `metrics_address = [::1]:${port}\n` });
    const stateDir = serverWritableDir(join(dir.path, "state"));
    const r = await run(process.execPath, [join(BIN, "mandos"), "--debug", "--no-dbus", "--no-zeroconf", "--configdir", configDir, "--statedir", stateDir], { timeoutMs: 20_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^mandos: error: metrics_address \\[::1\\]:${port}: cannot listen: listen EADDRINUSE: address already in use ::1:${port}$`, "m"));
  } finally {
    holder.close();
  }
});

test("Debian's mandos 1.8.16 ignores metrics_address in mandos.conf", { skip: requires({ root: true, commands: ["dbus-daemon"], files: ["/usr/bin/python3"] }) || debianPeerMissing(DEBIAN_SERVER), timeout: 60_000 }, async () => {
  using dir = tempDir("mandos-metrics-");
  chmodSync(dir.path, 0o755);
  // Debian's server connects to the system bus even with --no-dbus.
  const bus = startBus(join(dir.path, "bus"));
  try {
    const configDir = writeConfig(join(dir.path, "conf"), { clients: "", port: await freePort(), extra: "metrics_address = [::1]:9797\n" });
    const debian = await startServer({ configDir, stateDir: serverWritableDir(join(dir.path, "state")), env: bus.env, args: ["--no-dbus"], debian: true, timeoutMs: 30_000 });
    await debian.stop();
  } finally {
    bus.stop();
  }
});
