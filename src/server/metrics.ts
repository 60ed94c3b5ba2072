// Prometheus metrics of the server (prom-client), in a registry of their own:
// counters and histograms fed by ServerEvents, and gauges read from the
// clients at each scrape, so they follow clients added or removed at run time
// without any bookkeeping. No client names in labels: a fleet of thousands
// stays a fixed handful of series.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { CHECKER_OUTCOMES, CONNECTION_OUTCOMES, REFUSAL_REASONS, type ServerEvents } from "./events.js";

/** What the gauges read from one client. */
export interface ClientView {
  readonly record: { readonly enabled: boolean };
  readonly approvalPending: boolean;
}

export interface ServerMetrics {
  registry: Registry;
  events: ServerEvents;
}

/** A handshake is ~1 ms of CPU; a loaded server or a slow link takes longer. */
const HANDSHAKE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Up to approval delays of minutes. */
const TIME_TO_SECRET_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** A write with fsync of the file and of its directory. */
const STATE_WRITE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createMetrics(clients: () => Iterable<ClientView>): ServerMetrics {
  const registry = new Registry();
  const registers = [registry];
  const connections = new Counter({ name: "mandos_connections_total", help: "Connections by outcome", labelNames: ["outcome"], registers });
  const secrets = new Counter({ name: "mandos_secrets_sent_total", help: "Secrets sent to clients", registers });
  const refusals = new Counter({ name: "mandos_refusals_total", help: "Requests refused, by reason", labelNames: ["reason"], registers });
  const checkers = new Counter({ name: "mandos_checker_runs_total", help: "Checker runs by result", labelNames: ["result"], registers });
  const timeouts = new Counter({ name: "mandos_clients_disabled_by_timeout_total", help: "Clients disabled because their timeout passed", registers });
  const approvalsRequested = new Counter({ name: "mandos_approvals_requested_total", help: "Requests that waited for approval", registers });
  const approvalsGiven = new Counter({ name: "mandos_approvals_given_total", help: "Requests approved, by an operator or by default", registers });
  const stateWriteFailures = new Counter({ name: "mandos_state_write_failures_total", help: "State writes (file or etcd commit) that failed", registers });
  const handshake = new Histogram({ name: "mandos_handshake_seconds", help: "TLS handshake time", buckets: HANDSHAKE_BUCKETS, registers });
  const timeToSecret = new Histogram({
    name: "mandos_time_to_secret_seconds",
    help: "From accepting a connection to its secret sent (approval waits included)",
    buckets: TIME_TO_SECRET_BUCKETS,
    registers,
  });
  const stateWrite = new Histogram({ name: "mandos_state_write_seconds", help: "State write time: the state file's, fsyncs included, or each etcd commit in a fleet", buckets: STATE_WRITE_BUCKETS, registers });
  const counts = () => {
    let all = 0;
    let enabled = 0;
    let pending = 0;
    for (const c of clients()) {
      all++;
      if (c.record.enabled) enabled++;
      if (c.approvalPending) pending++;
    }
    return { all, enabled, pending };
  };
  new Gauge({ name: "mandos_clients", help: "Clients configured", registers, collect() { this.set(counts().all); } });
  new Gauge({ name: "mandos_clients_enabled", help: "Clients enabled", registers, collect() { this.set(counts().enabled); } });
  new Gauge({ name: "mandos_approvals_pending", help: "Clients with a request waiting for approval", registers, collect() { this.set(counts().pending); } });
  // Every label value from the start, at zero: a series that appears only
  // when it first moves defeats rate() and alerts on absence.
  for (const o of CONNECTION_OUTCOMES) connections.labels(o).inc(0);
  for (const r of REFUSAL_REASONS) refusals.labels(r).inc(0);
  for (const r of CHECKER_OUTCOMES) checkers.labels(r).inc(0);

  const events: ServerEvents = {
    connectionEnded: (outcome) => connections.labels(outcome).inc(),
    handshakeDone: (seconds) => handshake.observe(seconds),
    secretSent: (seconds) => {
      secrets.inc();
      timeToSecret.observe(seconds);
    },
    refused: (reason) => refusals.labels(reason).inc(),
    checkerRan: (outcome) => checkers.labels(outcome).inc(),
    disabledByTimeout: () => timeouts.inc(),
    approvalRequested: () => approvalsRequested.inc(),
    approvalGiven: () => approvalsGiven.inc(),
    stateWritten: (seconds, ok) => {
      stateWrite.observe(seconds);
      if (!ok) stateWriteFailures.inc();
    },
  };
  return { registry, events };
}
