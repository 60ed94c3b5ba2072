// Dropping root. The process that parses network input never keeps it:
// either we drop it for good in this process (nothing privileged is left to
// do), or a root supervisor keeps it and runs the network part as a child
// under the unprivileged user (see docs/design.md).

/** The user and group the network part runs as (Mandos's default: 65534). */
export function unprivilegedIds(env: NodeJS.ProcessEnv): { uid: number; gid: number } {
  const num = (name: string) => {
    const v = env[name];
    if (v === undefined || v === "") return 65534;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a numeric id, got ${JSON.stringify(v)}`);
    return n;
  };
  return { uid: num("MANDOS_CLIENT_UID"), gid: num("MANDOS_CLIENT_GID") };
}

export const isRoot = () => process.getuid?.() === 0;

/** Irreversibly become uid/gid, and check that root cannot be regained. */
export function dropPrivilegesForGood(uid: number, gid: number): void {
  process.setgroups?.([gid]);
  process.setgid?.(gid);
  process.setuid?.(uid);
  if (process.getuid?.() !== uid || process.geteuid?.() !== uid) throw new Error("could not drop privileges");
  if (uid !== 0) {
    let regained = false;
    try {
      process.setuid?.(0);
      regained = true;
    } catch {
      // expected: root is gone
    }
    if (regained) throw new Error("privileges could be regained after dropping them");
  }
}
