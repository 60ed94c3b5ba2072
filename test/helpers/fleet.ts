// Three of our servers sharing client state through a real etcd cluster
// (helpers/etcd.ts), each with its own private system bus, configuration
// and state directory, all on loopback.
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { EtcdCluster } from "./etcd.js";
import { serverWritableDir, startBus, startServer, writeConfig, type PrivateBus, type RunningServer } from "./server.js";

export interface FleetMember {
  name: string;
  bus: PrivateBus;
  configDir: string;
  stateDir: string;
  server: RunningServer;
  /** Start the server again (after kill9/stop) on a new port. */
  restart(): Promise<void>;
}

export interface FleetOptions {
  cluster: EtcdCluster;
  dir: string;
  clients: string;
  /** A fresh prefix per test keeps tests apart in one cluster. */
  prefix: string;
  graceS?: number;
  leaseTtlS?: number;
  count?: number;
  /** More mandos.conf lines. */
  extra?: string;
}

export function fleetConf(o: Pick<FleetOptions, "cluster" | "prefix" | "graceS" | "leaseTtlS">): string {
  return (
    `etcd_endpoints = ${o.cluster.endpoints.join(" ")}\n` +
    `etcd_prefix = ${o.prefix}\n` +
    `etcd_grace = ${o.graceS ?? 3}s\n` +
    `etcd_lease_ttl = ${o.leaseTtlS ?? 2}s\n`
  );
}

export async function startFleet(o: FleetOptions): Promise<FleetMember[]> {
  mkdirSync(o.dir, { recursive: true });
  chmodSync(o.dir, 0o755);
  const names = ["A", "B", "C", "D", "E"].slice(0, o.count ?? 3);
  const members: FleetMember[] = [];
  for (const name of names) {
    const bus = startBus(join(o.dir, `bus-${name}`));
    const configDir = writeConfig(join(o.dir, `conf-${name}`), { clients: o.clients, port: 0, extra: fleetConf(o) + (o.extra ?? "") });
    const stateDir = serverWritableDir(join(o.dir, `state-${name}`));
    const start = () => startServer({ configDir, stateDir, env: bus.env });
    const member: FleetMember = {
      name,
      bus,
      configDir,
      stateDir,
      server: await start(),
      restart: async () => {
        member.server = await start();
      },
    };
    members.push(member);
  }
  return members;
}

export async function stopFleet(members: readonly FleetMember[]): Promise<void> {
  await Promise.all(members.map((m) => m.server.stop()));
  for (const m of members) m.bus.stop();
}
