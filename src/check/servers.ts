// Asking the servers, as the initramfs would: our own mandos-client runs
// with the initramfs's options (it keeps its privilege split: the part
// that talks to the network runs unprivileged), reports how each server
// goes on standard error (MANDOS_CLIENT_EVENTS, src/client/events.ts) and
// prints the password to our pipe. We stop it once the outcome is known.
import { spawn } from "node:child_process";
import { EVENTS_ENV, MAX_EVENT_LINE, parseEventLine, type ServerEvent } from "../client/events.js";
import { MAX_WORKER_OUTPUT } from "../client/supervisor.js";

type Step = "found" | "connected" | "handshake";

export interface ServerState {
  server: string;
  /** The furthest step of the latest attempt. */
  step: Step;
  /** How the latest attempt ended: the password decrypted, a share did, failed (with why), or still under way. */
  end: { type: "decrypted" } | { type: "share"; index: number; threshold: number } | { type: "failed"; reason: string } | null;
  failures: number;
}

/** Pure: the servers' states after `event`. */
export function applyEvent(states: Map<string, ServerState>, server: string, event: ServerEvent): void {
  let s = states.get(server);
  if (!s) {
    s = { server, step: "found", end: null, failures: 0 };
    states.set(server, s);
  }
  switch (event.type) {
    case "found":
      return;
    case "connected":
      s.step = "connected";
      s.end = null;
      return;
    case "handshake":
      s.step = "handshake";
      return;
    case "decrypted":
      s.end = { type: "decrypted" };
      return;
    case "share":
      s.end = { type: "share", index: event.index, threshold: event.threshold };
      return;
    case "failed":
      s.end = { type: "failed", reason: event.reason };
      s.failures++;
  }
}

export interface StopRule {
  /** --connect: the servers are all known from the start. */
  connectMode: boolean;
  /** Give up waiting for an answer (or for a server) after this. */
  waitMs: number;
  /** With Zeroconf, more servers may be found until this long after the start. */
  settleMs: number;
}

/**
 * Pure: whether the outcome is known. The deadline always holds: with
 * k-of-n, fewer than K servers giving shares (or one awaiting approval)
 * leaves the client waiting for ever. Before it, a password that
 * decrypted ends the client by itself; otherwise we stop once every
 * server found has failed (with Zeroconf, only after the settling time).
 */
export function stopNow(states: readonly ServerState[], elapsedMs: number, rule: StopRule): boolean {
  if (elapsedMs >= rule.waitMs) return true;
  if (states.some((s) => s.end?.type === "decrypted")) return false;
  if (states.length === 0 || !states.every((s) => s.end?.type === "failed")) return false;
  return rule.connectMode || elapsedMs >= rule.settleMs;
}

/** Pure: how far the server got, for its report line (without the devices). */
export function describeState(s: ServerState, keyId: string, waitSeconds: number): string {
  const reason = s.end?.type === "failed" ? s.end.reason.replace(`${s.server}: `, "") : "";
  if (s.end?.type === "decrypted") return "found; handshake done; secret decrypts";
  if (s.end?.type === "share") return `found; handshake done; share ${s.end.index} of ${s.end.threshold} decrypts`;
  if (s.end === null) {
    if (s.step === "handshake") return `found; handshake done; no answer within ${waitSeconds} s: approval needed, or the server stalls`;
    if (s.step === "connected") return `found; connected; no handshake within ${waitSeconds} s`;
    return `found; no connection within ${waitSeconds} s`;
  }
  if (s.step === "found") return `found; ${reason}`;
  if (s.step === "connected") return `found; connected; TLS handshake failed: ${reason}`;
  if (/sent no secret/.test(reason)) {
    return `found; handshake done; no secret: the server does not know this client (key id ${keyId}) or has it disabled`;
  }
  return `found; handshake done; ${reason}`;
}

export interface ClientOutcome {
  /** The password, when a secret decrypted; the caller wipes it. */
  password: Buffer | null;
  servers: ServerState[];
  /** The client's own lines on standard error that were not events (its errors), last few. */
  messages: string[];
}

/** Standard error beyond this is not a client's report: it is stopped. */
const MAX_STDERR_BYTES = 1 << 20;
const KEEP_MESSAGES = 3;

/** Printable text only: the client's lines are shown to the administrator. */
const printable = (line: string) => line.replace(/[^\x20-\x7e]/g, "?");

export function askServers(command: string[], rule: StopRule, debug: (line: string) => void): Promise<ClientOutcome> {
  return new Promise((resolve, reject) => {
    const [program, ...args] = command;
    const child = spawn(program!, args, {
      env: { ...process.env, [EVENTS_ENV]: "stderr" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const states = new Map<string, ServerState>();
    const messages: string[] = [];
    const chunks: Buffer[] = [];
    let outLength = 0;
    let errLength = 0;
    let pending = "";
    let broken: string | null = null;
    const wipe = () => {
      for (const c of chunks) c.fill(0);
      chunks.length = 0;
    };
    const stopFor = (why: string) => {
      broken = why;
      child.kill("SIGKILL");
      wipe();
    };
    child.stdout.on("data", (d: Buffer) => {
      chunks.push(d);
      outLength += d.length;
      if (outLength > MAX_WORKER_OUTPUT) stopFor(`printed more than ${MAX_WORKER_OUTPUT} bytes`);
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => {
      errLength += d.length;
      if (errLength > MAX_STDERR_BYTES) return stopFor(`wrote more than ${MAX_STDERR_BYTES} bytes of messages`);
      pending += d;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const parsed = parseEventLine(line);
        if (parsed) {
          applyEvent(states, parsed.server, parsed.event);
          debug(`${parsed.server}: ${parsed.event.type}`);
        } else {
          const text = printable(line.slice(0, MAX_EVENT_LINE));
          debug(text);
          messages.push(text);
          if (messages.length > KEEP_MESSAGES) messages.shift();
        }
      }
      if (pending.length > MAX_EVENT_LINE) pending = pending.slice(-MAX_EVENT_LINE);
    });
    const started = Date.now();
    let stopping = false;
    const timer = setInterval(() => {
      if (!stopping && stopNow([...states.values()], Date.now() - started, rule)) {
        stopping = true;
        child.kill("SIGTERM"); // its supervisor undoes what it did to the network
      }
    }, 100);
    child.on("error", (e) => {
      clearInterval(timer);
      reject(new Error(`cannot run the client ${program}: ${e.message}`));
    });
    child.on("close", (code) => {
      clearInterval(timer);
      if (broken !== null) return reject(new Error(`the client ${broken}; stopped it`));
      const output = Buffer.concat(chunks);
      wipe();
      const password = code === 0 && output.length > 0 ? output : null;
      if (!password) output.fill(0);
      resolve({ password, servers: [...states.values()], messages });
    });
  });
}
