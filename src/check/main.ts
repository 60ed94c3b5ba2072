// mandos-check: would this machine unlock unattended if it rebooted now?
// See mandos-check(8).
import { errorMessage } from "../cli/log.js";
import { parseCheckOptions } from "./options.js";
import { EXIT, runCheck } from "./check.js";

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseCheckOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`mandos-check: ${errorMessage(err)}\nTry 'mandos-check --help'.\n`);
    return EXIT.usage;
  }
  const debug = opts.debug ? (line: string) => process.stderr.write(`mandos-check: ${line}\n`) : () => {};
  return runCheck(opts, (line) => process.stdout.write(`${line}\n`), debug);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mandos-check: ${errorMessage(err)}\n`);
    process.exit(EXIT.error);
  },
);
