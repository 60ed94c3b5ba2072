// Reading a key file, as the client and mandos-keygen do: all of it, but
// never more than the limit, and one line naming the file on any failure.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { KeyFileError, MAX_KEY_FILE_BYTES, readKeyFile } from "../../src/sys/key-file.js";
import { tempDir } from "../helpers/index.js";

test("readKeyFile: the content, or a one-line KeyFileError naming the file", () => {
  using dir = tempDir();
  const file = (name: string, content: string | Buffer) => {
    const path = join(dir.path, name);
    writeFileSync(path, content);
    return path;
  };
  assert.equal(readKeyFile(file("key", "KEY DATA\n"), "--pubkey file").toString(), "KEY DATA\n");
  const largest = Buffer.alloc(MAX_KEY_FILE_BYTES, 0x41);
  assert.ok(readKeyFile(file("largest", largest), "key file").equals(largest), "exactly the limit is accepted");
  const cases: [() => unknown, string][] = [
    [() => readKeyFile(join(dir.path, "nope"), "key file", "make keys first"), `cannot read key file ${dir.path}/nope: no such file (make keys first)`],
    [() => readKeyFile(join(dir.path, "nope"), "--seckey file"), `cannot read --seckey file ${dir.path}/nope: no such file`],
    [() => readKeyFile(dir.path, "--pubkey file"), `cannot read --pubkey file ${dir.path}: EISDIR`],
    [() => readKeyFile(file("empty", ""), "--pubkey file"), `--pubkey file ${dir.path}/empty is empty`],
    [() => readKeyFile(file("big", Buffer.alloc(MAX_KEY_FILE_BYTES + 1)), "key file"), `key file ${dir.path}/big is too large (over ${MAX_KEY_FILE_BYTES} bytes)`],
    // A device without end: read up to the limit, not forever.
    [() => readKeyFile("/dev/zero", "--seckey file"), `--seckey file /dev/zero is too large (over ${MAX_KEY_FILE_BYTES} bytes)`],
  ];
  for (const [f, message] of cases) assert.throws(f, (err: unknown) => err instanceof KeyFileError && err.message === message);
});
