// A process's identity and privileges as the kernel reports them in
// /proc/PID/status: all four user and group ids (real, effective, saved,
// file system), supplementary groups, the capability sets and the
// no_new_privs flag. Node reports only the real and effective ids.
import { readFileSync } from "node:fs";

export interface ProcStatus {
  /** Real, effective, saved, file system. */
  uids: number[];
  gids: number[];
  groups: number[];
  capInh: bigint;
  capPrm: bigint;
  capEff: bigint;
  capAmb: bigint;
  capBnd: bigint;
  noNewPrivs: boolean;
}

/** Pure: parse the text of /proc/PID/status; throws naming a missing field. */
export function parseProcStatus(text: string): ProcStatus {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const field = (name: string): string => {
    const v = fields.get(name);
    if (v === undefined) throw new Error(`process status has no ${name} field`);
    return v;
  };
  const ids = (name: string) => (field(name) === "" ? [] : field(name).split(/\s+/).map(Number));
  const caps = (name: string) => BigInt(`0x${field(name)}`);
  return {
    uids: ids("Uid"),
    gids: ids("Gid"),
    groups: ids("Groups"),
    capInh: caps("CapInh"),
    capPrm: caps("CapPrm"),
    capEff: caps("CapEff"),
    capAmb: caps("CapAmb"),
    capBnd: caps("CapBnd"),
    noNewPrivs: field("NoNewPrivs") === "1",
  };
}

export function readProcStatus(pid: number | "self" = "self"): ProcStatus {
  return parseProcStatus(readFileSync(`/proc/${pid}/status`, "utf8"));
}
