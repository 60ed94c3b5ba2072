// mandos-client: get the password from a Mandos server, print it.
import { makeLogger, errorMessage } from "../cli/log.js";
import { UsageError } from "../cli/args.js";
import { parseClientOptions } from "./options.js";
import { KeyFileError } from "../sys/key-file.js";
import { runClient } from "./program.js";

const EX_USAGE = 64;
const EX_CONFIG = 78;

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseClientOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`mandos-client: ${errorMessage(err)}\nTry 'mandos-client --help'.\n`);
    return EX_USAGE;
  }
  const log = makeLogger("mandos-client", { level: opts.debug ? "debug" : "info" });
  try {
    return await runClient(opts, log);
  } catch (err) {
    log.error(errorMessage(err));
    return err instanceof KeyFileError || err instanceof UsageError ? EX_CONFIG : 1;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mandos-client: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
