// A fleet rebooting at once: secrets delivered per second and p50/p99
// latency at 1, 64 and 1,000 concurrent connections, for our server and for
// Debian's mandos in the same run, plus the bare GnuTLS handshake cost as
// the limit to compare against; and the cost of metrics (metrics_address)
// on the hot path, on against off. Run: npm run bench:server
// (`node dist/bench/server-load.js metrics` measures only the metrics cost;
// with --etcd, npm run bench:server -- --etcd, the fleet on etcd instead: fleet-load.ts)
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, chownSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import { once } from "node:events";
import { Credentials, TlsConnection } from "../src/tls/session.js";
import { parseClientsConf } from "../src/config/index.js";
import { unprivilegedIdentity } from "../src/server/privileges.js";
import { startDebianServer } from "../test/helpers/debian-peer.js";
import { runLoad, percentile, type LoadResult } from "./load-client.js";
import { median } from "./common.js";
import { createMetrics } from "../src/server/metrics.js";
import { benchFleet } from "./fleet-load.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const LEVELS = [1, 64, 1000];
const BUDGET_MS = Number(process.env.BUDGET_MS ?? 60_000);
/** Metrics on against off: alternating rounds of this many requests at c=64. */
const METRICS_ROUNDS = 7;
const ONLY_METRICS = process.argv[2] === "metrics";
const METRICS_REQUESTS = 1000;

