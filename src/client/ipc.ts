// The channel between the root supervisor and the unprivileged network
// worker: a socket pair that is the worker's descriptor 3, carrying JSON
// lines (src/protocol/json-lines.ts). The supervisor sends one start
// message (the keys and the interfaces to use) and replies; the worker
// sends route requests (src/protocol/privileged-requests.ts).
import { fstatSync } from "node:fs";
import type { KeyMaterial } from "./keys.js";
import { MAX_KEY_FILE_BYTES } from "../sys/key-file.js";

export interface StartMessage {
  type: "start";
  keys: KeyMaterial;
  zone: string | null;
  /** Interfaces chosen by the supervisor, for Zeroconf to browse on. */
  interfaces: string[];
}

export const WORKER_ROLE_ENV = "MANDOS_CLIENT_ROLE";
/** The worker's end of the channel: stdio slot 3 of its spawn. */
export const WORKER_CHANNEL_FD = 3;
/** The four key files, each byte written as up to six by JSON ("\u0000"), and room for the rest. */
export const MAX_START_MESSAGE_BYTES = 4 * 6 * MAX_KEY_FILE_BYTES + 64 * 1024;

/** This process is a worker: started with the role, and with a socket as its channel. */
export function isWorkerProcess(env: NodeJS.ProcessEnv): boolean {
  if (env[WORKER_ROLE_ENV] !== "worker") return false;
  try {
    return fstatSync(WORKER_CHANNEL_FD).isSocket();
  } catch {
    return false;
  }
}

const isString = (v: unknown): v is string => typeof v === "string";

/** Pure: the start message, or null for anything else. */
export function parseStart(m: unknown): StartMessage | null {
  if (typeof m !== "object" || m === null) return null;
  const s = m as Partial<Record<keyof StartMessage, unknown>>;
  const keys = s.keys as Partial<Record<keyof KeyMaterial, unknown>> | null | undefined;
  if (s.type !== "start" || typeof keys !== "object" || keys === null) return null;
  if (![keys.tlsPublicPem, keys.tlsPrivatePem, keys.pgpPublic, keys.pgpSecret].every(isString)) return null;
  if (!(s.zone === null || isString(s.zone)) || !Array.isArray(s.interfaces) || !s.interfaces.every(isString)) return null;
  return m as StartMessage;
}
