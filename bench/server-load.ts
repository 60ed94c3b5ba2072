// A fleet rebooting at once: secrets delivered per second and p50/p99
// latency at 1, 64 and 1,000 concurrent connections, for our server and for
// Debian's mandos in the same run, plus the bare GnuTLS handshake cost as
// the limit to compare against. Run: npm run bench:server
// With --etcd (npm run bench:server -- --etcd): the fleet on etcd instead (fleet-load.ts).
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
import { benchFleet } from "./fleet-load.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const LEVELS = [1, 64, 1000];
const BUDGET_MS = Number(process.env.BUDGET_MS ?? 60_000);

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

async function startOurs(dir: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(join(ROOT, "bin", "mandos"), ["--foreground", "--debuglevel", "INFO", "--no-dbus", "--no-zeroconf", "--configdir", dir, "--statedir", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stderr!.on("data", (d: Buffer) => (out += d));
  child.stdout!.resume();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /port (\d+)/.exec(out);
    if (m) return { port: Number(m[1]), child };
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`our server did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
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

  if (process.argv.includes("--etcd")) {
    await benchFleet(work, section, "fleet", creds, expected);
    creds.dispose();
    rmSync(work, { recursive: true, force: true });
    process.exit(0); // the local-state benchmarks are the other mode
  }
  const bare = await bareHandshakes(creds, 200);
  console.log(`bare GnuTLS handshake (both ends, one process): ${bare.toFixed(2)} ms CPU -> limit ~${(2000 / bare).toFixed(0)} handshakes/s on 2 cores`);

  const ourDir = join(work, "ours");
  mkdirSync(ourDir);
  const who = unprivilegedIdentity();
  chownSync(ourDir, who.uid, who.gid);
  writeFileSync(join(ourDir, "clients.conf"), section);
  // The whole fleet connects from ::1 here: lift the per-address cap (64 by
  // default) to the global one, or the 1,000-connection level would measure refusals.
  writeFileSync(join(ourDir, "mandos.conf"), "[DEFAULT]\naddress = ::1\nport = 0\nmax_connections_per_address = 4096\n");
  const ours = await startOurs(ourDir);
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
  const big = results.get("ours1000")!;
  const p99 = percentile(big.latenciesMs, 99);
  console.log(`ours at c=1000: ${big.served}/1000 served, p99 ${p99.toFixed(0)} ms (target: all served, p99 < 2000 ms: ${big.served >= 1000 && big.failed === 0 && p99 < 2000 ? "met" : "NOT met"})`);
  creds.dispose();
} finally {
  rmSync(work, { recursive: true, force: true });
}
