// A real 3-member etcd cluster (Debian's etcd-server) on free loopback
// ports in a temporary directory, for the fleet tests and the benchmark:
//
//   const cluster = await startEtcd(dir);       // waits for a leader
//   cluster.endpoints                           // ["http://127.0.0.1:N", ...]
//   await cluster.kill(1); await cluster.restart(1);
//   await cluster.heal();                       // every member started again; a write went through
//   await cluster.stop();
//
// Members run with short heartbeat and election times so that a member
// killed or restarted is noticed in well under a second.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { requires } from "./index.js";
import { freePort } from "./server.js";

export const ETCD = "/usr/bin/etcd";
export const ETCDCTL = "/usr/bin/etcdctl";

/** Reason to skip without Debian's etcd packages. */
export const etcdMissing = (): string | false => requires({ files: [ETCD, ETCDCTL] });

interface Member {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  proc: ChildProcess | null;
  log: string;
}

export interface EtcdCluster {
  endpoints: string[];
  /** kill -9 one member (0-2). */
  kill(i: number): Promise<void>;
  /** Start a killed member again with its data. */
  restart(i: number): Promise<void>;
  /** Start every member that is not running again and wait until the cluster takes writes. */
  heal(): Promise<void>;
  /** An etcd3 client to the whole cluster (closed by stop()). */
  client(): Etcd3;
  /** Resolves once a write through the cluster succeeds. */
  ready(timeoutMs?: number): Promise<void>;
  /** Process ids of the running members. */
  pids(): number[];
  /** What each member logged, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

export async function startEtcd(dir: string, size = 3): Promise<EtcdCluster> {
  mkdirSync(dir, { recursive: true });
  const members: Member[] = [];
  for (let i = 0; i < size; i++) {
    members.push({
      name: `m${i}`,
      clientUrl: `http://127.0.0.1:${await freePort("127.0.0.1")}`,
      peerUrl: `http://127.0.0.1:${await freePort("127.0.0.1")}`,
      dataDir: join(dir, `m${i}`),
      proc: null,
      log: "",
    });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  const token = `mandos-test-${process.pid}-${Date.now()}`;
  const launch = (m: Member) => {
    const proc = spawn(
      ETCD,
      [
        `--name=${m.name}`,
        `--data-dir=${m.dataDir}`,
        `--listen-client-urls=${m.clientUrl}`,
        `--advertise-client-urls=${m.clientUrl}`,
        `--listen-peer-urls=${m.peerUrl}`,
        `--initial-advertise-peer-urls=${m.peerUrl}`,
        `--initial-cluster=${initialCluster}`,
        "--initial-cluster-state=new",
        `--initial-cluster-token=${token}`,
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--logger=zap",
        "--log-level=warn",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    proc.stderr!.on("data", (d: Buffer) => (m.log = (m.log + d.toString()).slice(-20_000)));
    m.proc = proc;
  };
  const endOf = (m: Member) =>
    new Promise<void>((resolve) => {
      if (!m.proc || m.proc.exitCode !== null || m.proc.signalCode !== null) return resolve();
      m.proc.once("exit", () => resolve());
    });
  for (const m of members) launch(m);
  const clients: Etcd3[] = [];
  const cluster: EtcdCluster = {
    endpoints: members.map((m) => m.clientUrl),
    kill: async (i) => {
      const m = members[i]!;
      m.proc?.kill("SIGKILL");
      await endOf(m);
      m.proc = null;
    },
    restart: async (i) => {
      const m = members[i]!;
      if (m.proc) throw new Error(`etcd member ${m.name} is running`);
      launch(m);
    },
    heal: async () => {
      for (const m of members) if (!m.proc || m.proc.exitCode !== null || m.proc.signalCode !== null) launch(m);
      await cluster.ready();
    },
    client: () => {
      const c = new Etcd3({ hosts: members.map((m) => m.clientUrl), dialTimeout: 2000 });
      clients.push(c);
      return c;
    },
    ready: async (timeoutMs = 20_000) => {
      const c = new Etcd3({ hosts: members.filter((m) => m.proc).map((m) => m.clientUrl), dialTimeout: 1000 });
      const deadline = Date.now() + timeoutMs;
      try {
        for (;;) {
          try {
            await c.put("/mandos-test-ready").value("1").options({ deadline: Date.now() + 1000 });
            return;
          } catch (err) {
            if (Date.now() > deadline) throw new Error(`etcd cluster not ready: ${(err as Error).message}\n${cluster.logs()}`);
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      } finally {
        c.close();
      }
    },
    pids: () => members.flatMap((m) => (m.proc?.pid ? [m.proc.pid] : [])),
    logs: () => members.map((m) => `--- ${m.name}\n${m.log}`).join("\n"),
    stop: async () => {
      for (const c of clients) c.close();
      for (const m of members) m.proc?.kill("SIGKILL");
      await Promise.all(members.map(endOf));
    },
  };
  try {
    await cluster.ready();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
