// clients.conf → typed clients, with Mandos 1.8's defaults and meanings.
//
// Where Mandos would stop the whole server (a Python exception while reading),
// we refuse only the client concerned and report why in one line naming the
// file, line, section and key; the other clients still load. Problems in
// [DEFAULT] concern every client, so they refuse them all.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { validateCheckerTemplate } from "./checker.js";
import { DEFAULT_SECTION, interpolate, parseBoolean, parseIni, type IniSection } from "./configparser.js";
import { parseDuration } from "./duration.js";
import { describeIoError, locate, quote } from "./errors.js";
import { expandUser, expandVars, passwdHomeDir, type Environment, type HomeDirLookup } from "./pathexpand.js";
import { readConfigText } from "./text.js";

/** A client as the server uses it. */
export interface ClientConfig {
  /** The section name. */
  name: string;
  /** TLS public key ID: 64 upper-case hex digits, or null if not given. */
  keyId: string | null;
  /** OpenPGP fingerprint: 40 upper-case hex digits, or null if not given. */
  fingerprint: string | null;
  /** The data sent to the client (OpenPGP-encrypted). Wipe it when done. */
  secret: Buffer;
  /** For the checker only; "" if not given. */
  host: string;
  timeoutMs: number;
  intervalMs: number;
  extendedTimeoutMs: number;
  approvalDelayMs: number;
  approvalDurationMs: number;
  approvedByDefault: boolean;
  enabled: boolean;
  /** Checker command after load-time expansion; "%(attr)s" is left for expandChecker(). */
  checker: string;
}

export interface ClientsConfResult {
  clients: ClientConfig[];
  /** One line each; never contains secret data. */
  errors: string[];
}

export interface ClientsConfOptions {
  /** Variables for "$NAME" in secfile; default process.env. */
  env?: Environment;
  /** Reads a secfile; default fs.readFileSync. */
  readFile?: (path: string) => Buffer;
  /** Home directories for "~" and "~user" in secfile; default /etc/passwd. */
  homeDir?: HomeDirLookup;
  /** Base for relative secfile names (Mandos opens them from its working directory); default process.cwd(). */
  cwd?: string;
}

/** Mandos 1.8's values for options a client does not set, before interpolation. */
export const CLIENT_DEFAULTS: Readonly<Record<string, string>> = {
  timeout: "PT5M",
  extended_timeout: "PT15M",
  interval: "PT2M",
  checker: "fping -q -- %%(host)s",
  host: "",
  approval_delay: "PT0S",
  approval_duration: "PT1S",
  approved_by_default: "True",
  enabled: "True",
};

interface Setting {
  raw: string;
  line: number;
  origin: "built-in" | "DEFAULT" | "section";
}

export function parseClientsConf(text: string, fileName: string, opts: ClientsConfOptions = {}): ClientsConfResult {
  const doc = parseIni(text);
  const errors = doc.issues.map((issue) => `${locate(fileName, issue.line, issue.section, issue.key)}: ${issue.message}`);
  const refused = new Set(doc.issues.map((issue) => issue.section));
  const clients: ClientConfig[] = [];
  for (const section of doc.sections) {
    if (refused.has(DEFAULT_SECTION)) {
      errors.push(`${locate(fileName, section.line, section.name)}: not loaded, because [DEFAULT] has errors`);
      continue;
    }
    if (refused.has(section.name)) continue; // its issue lines say why
    const result = readClient(section, doc.defaults, fileName, opts);
    if ("client" in result) clients.push(result.client);
    else errors.push(...result.problems);
  }
  return { clients, errors };
}

/** Read and parse a clients.conf; a file that cannot be read gives no clients and one error. */
export function loadClientsConf(path: string, opts: ClientsConfOptions = {}): ClientsConfResult {
  let text: string;
  try {
    text = readConfigText(path);
  } catch (err) {
    return { clients: [], errors: [`${path}: cannot read: ${describeIoError(err)}`] };
  }
  return parseClientsConf(text, path, opts);
}

