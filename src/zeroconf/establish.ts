// The start of an announcement, shared by the avahi and built-in backends:
// announce() resolves once the service is established, or rejects if it
// fails before that; after establishTimeoutMs it resolves anyway (the
// registration goes on), so a slow network never holds up the server.
import type { AnnounceOptions, Announcement } from "./types.js";
import { errorMessage } from "../cli/log.js";

export interface Establishment {
  /** Established, failed, or no longer waited for: later events are not the start's. */
  readonly settled: boolean;
  established(): void;
  failed(err: Error): void;
  /**
   * Wait until established or failed, at most `timeoutMs` (then
   * `stillWaiting` is called), and return the announcement.
   */
  announcement(a: {
    timeoutMs: number;
    stillWaiting: () => void;
    name: () => string;
    via: Announcement["via"];
    stop: () => Promise<void>;
  }): Promise<Announcement>;
}

export function establishment(): Establishment {
  let settled = false;
  let resolve: () => void = () => {};
  let reject: (err: Error) => void = () => {};
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const est: Establishment = {
    get settled() {
      return settled;
    },
    established() {
      if (settled) return;
      settled = true;
      resolve();
    },
    failed(err) {
      if (settled) return;
      settled = true;
      reject(err);
    },
    async announcement({ timeoutMs, stillWaiting, name, via, stop }) {
      const timeout = setTimeout(() => {
        if (!settled) stillWaiting();
        est.established();
      }, timeoutMs);
      try {
        await done;
      } finally {
        clearTimeout(timeout);
      }
      return {
        get name() {
          return name();
        },
        via,
        stop,
      };
    },
  };
  return est;
}

/** What a backend's state machine reports to the one who started it. */
export interface AnnouncerEvents {
  /** The service is announced (again, after a rename). */
  established(): void;
  /** A collision gave the service a new name. */
  renamed(name: string): void;
  /** The announcement is given up (already logged); the backend has stopped. */
  failed(err: Error): void;
}

/**
 * The events as the caller of announce() sees them: the start settles on
 * the first, later failures go to onError, renames to onRename (whose own
 * failure is logged, not thrown into the backend).
 */
export function announcerEvents(start: Establishment, opts: AnnounceOptions): AnnouncerEvents {
  return {
    established: () => start.established(),
    renamed(name) {
      try {
        opts.onRename?.(name);
      } catch (err) {
        opts.log.error(`Zeroconf: onRename handler failed: ${errorMessage(err)}`);
      }
    },
    failed(err) {
      if (!start.settled) start.failed(err);
      else opts.onError?.(err);
    },
  };
}
