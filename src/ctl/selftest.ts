// "mandos-ctl --check": a quick self-test of the parts that decide output.
import { formatJson, formatTable, millisecondsToString } from "./format.js";
import { parseTime } from "./options.js";

export function ctlSelfTest(write: (line: string) => void = (l) => process.stdout.write(l + "\n")): boolean {
  const client = new Map<string, string | number | boolean>([
    ["Name", "foo"],
    ["Enabled", true],
    ["Timeout", 300_000],
    ["LastCheckedOK", ""],
  ]);
  const checks: [string, boolean][] = [
    ["durations", millisecondsToString(90_061_000) === "1T01:01:01" && millisecondsToString(0) === "00:00:00"],
    ["RFC 3339 time", parseTime("PT5M", () => {}) === 300_000],
    ["pre-1.6.1 time", parseTime("5m 30s", () => {}) === 330_000],
    [
      "table",
      formatTable([client], false) ===
        "Name Enabled Timeout  Last Successful Check\nfoo  Yes     00:05:00                      ",
    ],
    ["json", formatJson([]) === "{}"],
  ];
  let ok = true;
  for (const [what, passed] of checks) {
    write(`${passed ? "ok" : "FAILED"}: ${what}`);
    ok &&= passed;
  }
  return ok;
}