function readClient(
  section: IniSection,
  defaults: IniSection,
  fileName: string,
  opts: ClientsConfOptions,
): { client: ClientConfig } | { problems: string[] } {
  // What Python's ConfigParser.items(section) sees: built-in defaults, then
  // the file's [DEFAULT], then the section itself; later ones win.
  const settings = new Map<string, Setting>();
  for (const [key, raw] of Object.entries(CLIENT_DEFAULTS)) settings.set(key, { raw, line: section.line, origin: "built-in" });
  for (const [key, o] of defaults.options) settings.set(key, { raw: o.value, line: o.line, origin: "DEFAULT" });
  for (const [key, o] of section.options) settings.set(key, { raw: o.value, line: o.line, origin: "section" });

  const problems: string[] = [];
  const where = (key: string): string => {
    const s = settings.get(key);
    const origin = s?.origin === "DEFAULT" ? " (from [DEFAULT])" : "";
    return `${locate(fileName, s?.line ?? section.line, section.name, key)}${origin}`;
  };

  // Every value is interpolated, as Mandos does, even those it then ignores.
  const values = new Map<string, string>();
  for (const [key, s] of settings) {
    try {
      values.set(key, interpolate(s.raw, (name) => settings.get(name)?.raw));
    } catch (err) {
      const detail = key === "secret" ? 'bad "%" in value' : (err as Error).message;
      problems.push(`${where(key)}: ${detail}`);
    }
  }
  if (problems.length > 0) return { problems };

  const boolean = (key: string): boolean => {
    const value = values.get(key)!;
    const b = parseBoolean(value);
    if (b === undefined) problems.push(`${where(key)}: not a boolean: ${quote(value)} (use 1/yes/true/on or 0/no/false/off)`);
    return b ?? false;
  };
  const duration = (key: string): number => {
    try {
      return parseDuration(values.get(key)!);
    } catch (err) {
      problems.push(`${where(key)}: ${(err as Error).message}`);
      return 0;
    }
  };
  // Mandos upper-cases these and removes spaces before comparing them.
  const hexId = (key: string, digits: number): string | null => {
    const value = values.get(key);
    if (value === undefined) return null;
    const id = value.toUpperCase().replaceAll(" ", "");
    if (id === "") return null;
    if (!/^[0-9A-F]+$/.test(id) || id.length !== digits) {
      problems.push(`${where(key)}: must be ${digits} hexadecimal digits (spaces allowed), not ${quote(value)}`);
    }
    return id;
  };

  const host = values.get("host")!;
  const approvedByDefault = boolean("approved_by_default");
  const enabled = boolean("enabled");
  const keyId = hexId("key_id", 64);
  const fingerprint = hexId("fingerprint", 40);
  if (keyId === null && fingerprint === null) {
    problems.push(`${locate(fileName, section.line, section.name)}: needs a key_id (or a fingerprint)`);
  }
  const timeoutMs = duration("timeout");
  const extendedTimeoutMs = duration("extended_timeout");
  const intervalMs = duration("interval");
  const approvalDelayMs = duration("approval_delay");
  const approvalDurationMs = duration("approval_duration");
  const checker = values.get("checker")!;
  try {
    validateCheckerTemplate(checker);
  } catch (err) {
    problems.push(`${where("checker")}: ${(err as Error).message}`);
  }

  const secret = readSecret(values, section, fileName, where, opts, problems);
  if (problems.length > 0) {
    secret?.fill(0);
    return { problems };
  }
  return {
    client: {
      name: section.name,
      keyId,
      fingerprint,
      secret: secret!,
      host,
      timeoutMs,
      intervalMs,
      extendedTimeoutMs,
      approvalDelayMs,
      approvalDurationMs,
      approvedByDefault,
      enabled,
      checker,
    },
  };
}

/** "secret" (base64) if present, else the bytes of "secfile"; null after recording a problem. */
function readSecret(
  values: ReadonlyMap<string, string>,
  section: IniSection,
  fileName: string,
  where: (key: string) => string,
  opts: ClientsConfOptions,
  problems: string[],
): Buffer | null {
  const encoded = values.get("secret");
  if (encoded !== undefined) {
    const secret = decodeBase64(encoded);
    if (secret === null) problems.push(`${where("secret")}: not valid base64`);
    else if (secret.length === 0) problems.push(`${where("secret")}: is empty`);
    else return secret;
    return null;
  }
  const secfile = values.get("secfile");
  if (secfile === undefined) {
    problems.push(`${locate(fileName, section.line, section.name)}: needs a secret (or a secfile)`);
    return null;
  }
  const env = opts.env ?? process.env;
  const path = resolve(opts.cwd ?? process.cwd(), expandUser(expandVars(secfile, env), env, opts.homeDir ?? passwdHomeDir));
  let secret: Buffer;
  try {
    secret = (opts.readFile ?? ((p: string) => readFileSync(p)))(path);
  } catch (err) {
    problems.push(`${where("secfile")}: cannot read ${quote(path)}: ${describeIoError(err)}`);
    return null;
  }
  if (secret.length === 0) {
    problems.push(`${where("secfile")}: ${quote(path)} is empty`);
    return null;
  }
  return secret;
}

/**
 * Standard base64 with padding; whitespace (line breaks of a continued value)
 * is ignored. Stricter than Python, which silently drops stray characters:
 * a damaged secret is better refused than sent.
 */
function decodeBase64(text: string): Buffer | null {
  const compact = text.replace(/[\t\n\v\f\r ]+/g, "");
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return null;
  return Buffer.from(compact, "base64");
}
