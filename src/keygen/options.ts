// Command line of mandos-keygen: the same options as Debian's, parsed into
// a plan. Pure apart from the default key name, which is passed in.
import { parseArgs } from "node:util";
import { UsageError } from "../cli/args.js";
import { MAX_THRESHOLD } from "../shares/format.js";

export const DEFAULT_KEYDIR = "/etc/keys/mandos";
export const FALLBACK_KEYDIR = "/etc/mandos/keys";

export const USAGE = `Usage: mandos-keygen [ -v | --version ]
       mandos-keygen [ -h | --help ]
   Make new keys:
       mandos-keygen [ OPTIONS ]
   Make an encrypted password (a clients.conf section):
       mandos-keygen { -p | --password } [ --name NAME ] [ --dir DIR ] [ --no-ssh ]
       mandos-keygen { -F | --passfile } FILE [ --name NAME ] [ --dir DIR ] [ --no-ssh ]
       (either with --threshold K --shares N: N sections, K of them unlock)

Options for making keys:
  -d DIR, --dir DIR       Directory for the key files
                          (default /etc/keys/mandos, else /etc/mandos/keys)
  -t TYPE, --type TYPE    OpenPGP primary key type: EDDSA (default), ECDSA or RSA
  -l BITS, --length BITS  Primary key length: RSA 2048-8192 (default 4096),
                          ECDSA 256, 384 or 521 (default 256)
  -s TYPE, --subtype TYPE OpenPGP encryption subkey type: ECDH (default) or RSA
  -L BITS, --sublength BITS
                          Subkey length: RSA 2048-8192 (default 4096),
                          ECDH 255 (Curve25519), 256, 384 or 521
  -n NAME, --name NAME    Name of the key (default: this host's FQDN)
  -e ADDRESS, --email ADDRESS
                          Email address of the OpenPGP key (default none)
  -c TEXT, --comment TEXT Comment of the OpenPGP key (default none)
  -x TIME, --expire TIME  When the OpenPGP key expires, as gpg reads it:
                          0 (never; default), N days, Nw, Nm, Ny, or a date
  -T TYPE, --tls-keytype TYPE
                          TLS key type: ed25519 (default), ed448, ecdsa,
                          rsa or rsa-pss
  -f, --force             Replace existing key files (old ones are kept
                          as FILE.~N~)

Options for making an encrypted password:
  -p, --password          Ask for the password on the terminal (twice)
  -F FILE, --passfile FILE
                          Encrypt the contents of FILE ("-": standard input)
  -S, --no-ssh            Do not add an SSH "checker" to the section
  --threshold K --shares N
                          Split the password into N shares, any K of which
                          unlock (2 <= K <= 32, K <= N <= 255): prints N
                          sections, one for each of N servers
Only --dir, --name, --no-ssh, --threshold and --shares matter when making
a password.

  -h, --help              Show this help and exit
  -v, --version           Show the version and exit
`;

const OPTIONS = {
  dir: { type: "string", short: "d" },
  type: { type: "string", short: "t" },
  length: { type: "string", short: "l" },
  subtype: { type: "string", short: "s" },
  sublength: { type: "string", short: "L" },
  name: { type: "string", short: "n" },
  email: { type: "string", short: "e" },
  comment: { type: "string", short: "c" },
  expire: { type: "string", short: "x" },
  "tls-keytype": { type: "string", short: "T" },
  force: { type: "boolean", short: "f" },
  password: { type: "boolean", short: "p" },
  passfile: { type: "string", short: "F" },
  "no-ssh": { type: "boolean", short: "S" },
  threshold: { type: "string" },
  shares: { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const;

interface Common {
  dir: string;
  name: string;
}

export interface KeygenPlan extends Common {
  mode: "keygen";
  type?: string;
  length?: string;
  subtype?: string;
  sublength?: string;
  email?: string;
  comment?: string;
  expire: string;
  tlsKeyType: string;
  force: boolean;
}

export interface PasswordPlan extends Common {
  mode: "password";
  /** File to read the password from ("-": stdin); absent: ask twice. */
  passfile?: string;
  ssh: boolean;
  /** --threshold and --shares: split the password k-of-n. */
  split?: { threshold: number; shares: number };
}

/** --threshold and --shares go together, as whole numbers with 2 <= K <= N <= 255 and K <= 32 (what clients accept). */
function parseSplit(threshold: string | undefined, shares: string | undefined): { threshold: number; shares: number } | undefined {
  if (threshold === undefined && shares === undefined) return undefined;
  if (threshold === undefined) throw new UsageError("--shares needs --threshold");
  if (shares === undefined) throw new UsageError("--threshold needs --shares");
  const whole = (name: string, text: string) => {
    if (!/^\d{1,3}$/.test(text)) throw new UsageError(`--${name}: expected a whole number, got ${JSON.stringify(text)}`);
    return Number(text);
  };
  const k = whole("threshold", threshold);
  const n = whole("shares", shares);
  if (n < 2 || n > 255) throw new UsageError(`--shares: ${n} is not from 2 to 255`);
  if (k < 2 || k > n) throw new UsageError(`--threshold: ${k} is not from 2 to the number of shares (${n})`);
  if (k > MAX_THRESHOLD) throw new UsageError(`--threshold: ${k} is above ${MAX_THRESHOLD}, the most a client combines`);
  return { threshold: k, shares: n };
}

export type Command = { mode: "help" } | { mode: "version" } | KeygenPlan | PasswordPlan;

export interface Defaults {
  /** Default key directory (callers pick /etc/keys/mandos or the fallback). */
  dir: string;
  /** Default key name, computed only if --name is absent. */
  name: () => string;
}

export function parseKeygenArgs(argv: string[], defaults: Defaults): Command {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message.split("\n")[0]);
  }
  if (values.help) return { mode: "help" };
  if (values.version) return { mode: "version" };
  const dir = values.dir ?? defaults.dir;
  if (dir === "") throw new UsageError("--dir: empty directory name");
  const name = values.name ?? defaults.name();
  if (name.trim() === "") throw new UsageError("Empty key name");
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f[\]]/.test(name)) {
    throw new UsageError(`--name: ${JSON.stringify(name)} cannot be a key or clients.conf section name`);
  }
  if (values.password || values.passfile !== undefined) {
    if (values.passfile === "") throw new UsageError("--passfile: empty file name");
    const plan: PasswordPlan = { mode: "password", dir, name, ssh: !values["no-ssh"] };
    if (values.passfile !== undefined) plan.passfile = values.passfile;
    const split = parseSplit(values.threshold, values.shares);
    if (split) plan.split = split;
    return plan;
  }
  if (values.threshold !== undefined || values.shares !== undefined) {
    throw new UsageError("--threshold and --shares need --password or --passfile");
  }
  if (values.type !== undefined && values.type.trim() === "") throw new UsageError("Empty key type");
  const plan: KeygenPlan = {
    mode: "keygen",
    dir,
    name,
    expire: values.expire ?? "0",
    tlsKeyType: values["tls-keytype"] ?? "ed25519",
    force: values.force ?? false,
  };
  for (const key of ["type", "length", "subtype", "sublength", "email", "comment"] as const) {
    const v = values[key];
    if (v !== undefined) plan[key] = v;
  }
  return plan;
}
