// trim-icu NODE [OUTPUT]: writes NODE with English-only ICU data to OUTPUT
// (default: NODE itself, replaced by a rename, never written through), if
// the result passes its self-test. The dracut module 90mandos-ts runs it,
// under the building host's node, on the image's copy of node. On success
// it prints one line of figures; on any failure one line saying why, on
// stderr, exit status 1, and OUTPUT is left as it was.
import { errorMessage } from "../cli/log.js";
import { trimIcuFile } from "./trim-icu.js";

const MB = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

async function main(args: string[]): Promise<number> {
  const [input, output = input] = args;
  if (input === undefined || args.length > 2) {
    process.stderr.write("usage: trim-icu NODE [OUTPUT]\n");
    return 2;
  }
  const t = await trimIcuFile(input, output);
  const zeros = t.dropped > 0 ? `${MB(t.dropped)} of zeros left out of the file` : `zeros kept in the file (${t.whyNotDropped})`;
  process.stdout.write(
    `${output}: ICU data ${t.symbol} ${MB(t.before)} -> ${MB(t.after)} (English only: ${t.kept} items kept, ${t.removed} removed); ${zeros}; self-test passed\n`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`trim-icu: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
