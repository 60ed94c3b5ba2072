// Giving up root, for the server (once its socket is bound) and for the
// client (before it parses network input). A drop is only done when the
// kernel confirms it: all four user and group ids are the target's, no
// supplementary group but its own, no capability in any set, and root
// cannot be regained. Anything less is an error, never a warning.
import { describeErrno, libcFunctions } from "./libc.js";
import { readProcStatus, type ProcStatus } from "./proc-status.js";

export interface Ids {
  uid: number;
  gid: number;
}

export class PrivilegeError extends Error {
  /**
   * True when the very first step was refused for lack of privilege, so the
   * process is exactly as it was: a process that was never root.
   */
  readonly untouched: boolean;

  constructor(message: string, untouched: boolean) {
    super(message);
    this.untouched = untouched;
  }
}

export const isRoot = (): boolean => process.getuid?.() === 0;

const hex = (n: bigint) => `0x${n.toString(16)}`;

/** Pure: why a process with status `s` is not running as exactly `ids` with no privilege left, or null. */
export function privilegeLeft(s: ProcStatus, ids: Ids): string | null {
  if (ids.uid === 0 || ids.gid === 0) return `uid ${ids.uid}, gid ${ids.gid} is root`;
  if (s.uids.length === 0 || s.uids.some((u) => u !== ids.uid)) return `its user ids are ${s.uids.join(" ")}, not all ${ids.uid}`;
  if (s.gids.length === 0 || s.gids.some((g) => g !== ids.gid)) return `its group ids are ${s.gids.join(" ")}, not all ${ids.gid}`;
  if (s.groups.some((g) => g !== ids.gid)) return `it keeps supplementary groups ${s.groups.join(" ")}`;
  if ((s.capInh | s.capPrm | s.capEff | s.capAmb) !== 0n) {
    return `it keeps capabilities (inheritable ${hex(s.capInh)}, permitted ${hex(s.capPrm)}, effective ${hex(s.capEff)}, ambient ${hex(s.capAmb)})`;
  }
  return null;
}

/** Irreversibly become `ids`; throws a one-line PrivilegeError unless the kernel confirms it. */
export function dropPrivilegesTo(ids: Ids): void {
  const { uid, gid } = ids;
  const who = `uid ${uid}, gid ${gid}`;
  if (uid === 0 || gid === 0) throw new PrivilegeError(`refusing to drop privileges to ${who}: that is root`, false);
  let step = "setgroups";
  try {
    process.setgroups!([gid]);
    step = "setgid";
    process.setgid!(gid);
    step = "setuid";
    process.setuid!(uid);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new PrivilegeError(`cannot drop privileges to ${who}: ${step} failed: ${code}`, step === "setgroups" && code === "EPERM");
  }
  let status: ProcStatus;
  try {
    status = readProcStatus();
  } catch (err) {
    throw new PrivilegeError(`cannot check the drop of privileges to ${who}: ${(err as Error).message}`, false);
  }
  const left = privilegeLeft(status, ids);
  if (left) throw new PrivilegeError(`dropped privileges to ${who}, but ${left}`, false);
  let regained = false;
  try {
    process.setuid!(0);
    regained = true;
  } catch {
    // Expected: root is gone.
  }
  if (regained) throw new PrivilegeError(`dropped privileges to ${who}, but root could be regained`, false);
}

const PR_SET_NO_NEW_PRIVS = 38;
const libc = libcFunctions({
  prctl: "int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)",
});

/**
 * From now on no execve() grants privileges (set-user-ID bits and file
 * capabilities are ignored), for this process and all it starts: a
 * process that parses network input can then not regain root through a
 * set-user-ID program either.
 */
export function forbidNewPrivileges(): void {
  const c = libc();
  if (c.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) !== 0) {
    throw new PrivilegeError(`cannot set no_new_privs: ${describeErrno(c.errno())}`, false);
  }
}
