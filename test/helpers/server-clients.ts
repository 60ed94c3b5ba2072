// One client, "foo", as the server's tests set it up: as clients.conf
// configures it (Mandos's default timings), and as the client model holds
// it after a fresh start at time 0.
import type { ConfiguredClient } from "../../src/server/state.js";
import type { ClientRecord } from "../../src/server/client-model.js";

export const MIN = 60_000;

export function configuredClient(over: Partial<ConfiguredClient> = {}): ConfiguredClient {
  return {
    name: "foo",
    keyId: "AB".repeat(32),
    fingerprint: "",
    host: "foo.example",
    checker: "fping -q -- %(host)s",
    timeoutMs: 5 * MIN,
    extendedTimeoutMs: 15 * MIN,
    intervalMs: 2 * MIN,
    approvalDelayMs: 0,
    approvalDurationMs: 1000,
    approvedByDefault: true,
    secret: Buffer.from("config secret"),
    enabled: true,
    ...over,
  };
}

export function clientRecord(over: Partial<ClientRecord> = {}): ClientRecord {
  return {
    ...configuredClient({ secret: Buffer.from("secret") }),
    created: 0,
    lastEnabled: 0,
    lastCheckedOK: null,
    lastCheckerStatus: -2,
    lastCheckerSignal: null,
    lastApprovalRequest: null,
    expires: 5 * MIN,
    ...over,
  };
}
