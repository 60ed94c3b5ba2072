// The checker launcher (see checker-launcher.ts), started by the server as
// root with the checker user's uid and gid: it drops to them before
// anything else, then runs checkers for the server until the server goes.
import { CheckerRunner } from "./checker.js";
import { parseRequest, type LauncherReport } from "./checker-launcher.js";
import { dropPrivilegesTo } from "../sys/privileges.js";

function report(m: LauncherReport): void {
  if (process.connected) process.send!(m);
}

function fail(message: string): never {
  report({ type: "failed", message });
  process.exit(1);
}

const [uidArg, gidArg, show] = process.argv.slice(2);
const uid = Number(uidArg);
const gid = Number(gidArg);
if (!process.send || !Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) {
  process.stderr.write("mandos checker launcher: started by the server only\n");
  process.exit(2);
}
const warn = (message: string) => report({ type: "warning", message });
try {
  // Verified through /proc: every id changed, no groups or capabilities left.
  dropPrivilegesTo({ uid, gid });
} catch (err) {
  fail(`cannot run checkers as uid ${uid}, gid ${gid}: ${(err as Error).message}`);
}

// Stopped by the server (it disconnects, even when killed), not by signals
// sent to everyone, so the server always sees its checkers end.
for (const sig of ["SIGTERM", "SIGHUP", "SIGINT"] as const) process.on(sig, () => {});
const runner = new CheckerRunner({ showOutput: show === "show", warn });
process.on("disconnect", () => {
  runner.killAll();
  process.exit(0);
});
process.on("message", (raw: unknown) => {
  const m = parseRequest(raw);
  if (m === null) return warn("checker launcher: ignored a malformed request");
  if (m.type === "kill") return runner.kill(m.key);
  runner.spawn(m.key, m.command, (result) => report({ type: "exit", key: m.key, result }));
});
report({ type: "ready" });
