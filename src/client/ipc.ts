// The channel between the client's network part and the privileged process
// that does its network steps: a socket pair that is the unprivileged
// side's descriptor 3, carrying JSON lines (src/protocol/json-lines.ts), and
// an environment variable naming which of two roles the client has:
// - "worker": the root supervisor's child; the supervisor sends one start
//   message (the keys and the interfaces chosen) and replies;
// - "agent": the client the password agent runs without privileges; the
//   agent only replies.
// Either way the unprivileged side only sends requests
// (src/protocol/privileged-requests.ts).
import { fstatSync } from "node:fs";
import { Socket } from "node:net";
import type { KeyMaterial } from "./keys.js";
import type { DelegatedSteps } from "./network/index.js";
import { MAX_KEY_FILE_BYTES } from "../sys/key-file.js";
import { jsonLineChannel } from "../protocol/json-lines.js";
import { Requester } from "../protocol/privileged-requests.js";

export interface StartMessage {
  type: "start";
  keys: KeyMaterial;
  zone: string | null;
  /** Interfaces chosen by the supervisor, for Zeroconf to browse on. */
  interfaces: string[];
}

export const CLIENT_ROLE_ENV = "MANDOS_CLIENT_ROLE";
export type ClientRole = "worker" | "agent";
/** The unprivileged side's end of the channel: stdio slot 3 of its spawn. */
export const CHANNEL_FD = 3;
/** The four key files, each byte written as up to six by JSON ("\u0000"), and room for the rest. */
export const MAX_START_MESSAGE_BYTES = 4 * 6 * MAX_KEY_FILE_BYTES + 64 * 1024;

/** This process's role: started with one, and with a socket as its channel; else null. */
export function clientRole(env: NodeJS.ProcessEnv): ClientRole | null {
  const role = env[CLIENT_ROLE_ENV];
  if (role !== "worker" && role !== "agent") return null;
  try {
    return fstatSync(CHANNEL_FD).isSocket() ? role : null;
  } catch {
    return null;
  }
}

/**
 * The unprivileged end of the channel: replies go to the returned
 * Requester, any other message to `other`; `gone` is told once if the
 * privileged side closes the channel or breaks its framing.
 */
export function connectToPrivileged(maxLineBytes: number, other: (m: unknown) => void, gone: (reason: string) => void): Requester {
  const requester = new Requester((m) => channel.send(m));
  const fail = (reason: string) => {
    requester.close(reason);
    gone(reason);
  };
  const channel = jsonLineChannel(new Socket({ fd: CHANNEL_FD, readable: true, writable: true }), maxLineBytes, {
    message(m) {
      if (!requester.receive(m)) other(m);
    },
    invalid: (reason) => fail(`the privileged side sent ${reason}`),
    closed: () => fail("the privileged side closed the channel"),
  });
  return requester;
}

/**
 * The privileged steps as requests over the channel. A route is asked for
 * once per server and interface: a refusal will not change on a retry.
 */
export function requestedSteps(requester: Requester): DelegatedSteps {
  const asked = new Map<string, Promise<void>>();
  return {
    bringUp: (name) => requester.request({ op: "bring-up", interface: name }),
    addRoute(address, interfaceName) {
      const key = `${address}%${interfaceName}`;
      let answer = asked.get(key);
      if (!answer) {
        answer = requester.request({ op: "add-route", address, interface: interfaceName });
        // Past the limit the requester refuses by itself: nothing worth keeping.
        if (asked.size < requester.limits.maxRequests) asked.set(key, answer);
      }
      return answer;
    },
  };
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
