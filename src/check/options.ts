// mandos-check's command line: every path it reads can be pointed
// elsewhere (tests, or checking a mounted system image), defaulting to
// the running system's.
import { release } from "node:os";
import { realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { UsageError, numberOption, parseCommandLine } from "../cli/args.js";

export interface CheckOptions {
  /** null: the first of KEY_DIRS that exists, as the dracut module does. */
  keyDir: string | null;
  crypttab: string;
  bootDir: string;
  cmdline: string;
  kernelRelease: string;
  client: string;
  waitSeconds: number;
  debug: boolean;
}

export const USAGE = `Usage: mandos-check [OPTION...]
Tell whether this machine would unlock its disks unattended, through
Mandos, if it rebooted now. Run as root.

      --key-dir=DIR         the client keys the initramfs takes
                            (/etc/keys/mandos, else /etc/mandos/keys)
      --crypttab=FILE       the devices (/etc/crypttab)
      --boot-dir=DIR        the kernels and initramfs images (/boot)
      --cmdline=FILE        the kernel command line (/proc/cmdline)
      --kernel-release=VER  the running kernel (uname -r)
      --client=PROGRAM      the mandos-client to run (the one installed
                            beside this program)
      --wait=SECONDS        how long to wait for servers and answers (30)
      --debug               show the client's progress on standard error
  -?, --help                give this help list
  -V, --version             print program version
`;

const OPTIONS = {
  "key-dir": { type: "string" },
  crypttab: { type: "string" },
  "boot-dir": { type: "string" },
  cmdline: { type: "string" },
  "kernel-release": { type: "string" },
  client: { type: "string" },
  wait: { type: "string" },
  debug: { type: "boolean" },
} as const;

/** Our own mandos-client: the launcher beside this program's (bin/, or /usr/lib/mandos-ts). */
function siblingClient(): string {
  return join(dirname(realpathSync(process.argv[1]!)), "mandos-client");
}

export function parseCheckOptions(argv: string[]): CheckOptions {
  const { values } = parseCommandLine({ name: "mandos-check", usage: USAGE, versionShort: "V" }, OPTIONS, argv);
  const waitSeconds = numberOption("wait", values.wait, 30);
  if (waitSeconds <= 0 || waitSeconds > 86_400) throw new UsageError("--wait must be more than 0 and at most 86400 seconds");
  return {
    keyDir: values["key-dir"] ?? null,
    crypttab: values.crypttab ?? "/etc/crypttab",
    bootDir: values["boot-dir"] ?? "/boot",
    cmdline: values.cmdline ?? "/proc/cmdline",
    kernelRelease: values["kernel-release"] ?? release(),
    client: values.client ?? siblingClient(),
    waitSeconds,
    debug: values.debug ?? false,
  };
}
