// Dropping root. The process that parses network input never keeps it:
// either we drop it for good in this process (nothing privileged is left to
// do), or a root supervisor keeps it and runs the network part as a child
// under the unprivileged user (see docs/design.md). Either way that
// process checks with the kernel that it holds no privilege, and sets
// no_new_privs so that no program it runs can grant it any.
import { dropPrivilegesTo, forbidNewPrivileges, privilegeLeft, type Ids } from "../sys/privileges.js";
import { readProcStatus } from "../sys/proc-status.js";

/** The largest id: (uid_t)-1 means "unchanged" to the kernel. */
const MAX_ID = 0xfffffffe;

/** The user and group the network part runs as (Mandos's default: 65534); never root. */
export function unprivilegedIds(env: NodeJS.ProcessEnv): Ids {
  const num = (name: string) => {
    const v = env[name];
    if (v === undefined || v === "") return 65534;
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || n < 1 || n > MAX_ID) {
      throw new Error(`${name} must be a numeric id from 1 to ${MAX_ID} (not root), got ${JSON.stringify(v)}`);
    }
    return n;
  };
  return { uid: num("MANDOS_CLIENT_UID"), gid: num("MANDOS_CLIENT_GID") };
}

/** Irreversibly become `ids` (verified), in a process that will parse network input. */
export function dropPrivilegesForGood(ids: Ids): void {
  dropPrivilegesTo(ids);
  forbidNewPrivileges();
}

/** For a network part started unprivileged (by the supervisor, or by the password agent): make sure of it. */
export function confirmUnprivileged(): void {
  forbidNewPrivileges();
  const left = privilegeLeft(readProcStatus(), { uid: process.getuid!(), gid: process.getgid!() });
  if (left) throw new Error(`the network part is not unprivileged: ${left}`);
}
