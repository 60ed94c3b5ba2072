// Reading a configuration file as text, refusing bytes that are not UTF-8
// (Python, which Mandos runs on, would stop with a decoding error too).
import { readFileSync } from "node:fs";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The file's text; throws an Error whose message says what is wrong. */
export function readConfigText(path: string): string {
  const bytes = readFileSync(path);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new Error("not valid UTF-8 text");
  }
}
