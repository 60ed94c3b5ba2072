// The configuration reader (see config-reader.ts), started as root by the
// server with the server's own arguments: it reads mandos.conf and
// clients.conf whenever the server asks, and exits when the server goes.
import { isDeepStrictEqual } from "node:util";
import { jsonLineChannel } from "../protocol/json-lines.js";
import { protectMemory } from "../sys/no-core.js";
import { encodeResult, MAX_REQUEST_BYTES, READ_REQUEST, readConfiguration, readerChannelSocket, type ReadResult } from "./config-reader.js";
import { parseServerArgs } from "./options.js";

const fail = (why: string): never => {
  process.stderr.write(`mandos configuration reader: ${why}\n`);
  process.exit(2);
};

// It holds every secret after a read.
protectMemory();
let args;
try {
  args = parseServerArgs(process.argv.slice(2));
} catch (err) {
  fail((err as Error).message);
}
// Stopped by the server going (the channel closes), not by signals sent to the group.
for (const sig of ["SIGTERM", "SIGHUP", "SIGINT"] as const) process.on(sig, () => {});

const channel = jsonLineChannel(readerChannelSocket(), MAX_REQUEST_BYTES, {
  message(m) {
    // Anything but the one request: the server is not itself; stop serving it.
    if (!isDeepStrictEqual(m, READ_REQUEST)) return fail("the server sent something other than a read request");
    let result: ReadResult;
    try {
      result = readConfiguration(args!);
    } catch (err) {
      result = { problem: `reading the configuration failed: ${(err as Error).message}` };
    }
    channel.send(encodeResult(result));
    if (!("problem" in result)) for (const c of result.clients) c.secret.fill(0);
  },
  invalid: (reason) => fail(`the server sent ${reason}`),
  closed: () => process.exit(0),
});
