// An oracle for the config tests: Debian's own Mandos 1.8 server module
// (/usr/sbin/mandos, pinned in debian-peer.ts), loaded into Debian's Python, answers the same questions
// our code answers: how a duration parses (its string_to_delta), what
// Python's ConfigParser makes of a file, what Client.config_parser builds
// from a clients.conf, and what a checker command expands to.
import { run, requires } from "./index.js";
import { DEBIAN_SERVER, debianPeer, debianPeerMissing } from "./debian-peer.js";

export const PYTHON = "/usr/bin/python3";

/** Skip reason for tests that need the oracle. */
export const oracleSkip = requires({ files: [PYTHON] }) || debianPeerMissing(DEBIAN_SERVER);

const SCRIPT = String.raw`
import base64, configparser, datetime, importlib.machinery, importlib.util, json, shlex, sys
server = sys.argv[1]
sys.argv = ["mandos"]
loader = importlib.machinery.SourceFileLoader("mandos_oracle", server)
mandos = importlib.util.module_from_spec(importlib.util.spec_from_loader("mandos_oracle", loader))
loader.exec_module(mandos)

MS = datetime.timedelta(milliseconds=1)
def fail(e):
    return {"error": type(e).__name__}

def delta(req):
    try:
        return {"ms": mandos.string_to_delta(req["text"]) // MS}
    except Exception as e:
        return fail(e)

def parse(req):
    cp = configparser.ConfigParser(req.get("defaults") or {})
    try:
        cp.read_string(req["text"])
    except Exception as e:
        return fail(e)
    out = {}
    for name in ["DEFAULT"] + cp.sections():
        keys = cp.defaults() if name == "DEFAULT" else cp.options(name)
        values = {}
        for key in keys:
            try:
                values[key] = cp.get(name, key)
            except Exception as e:
                values[key] = fail(e)
        out[name] = values
    return {"sections": out}

def clients(req):
    cp = configparser.ConfigParser(mandos.Client.client_defaults)
    try:
        cp.read_string(req["text"])
        settings = mandos.Client.config_parser(cp)
    except Exception as e:
        return fail(e)
    out = {}
    for name, c in settings.items():
        out[name] = {
            "keyId": c["key_id"], "fingerprint": c["fingerprint"],
            "secret": base64.b64encode(c["secret"]).decode(), "host": c["host"],
            "timeoutMs": c["timeout"] // MS, "intervalMs": c["interval"] // MS,
            "extendedTimeoutMs": c["extended_timeout"] // MS,
            "approvalDelayMs": c["approval_delay"] // MS,
            "approvalDurationMs": c["approval_duration"] // MS,
            "approvedByDefault": c["approved_by_default"], "enabled": c["enabled"],
            "checker": c["checker_command"],
        }
    return {"clients": out}

def checker(req):
    attrs = {}
    for key, v in req["attrs"].items():
        if isinstance(v, dict) and "timedelta" in v:
            v = datetime.timedelta(milliseconds=v["timedelta"])
        elif isinstance(v, dict) and "datetime" in v:
            v = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=v["datetime"])
        attrs[key] = shlex.quote(str(v))
    try:
        return {"command": req["template"] % attrs}
    except Exception as e:
        return fail(e)

HANDLERS = {"delta": delta, "parse": parse, "clients": clients, "checker": checker}
requests = json.load(sys.stdin)
json.dump([HANDLERS[r["op"]](r) for r in requests], sys.stdout)
`;

export type OracleRequest =
  | { op: "delta"; text: string }
  | { op: "parse"; text: string; defaults?: Record<string, string> }
  | { op: "clients"; text: string }
  | { op: "checker"; template: string; attrs: Record<string, OracleValue> };

/** A checker attribute for Python: timedelta and datetime are given in milliseconds. */
export type OracleValue = string | number | boolean | null | { timedelta: number } | { datetime: number };

export type OracleAnswer =
  | { error: string }
  | { ms: number }
  | { sections: Record<string, Record<string, string | { error: string }>> }
  | { clients: Record<string, Record<string, string | number | boolean>> }
  | { command: string };

/** Ask Debian's Mandos many questions in one Python process (about 0.2 s). */
export async function askMandos(
  requests: OracleRequest[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<OracleAnswer[]> {
  const r = await run(PYTHON, ["-c", SCRIPT, debianPeer(DEBIAN_SERVER)], {
    input: JSON.stringify(requests),
    timeoutMs: 30_000,
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  if (r.code !== 0) throw new Error(`python oracle failed (${r.code ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.toString()) as OracleAnswer[];
}