function summary(who: string, r: LoadResult): string {
  const rate = r.served / r.seconds;
  return (
    `${who} c=${String(r.concurrency).padStart(4)}: ${r.served}/${r.requests} served in ${r.seconds.toFixed(2)} s, ` +
    `${rate.toFixed(1)} secrets/s, p50 ${percentile(r.latenciesMs, 50).toFixed(0)} ms, p99 ${percentile(r.latenciesMs, 99).toFixed(0)} ms` +
    (r.failed ? `, ${r.failed} failed (${r.firstError})` : "")
  );
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function bareHandshakes(creds: Credentials, n: number): Promise<number> {
  const anon = Credentials.anonymous();
  const server = net.createServer();
  server.listen(0, "::1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  const started = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const accepted = once(server, "connection");
    const a = net.connect(port, "::1");
    await once(a, "connect");
    const [b] = (await accepted) as [net.Socket];
    const [x, y] = await Promise.all([TlsConnection.accept(a, creds), TlsConnection.connect(b, anon)]);
    x.destroy();
    y.destroy();
  }
  const used = process.cpuUsage(started);
  server.close();
  anon.dispose();
  return (used.user + used.system) / 1000 / n; // ms of CPU, both ends
}

/** User plus system CPU time of a process so far, in ms (from /proc, 10 ms ticks). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
  // utime and stime are fields 14 and 15 of stat(5); 12 and 13 once "pid (comm) " is cut.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** A configuration directory for our server, owned by the user it drops to. */
function ourConfig(dir: string, section: string, extra = ""): string {
  mkdirSync(dir);
  const who = unprivilegedIdentity();
  chownSync(dir, who.uid, who.gid);
  writeFileSync(join(dir, "clients.conf"), section);
  // The whole fleet connects from ::1 here: lift the per-address cap (64 by
  // default) to the global one, or the 1,000-connection level would measure refusals.
  writeFileSync(join(dir, "mandos.conf"), `[DEFAULT]\naddress = ::1\nport = 0\nmax_connections_per_address = 4096\n${extra}`);
  return dir;
}

/**
 * What metrics cost per secret: two servers, one with metrics_address, fed
 * alternately (off, on, off, on…) so that a busy machine hits both alike;
 * medians of throughput and of the server's CPU time per secret.
 */
async function metricsCost(work: string, section: string, creds: Credentials, expected: Buffer): Promise<void> {
  const servers = {
    off: await startOurs(ourConfig(join(work, "metrics-off"), section)),
    on: await startOurs(ourConfig(join(work, "metrics-on"), section, "metrics_address = [::1]:0\n")),
  };
  const rate = { off: [] as number[], on: [] as number[] };
  const cpu = { off: [] as number[], on: [] as number[] };
  let servedOn = 0;
  try {
    for (let round = 0; round < METRICS_ROUNDS; round++) {
      // Each first in turn: whatever drifts on a shared machine hits both alike.
      for (const which of round % 2 ? (["on", "off"] as const) : (["off", "on"] as const)) {
        const pid = servers[which].child.pid!;
        const before = cpuMs(pid);
        const r = await runLoad(servers[which].port, creds, expected, 64, METRICS_REQUESTS, BUDGET_MS);
        if (r.failed) throw new Error(`metrics ${which}: ${r.failed} failed (${r.firstError})`);
        rate[which].push(r.served / r.seconds);
        cpu[which].push((cpuMs(pid) - before) / r.served);
        if (which === "on") servedOn += r.served;
      }
    }
    // The metrics were live: the server counted every secret it sent.
    const url = /Serving metrics on (\S+)/.exec(servers.on.output())![1]!;
    const counted = Number(/^mandos_secrets_sent_total (\d+)$/m.exec(await (await fetch(url)).text())?.[1]);
    if (counted !== servedOn) throw new Error(`metrics counted ${counted} secrets, ${servedOn} were served`);
  } finally {
    servers.off.child.kill("SIGTERM");
    servers.on.child.kill("SIGTERM");
  }
  const [rOff, rOn, cOff, cOn] = [median(rate.off), median(rate.on), median(cpu.off), median(cpu.on)];
  console.log(`metrics off c=  64: ${rOff.toFixed(1)} secrets/s, server CPU ${cOff.toFixed(3)} ms/secret (median of ${METRICS_ROUNDS} x ${METRICS_REQUESTS})`);
  console.log(`metrics on  c=  64: ${rOn.toFixed(1)} secrets/s, server CPU ${cOn.toFixed(3)} ms/secret (median of ${METRICS_ROUNDS} x ${METRICS_REQUESTS})`);
  console.log(`metrics on/off: throughput ${(rOn / rOff).toFixed(3)}x, server CPU per secret ${(cOn / cOff).toFixed(3)}x (whole processes: noisy on a shared machine)`);
  // What metrics add to each secret, measured alone: the observer calls one
  // served connection makes, against the server's CPU per secret without metrics.
  const perSecretUs = eventsCostUs();
  const share = perSecretUs / 1000 / cOff;
  console.log(`metrics events per secret: ${perSecretUs.toFixed(2)} us = ${(share * 100).toFixed(2)}% of a secret's CPU (limit 5%: ${share <= 0.05 ? "met" : "NOT met"})`);
}

/** CPU microseconds of the metrics calls one served connection makes (median of 5 runs of 200,000). */
function eventsCostUs(): number {
  const { events } = createMetrics(() => []);
  const served = () => {
    events.handshakeDone(0.002);
    events.secretSent(0.004);
    events.connectionEnded("served");
    events.stateWritten(0.003, true);
  };
  const runs: number[] = [];
  for (let run = 0; run < 6; run++) {
    const started = performance.now();
    for (let i = 0; i < 200_000; i++) served();
    // The first run warms the JIT up.
    if (run > 0) runs.push(((performance.now() - started) * 1000) / 200_000);
  }
  return median(runs);
}

async function startOurs(dir: string): Promise<{ port: number; child: ChildProcess; output(): string }> {
  const child = spawn(join(ROOT, "bin", "mandos"), ["--foreground", "--debuglevel", "INFO", "--no-dbus", "--no-zeroconf", "--configdir", dir, "--statedir", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stderr!.on("data", (d: Buffer) => (out += d));
  child.stdout!.resume();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /port (\d+)/.exec(out);
    if (m) return { port: Number(m[1]), child, output: () => out };
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`our server did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Our server and Debian's at 1, 64 and 1,000 concurrent, then metrics on against off. */
async function localState(work: string, section: string, creds: Credentials, expected: Buffer): Promise<void> {
  const bare = await bareHandshakes(creds, 200);
  console.log(`bare GnuTLS handshake (both ends, one process): ${bare.toFixed(2)} ms CPU -> limit ~${(2000 / bare).toFixed(0)} handshakes/s on 2 cores`);

  const ours = await startOurs(ourConfig(join(work, "ours"), section));
  const results = new Map<string, LoadResult>();
  try {
    for (const c of LEVELS) {
      const r = await runLoad(ours.port, creds, expected, c, Math.max(c, 200), BUDGET_MS);
      results.set(`ours${c}`, r);
      console.log(summary("ours  ", r));
    }
    console.log(`ours: peak memory (VmHWM) ${rssMb(ours.child.pid!).toFixed(0)} MB`);
  } finally {
    ours.child.kill("SIGTERM");
  }

  const debian = await startDebianServer({ clientsConf: section });
  try {
    for (const c of LEVELS) {
      // Debian's server serves a few per second: bound its run by time.
      const r = await runLoad(debian.port, creds, expected, c, c === 1 ? 10 : c, BUDGET_MS);
      results.set(`debian${c}`, r);
      console.log(summary("debian", r));
    }
  } finally {
    await debian.stop();
  }
  for (const c of LEVELS) {
    const a = results.get(`ours${c}`)!;
    const b = results.get(`debian${c}`)!;
    const ratio = a.served / a.seconds / (b.served / b.seconds);
    console.log(`throughput ratio at c=${c}: ${ratio.toFixed(1)}x` + (c === 64 ? ` (target >= 20x: ${ratio >= 20 ? "met" : "NOT met"})` : ""));
  }
  await metricsCost(work, section, creds, expected);
  const big = results.get("ours1000")!;
  const p99 = percentile(big.latenciesMs, 99);
  console.log(`ours at c=1000: ${big.served}/1000 served, p99 ${p99.toFixed(0)} ms (target: all served, p99 < 2000 ms: ${big.served >= 1000 && big.failed === 0 && p99 < 2000 ? "met" : "NOT met"})`);
}

const work = mkdtempSync(join(tmpdir(), "bench-server-"));
chmodSync(work, 0o755);
try {
  const keys = join(work, "keys");
  mkdirSync(keys);
  execFileSync(join(ROOT, "bin", "mandos-keygen"), ["--dir", keys, "--force"], { stdio: "ignore" });
  writeFileSync(join(work, "pw"), "load test password");
  const section = execFileSync(join(ROOT, "bin", "mandos-keygen"), ["--dir", keys, "--passfile", join(work, "pw"), "--name", "fleet", "--no-ssh"]).toString();
  const expected = parseClientsConf(section, "section").clients[0]!.secret;
  const creds = Credentials.rawKey(readFileSync(join(keys, "tls-pubkey.pem")), readFileSync(join(keys, "tls-privkey.pem")));

  if (process.argv.includes("--etcd")) await benchFleet(work, section, "fleet", creds, expected);
  else await (ONLY_METRICS ? metricsCost : localState)(work, section, creds, expected);
  creds.dispose();
} finally {
  rmSync(work, { recursive: true, force: true });
}
