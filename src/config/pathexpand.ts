// File-name expansion for `secfile`, as Mandos does it with Python's
// os.path.expandvars() followed by os.path.expanduser().
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";

export type Environment = Readonly<Record<string, string | undefined>>;

/** Home directory of a user by name, or of the current user for null; null if unknown. */
export type HomeDirLookup = (user: string | null) => string | null;

function envGet(env: Environment, name: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(env, name) ? env[name] : undefined;
}

/**
 * "$NAME" and "${NAME}" are replaced by the variable's value; variables that
 * are not set are left as written. Substituted text is not expanded again.
 */
export function expandVars(path: string, env: Environment): string {
  if (!path.includes("$")) return path;
  const variable = /\$([A-Za-z0-9_]+|\{[^}]*\})/g;
  let out = path;
  let from = 0;
  for (;;) {
    variable.lastIndex = from;
    const m = variable.exec(out);
    if (!m) return out;
    const name = m[1]!.startsWith("{") ? m[1]!.slice(1, -1) : m[1]!;
    const value = envGet(env, name);
    const end = m.index + m[0].length;
    if (value === undefined) {
      from = end;
    } else {
      const head = out.slice(0, m.index) + value;
      out = head + out.slice(end);
      from = head.length;
    }
  }
}

/**
 * "~" and "~/…" become the home directory ($HOME if set), "~user/…" that
 * user's; an unknown user leaves the name as written.
 */
export function expandUser(path: string, env: Environment, homeDir: HomeDirLookup = passwdHomeDir): string {
  if (!path.startsWith("~")) return path;
  let slash = path.indexOf("/", 1);
  if (slash < 0) slash = path.length;
  let home: string | null;
  if (slash === 1) {
    home = envGet(env, "HOME") ?? homeDir(null);
  } else {
    home = homeDir(path.slice(1, slash));
  }
  if (home === null) return path;
  return home.replace(/\/+$/, "") + path.slice(slash) || "/";
}

/**
 * Home directories from /etc/passwd (the current user's from the system).
 * Other name services are not consulted; Mandos's users live in local files.
 */
export function passwdHomeDir(user: string | null): string | null {
  if (user === null) {
    try {
      return userInfo().homedir;
    } catch {
      return null;
    }
  }
  let passwd: string;
  try {
    passwd = readFileSync("/etc/passwd", "utf8");
  } catch {
    return null;
  }
  for (const line of passwd.split("\n")) {
    const fields = line.split(":");
    if (fields.length >= 7 && fields[0] === user) return fields[5]!;
  }
  return null;
}
