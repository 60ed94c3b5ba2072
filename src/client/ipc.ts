// Messages between the root supervisor and the unprivileged network worker.
import type { KeyMaterial } from "./keys.js";

export interface StartMessage {
  type: "start";
  keys: KeyMaterial;
  zone: string | null;
  /** Interfaces chosen by the supervisor, for Zeroconf to browse on. */
  interfaces: string[];
}

export interface RouteRequest {
  type: "route";
  id: number;
  address: string;
  interfaceName: string;
}

export interface RouteReply {
  type: "route-result";
  id: number;
  error: string | null;
}

export const WORKER_ROLE_ENV = "MANDOS_CLIENT_ROLE";

export function isMessage<T extends { type: string }>(m: unknown, type: T["type"]): m is T {
  return typeof m === "object" && m !== null && (m as { type?: unknown }).type === type;
}
