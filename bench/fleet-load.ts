// bench:server's etcd mode (npm run bench:server -- --etcd): three of our
// servers sharing state through a 3-member etcd cluster on this machine,
// behind one load generator, against one server on local state in the same
// run (secrets/s at 64 concurrent; target >= 0.7x), and how long a disable
// made on one server takes to be enforced by the other two (p50/p99 over
// 100 trials: from the D-Bus call on A to a real handshake refused by both
// B and C).
import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Credentials } from "../src/tls/session.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { startFleet, stopFleet, type FleetMember } from "../test/helpers/fleet.js";
import { CLIENT_INTERFACE, callServer, connectBus, serverWritableDir, startBus, startServer, writeConfig } from "../test/helpers/server.js";
import { one, percentile, runLoad, type LoadResult } from "./load-client.js";

const CONCURRENCY = 64;
const REQUESTS = 1500;
const TRIALS = 100;
const ROUNDS = 3;
const MORE_CONF = "max_connections_per_address = 4096\n";

const rate = (r: LoadResult) => r.served / r.seconds;

/** Secrets/s of one run, with its failures if any. */
function line(who: string, r: LoadResult): string {
  return `${who}: ${r.served}/${r.requests} served, ${rate(r).toFixed(1)} secrets/s, p50 ${percentile(r.latenciesMs, 50).toFixed(0)} ms, p99 ${percentile(r.latenciesMs, 99).toFixed(0)} ms${r.failed ? `, ${r.failed} failed (${r.firstError})` : ""}`;
}

/** CPU time (user + system) the processes used so far, in ms. */
function cpuMs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

/** A load run, with the CPU each group of processes spent per secret served. */
async function measured(run: () => Promise<LoadResult>, groups: Record<string, number[]>): Promise<{ r: LoadResult; perSecret: string }> {
  const before = Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, cpuMs(pids)]));
  const r = await run();
  const perSecret = Object.entries(groups)
    .map(([k, pids]) => `${k} ${((cpuMs(pids) - before[k]!) / Math.max(1, r.served)).toFixed(2)}`)
    .join(", ");
  return { r, perSecret: `CPU ms per secret: ${perSecret}` };
}

/** Handshake with `port` until it refuses; resolves with the time it did. */
async function untilRefused(port: number, creds: Credentials, expected: Buffer): Promise<number> {
  for (;;) {
    try {
      await one(port, creds, expected, Date.now() + 5000);
    } catch {
      return performance.now();
    }
  }
}

async function untilServed(port: number, creds: Credentials, expected: Buffer): Promise<void> {
  for (;;) {
    try {
      await one(port, creds, expected, Date.now() + 5000);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

async function enforcement(fleet: FleetMember[], name: string, creds: Credentials, expected: Buffer): Promise<number[]> {
  const [a, ...others] = fleet;
  const conn = await connectBus(a!.bus);
  const path = `/clients/${name}`;
  const times: number[] = [];
  try {
    for (let i = 0; i < TRIALS; i++) {
      await callServer(conn, path, CLIENT_INTERFACE, "Enable");
      await Promise.all(others.map((m) => untilServed(m.server.port, creds, expected)));
      const started = performance.now();
      const refused = others.map((m) => untilRefused(m.server.port, creds, expected));
      await callServer(conn, path, CLIENT_INTERFACE, "Disable");
      times.push(Math.max(...(await Promise.all(refused))) - started);
    }
  } finally {
    await callServer(conn, path, CLIENT_INTERFACE, "Enable").catch(() => {});
    conn.disconnect();
  }
  return times;
}

export async function benchFleet(work: string, section: string, name: string, creds: Credentials, expected: Buffer): Promise<void> {
  console.log("etcd mode: 3 servers and a 3-member etcd cluster on this machine (shared with other work), against 1 server on local state");
  mkdirSync(join(work, "fleet"), { recursive: true });
  chmodSync(join(work, "fleet"), 0o755);
  const cluster = await startEtcd(join(work, "etcd"));
  const localBus = startBus(join(work, "local-bus"));
  const local = await startServer({
    configDir: writeConfig(join(work, "local-conf"), { clients: section, port: 0, extra: MORE_CONF }),
    stateDir: serverWritableDir(join(work, "local-state")),
    env: localBus.env,
  });
  let fleet: FleetMember[] = [];
  try {
    fleet = await startFleet({ cluster, dir: join(work, "fleet"), clients: section, prefix: "/mandos-bench/", extra: MORE_CONF });
    const ports = fleet.map((m) => m.server.port);
    const locals: LoadResult[] = [];
    const fleets: LoadResult[] = [];
    // Interleaved, so that the shared machine's load falls on both alike.
    const servers = fleet.map((m) => m.server.proc.pid!);
    for (let round = 0; round < ROUNDS; round++) {
      const l = await measured(() => runLoad(local.port, creds, expected, CONCURRENCY, REQUESTS, 60_000), { server: [local.proc.pid!] });
      console.log(`${line(`local state, 1 server,  c=${CONCURRENCY}`, l.r)}; ${l.perSecret}`);
      const f = await measured(() => runLoad(ports, creds, expected, CONCURRENCY, REQUESTS, 60_000), { servers, etcd: cluster.pids() });
      console.log(`${line(`etcd, 3 servers,        c=${CONCURRENCY}`, f.r)}; ${f.perSecret}`);
      locals.push(l.r);
      fleets.push(f.r);
    }
    const median = (rs: LoadResult[]) => percentile(rs.map(rate), 50);
    const ratio = median(fleets) / median(locals);
    console.log(`etcd/local throughput at c=${CONCURRENCY} (medians of ${ROUNDS} interleaved runs): ${ratio.toFixed(2)}x (target >= 0.7x: ${ratio >= 0.7 ? "met" : "NOT met"})`);
    const times = await enforcement(fleet, name, creds, expected);
    console.log(`disable on A enforced by B and C (D-Bus call to refused handshake, ${TRIALS} trials): p50 ${percentile(times, 50).toFixed(1)} ms, p99 ${percentile(times, 99).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms`);
  } finally {
    await stopFleet(fleet);
    await local.stop();
    localBus.stop();
    await cluster.stop();
  }
}
