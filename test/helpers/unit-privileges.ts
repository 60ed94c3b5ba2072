// What units/ask-password-mandos.service gives the password agent, as
// setpriv(1) arguments that reproduce it without systemd: the capability
// bounding set (systemd runs a root service with exactly those
// capabilities), no inheritable or ambient ones (the unit asks for none),
// and no_new_privs. Tests run the agent under them and look at what the
// client it starts holds.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./index.js";
import { unitSettings } from "./integration.js";

/** Capability numbers (linux/capability.h) of the names the unit may use. */
const CAP_NUMBERS: Record<string, number> = {
  CAP_DAC_OVERRIDE: 1,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
};

export interface ServicePrivileges {
  /** Every setting line of the unit. */
  settings: string[];
  bounding: string[];
  /** The bounding set as the mask /proc/PID/status shows. */
  boundingMask: bigint;
  noNewPrivileges: boolean;
  /** setpriv arguments to put before the program. */
  setpriv: string[];
}

export function agentServicePrivileges(): ServicePrivileges {
  const settings = unitSettings(readFileSync(join(ROOT, "units", "ask-password-mandos.service"), "utf8"));
  const value = (key: string) => settings.find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1).trim();
  const bounding = (value("CapabilityBoundingSet") ?? "").split(/\s+/).filter(Boolean);
  assert.ok(bounding.length > 0, "CapabilityBoundingSet= in the unit");
  const boundingMask = bounding.reduce((m, c) => {
    assert.ok(c in CAP_NUMBERS, `capability ${c} known to the test`);
    return m | (1n << BigInt(CAP_NUMBERS[c]!));
  }, 0n);
  const noNewPrivileges = value("NoNewPrivileges") === "yes";
  const names = bounding.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`).join(",");
  return {
    settings,
    bounding,
    boundingMask,
    noNewPrivileges,
    setpriv: [
      "--bounding-set", `-all,${names}`,
      "--inh-caps", "-all",
      "--ambient-caps", "-all",
      ...(noNewPrivileges ? ["--no-new-privs"] : []),
    ],
  };
}
