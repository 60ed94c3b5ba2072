// mandos-ctl: control or query the Mandos server over D-Bus. Same command
// line and output as Debian's mandos-ctl 1.8.16; errors are one line.
import { VERSION } from "../cli/args.js";
import { CtlBus, ConnectError } from "./bus.js";
import { formatJson, formatTable, type ClientProperties } from "./format.js";
import { CtlUsageError, HELP, USAGE_LINE, checkCtlArgs, commandsToRun, parseCtlArgs, type Command } from "./options.js";
import { ctlSelfTest } from "./selftest.js";
import { pythonRepr } from "../server/timefmt.js";

const err = (msg: string) => process.stderr.write(msg + "\n");

function usageError(msg: string): never {
  err(`${USAGE_LINE}\nmandos-ctl: error: ${msg}`);
  process.exit(2);
}

function dbusErrorText(e: unknown): string {
  const x = e as { type?: string; text?: string; message?: string };
  return x.type ? `${x.type}: ${x.text ?? ""}` : (x.message ?? String(e));
}

async function run(bus: CtlBus, cmd: Command, clients: Map<string, ClientProperties>): Promise<void> {
  switch (cmd.kind) {
    case "table":
      process.stdout.write(formatTable([...clients.values()], cmd.verbose) + "\n");
      return;
    case "dump-json":
      process.stdout.write(formatJson([...clients.values()]) + "\n");
      return;
    case "is-enabled": {
      const first = clients.values().next().value;
      process.exit(first?.get("Enabled") === true ? 0 : 1);
    }
    case "remove":
      for (const path of clients.keys()) await bus.removeClient(path);
      return;
    case "approve":
      for (const path of clients.keys()) await bus.approve(path, cmd.value);
      return;
    case "set":
      for (const path of clients.keys()) await bus.setProperty(path, cmd.property, cmd.type, cmd.value);
      return;
  }
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseCtlArgs(process.argv.slice(2), err);
    if (args.help) {
      process.stdout.write(HELP + "\n");
      return;
    }
    if (args.version) {
      process.stdout.write(`mandos-ctl ${VERSION}\n`);
      return;
    }
    if (args.check) {
      process.exitCode = ctlSelfTest() ? 0 : 1;
      return;
    }
    checkCtlArgs(args);
  } catch (e) {
    if (e instanceof CtlUsageError) usageError(e.message);
    throw e;
  }
  const debug = args.debug ? err : () => {};

  let bus: CtlBus;
  try {
    bus = await CtlBus.connect(debug);
  } catch (e) {
    err(`Could not connect to Mandos server: ${e instanceof ConnectError ? e.message : dbusErrorText(e)}`);
    process.exit(1);
  }
  try {
    let all: Map<string, ClientProperties>;
    try {
      all = await bus.clients();
    } catch (e) {
      err(`Failed to access Mandos server through D-Bus: ${dbusErrorText(e)}`);
      process.exit(1);
    }
    let selected = all;
    if (args.clients.length) {
      selected = new Map();
      for (const name of args.clients) {
        const found = [...all].find(([, p]) => p.get("Name") === name);
        if (!found) {
          err(`Client not found on server: ${pythonRepr(name)}`);
          process.exit(1);
        }
        selected.set(found[0], found[1]);
      }
    }
    for (const cmd of commandsToRun(args)) {
      try {
        await run(bus, cmd, selected);
      } catch (e) {
        err(`mandos-ctl: error: ${dbusErrorText(e)}`);
        process.exit(1);
      }
    }
  } finally {
    bus.close();
  }
}

main().catch((e: unknown) => {
  err(`mandos-ctl: error: ${dbusErrorText(e)}`);
  process.exit(1);
});
