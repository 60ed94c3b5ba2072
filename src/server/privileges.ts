// Like Mandos, the server gives up root once its socket is bound: it runs,
// and so do its checkers, as the first of _mandos, mandos or nobody that
// exists (uid/gid 65534 otherwise). Unlike Mandos, root's supplementary
// groups are dropped too, and the drop is verified (src/sys/privileges.ts):
// a server started as root that cannot drop does not start. Not being root
// to begin with is not an error, as for Mandos.
import { readFileSync } from "node:fs";
import type { Logger } from "../cli/log.js";
import { PrivilegeError, dropPrivilegesTo, isRoot } from "../sys/privileges.js";

const CANDIDATES: readonly [string, string][] = [
  ["_mandos", "_mandos"],
  ["mandos", "mandos"],
  ["nobody", "nogroup"],
];

function idOf(file: string, name: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields[0] === name && fields.length >= 3) {
      const id = Number(fields[2]);
      if (Number.isInteger(id) && id >= 0) return id;
    }
  }
  return undefined;
}

export interface Identity {
  user: string | null;
  uid: number;
  gid: number;
}

/** The identity to run as: _mandos, mandos, nobody, or 65534. */
export function unprivilegedIdentity(passwd = "/etc/passwd", group = "/etc/group"): Identity {
  for (const [user, grp] of CANDIDATES) {
    const uid = idOf(passwd, user);
    const gid = idOf(group, grp);
    if (uid !== undefined && gid !== undefined) return { user, uid, gid };
  }
  return { user: null, uid: 65534, gid: 65534 };
}

/**
 * Switch to the unprivileged identity. Only a process that was never root
 * and could change nothing is let off with a warning; every other failure
 * throws (see dropPrivilegesTo).
 */
export function dropPrivileges(log: Logger, who: Identity = unprivilegedIdentity()): void {
  const { uid, gid } = who;
  if (process.getuid?.() === uid && process.getgid?.() === gid) return;
  try {
    dropPrivilegesTo(who);
    log.debug(`Did setuid/setgid to ${uid}:${gid}`);
  } catch (err) {
    if (!(err instanceof PrivilegeError && err.untouched) || isRoot()) throw err;
    log.warning(`Failed to setuid/setgid to ${uid}:${gid}: Operation not permitted`);
  }
}
