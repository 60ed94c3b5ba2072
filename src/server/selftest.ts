// "mandos --check": a quick self-test of the timing rules with a fake
// clock, so an installed server can show that its core logic is sound.
import { ClientModel, type ClientRecord } from "./client-model.js";
import { isoTimestamp } from "./timefmt.js";

export function selfTest(write: (line: string) => void = (l) => process.stdout.write(l + "\n")): boolean {
  const record: ClientRecord = {
    name: "selftest", keyId: "AB", fingerprint: "", host: "localhost", checker: "true",
    timeoutMs: 300_000, extendedTimeoutMs: 900_000, intervalMs: 120_000,
    approvalDelayMs: 0, approvalDurationMs: 1000, approvedByDefault: true,
    secret: Buffer.from("x"), enabled: true, created: 0, lastEnabled: 0,
    lastCheckedOK: null, lastCheckerStatus: -2, lastCheckerSignal: null,
    lastApprovalRequest: null, expires: 300_000,
  };
  const m = new ClientModel(record, { random: () => 0.5 });
  const checks: [string, boolean][] = [];
  m.startup(0);
  checks.push(["first checker after half an interval", m.nextCheckerTime === 60_000]);
  m.tick(60_000);
  const spawn = m.takeEffects().find((e) => e.type === "spawnChecker");
  checks.push(["checker started", spawn !== undefined && m.checkerRunning]);
  if (spawn?.type === "spawnChecker") m.checkerExited(61_000, spawn.checkerId, { code: 0 });
  checks.push(["success bumps expiry", record.expires === 361_000 && record.lastCheckerStatus === 0]);
  m.tick(361_000);
  checks.push(["timeout disables", !record.enabled && record.expires === null]);
  checks.push(["time format", isoTimestamp(0) === "1970-01-01T00:00:00.000000"]);
  let ok = true;
  for (const [what, passed] of checks) {
    write(`${passed ? "ok" : "FAILED"}: ${what}`);
    ok &&= passed;
  }
  return ok;
}
