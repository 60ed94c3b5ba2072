// password-agent: answer systemd password questions with the secret the
// Mandos client fetches (see man/password-agent.8mandos).
import { UsageError, VERSION } from "../cli/args.js";
import { makeLogger } from "../cli/log.js";
import { PasswordAgent } from "./agent.js";
import { monotonicMicros, processAlive } from "./host.js";
import { HELP, parseAgentArguments, USAGE } from "./options.js";

const PROGRAM = "password-agent";
/** sysexits EX_USAGE, as Mandos 1.8's agent. */
const EXIT_USAGE = 64;

async function main(): Promise<number> {
  let invocation;
  try {
    invocation = parseAgentArguments(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${PROGRAM}: ${err.message}\nTry '${PROGRAM} --help' or '${PROGRAM} --usage' for more information.\n`);
    return EXIT_USAGE;
  }
  switch (invocation.kind) {
    case "help":
      process.stdout.write(HELP);
      return 0;
    case "usage":
      process.stdout.write(USAGE);
      return 0;
    case "version":
      process.stdout.write(`${PROGRAM} ${VERSION}\n`);
      return 0;
  }
  const agent = new PasswordAgent(invocation.options, {
    log: makeLogger(PROGRAM),
    monotonicMicros,
    processAlive,
    uid: process.getuid?.() ?? 0,
  });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => agent.quit());
  return agent.run();
}

// No top-level await: the boot bundle (scripts/bundle.ts) is CommonJS.
main().then((code) => process.exit(code));
