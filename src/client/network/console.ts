// Keeping the console quiet while interfaces come up: bringing an interface
// up makes the kernel print link messages (KERN_INFO) that would garble a
// password prompt another program shows on the console. Mandos lowers the
// console log level to KERN_NOTICE (5) around that step; so do we, via
// /proc/sys/kernel/printk (its first field is the console log level), and
// only ever lower it: a console set quieter than 5 stays as it is (Mandos
// would raise it to 5 there, letting warnings through).
import { readFile, writeFile } from "node:fs/promises";

export const PRINTK = "/proc/sys/kernel/printk";

/** Messages below this level reach the console while quiet: KERN_NOTICE and quieter are held back. */
export const QUIET_CONSOLE_LEVEL = 5;

/** The console log level from the printk file ("7\t4\t1\t7\n" → 7), or null if unreadable. */
export function parseConsoleLevel(text: string): number | null {
  const first = text.trim().split(/\s+/)[0];
  if (first === undefined || !/^\d+$/.test(first)) return null;
  return Number(first);
}

/** The level to set while quiet, or null to leave the console alone. */
export function quietLevelFor(current: number | null): number | null {
  if (current === null || current <= QUIET_CONSOLE_LEVEL) return null;
  return QUIET_CONSOLE_LEVEL;
}

/**
 * Lower the console log level if it is noisier than KERN_NOTICE; returns a
 * function restoring the previous level (a no-op if nothing was changed).
 * Only root can write the file; failure to read or write is not an error
 * (the console is merely noisier), reported through `onError` if given.
 */
export async function quietConsole(
  path: string = PRINTK,
  onError?: (message: string) => void,
): Promise<() => Promise<void>> {
  let previous: number | null;
  try {
    previous = parseConsoleLevel(await readFile(path, "utf8"));
  } catch (err) {
    onError?.(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return async () => {};
  }
  const level = quietLevelFor(previous);
  if (level === null || previous === null) return async () => {};
  try {
    // Writing one number sets only the console level, the other fields stay.
    await writeFile(path, `${level}\n`);
  } catch (err) {
    onError?.(`cannot lower the console log level: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return async () => {};
  }
  let restored = false;
  const old = previous;
  return async () => {
    if (restored) return;
    restored = true;
    try {
      await writeFile(path, `${old}\n`);
    } catch (err) {
      onError?.(`cannot restore the console log level: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
}
