// One client run's network setup and teardown, in Mandos's order:
// start hooks → choose interfaces → bring the chosen ones up → wait for
// them to run; and on exit (also on SIGTERM): remove temporary routes →
// stop hooks → take down exactly the interfaces this run brought up.
import type { Logger } from "../../cli/log.js";
import { errorMessage } from "../../cli/log.js";
import { quietConsole as realQuietConsole } from "./console.js";
import { hookDeviceList, runNetworkHooks, type HookResult } from "./hooks.js";
import {
  bringDown as realBringDown,
  bringUp as realBringUp,
  selectInterfaces,
  waitRunning,
  type InterfaceSelection,
} from "./interfaces.js";
import { listInterfaces as realListInterfaces, readInterface as realReadInterface, type NetInterface } from "../../sys/interfaces.js";
import { NetworkError } from "./ip.js";
import { TemporaryRoutes, type TemporaryRoute } from "./routes.js";

/** The effects a session uses; tests replace them, the client uses the defaults. */
export interface NetworkEffects {
  listInterfaces(): Promise<NetInterface[]>;
  readInterface(name: string): Promise<NetInterface | null>;
  bringUp(name: string, allowed: Iterable<string>): Promise<"brought-up" | "already-up">;
  bringDown(name: string, allowed: Iterable<string>): Promise<"taken-down" | "already-down">;
  runHooks(mode: "start" | "stop", signal: AbortSignal | undefined): Promise<HookResult[]>;
  /** Lower the console log level; returns the restorer. */
  quietConsole(): Promise<() => Promise<void>>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface SessionOptions {
  /** --interface values, comma lists split, in order; may contain "none". */
  interfaces: readonly string[];
  /** --connect exactly as given, or null. Also decides "connect mode" for the interface rule. */
  connect: string | null;
  /** --delay in seconds. */
  delaySeconds: number;
  /** --network-hook-dir; null runs no hooks. */
  hookDir: string | null;
  debug: boolean;
  log: Logger;
  /** Per-hook time limit; default 60 s. */
  hookTimeoutMs?: number;
  /** Lower the console log level while interfaces come up; default: when running as root. */
  quietConsole?: boolean;
  /** Replace effects (tests). */
  effects?: Partial<NetworkEffects>;
}

export interface StartReport {
  selection: InterfaceSelection;
  /** Interfaces this session brought up (and will take down). */
  broughtUp: string[];
  /** Interfaces that could not be brought up, with the one-line reason. */
  failed: { name: string; message: string }[];
  running: string[];
  notRunning: string[];
}

export class NetworkSession {
  readonly #opts: SessionOptions;
  readonly #fx: NetworkEffects;
  readonly #abort = new AbortController();
  #selection: InterfaceSelection | null = null;
  readonly #broughtUp: string[] = [];
  #hooksStarted = false;
  #restoreConsole: (() => Promise<void>) | null = null;
  #starting: Promise<StartReport> | null = null;
  #closing: Promise<void> | null = null;
  /** Temporary routes to servers (see routes.ts); all removed by close(). */
  readonly routes: TemporaryRoutes;

  constructor(opts: SessionOptions) {
    this.#opts = opts;
    const log = opts.log;
    const device = hookDeviceList(opts.interfaces);
    const defaults: NetworkEffects = {
      listInterfaces: async () => realListInterfaces(),
      readInterface: async (n) => realReadInterface(n),
      bringUp: (n, a) => realBringUp(n, a),
      bringDown: (n, a) => realBringDown(n, a),
      runHooks: (mode, signal) =>
        opts.hookDir === null
          ? Promise.resolve([])
          : runNetworkHooks({
              hookDir: opts.hookDir,
              mode,
              device,
              debug: opts.debug,
              delaySeconds: opts.delaySeconds,
              connect: opts.connect,
              timeoutMs: opts.hookTimeoutMs,
              log,
              signal,
            }),
      quietConsole: () => realQuietConsole(undefined, (m) => log.debug(m)),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      now: () => performance.now(),
    };
    this.#fx = { ...defaults, ...opts.effects };
    this.routes = new TemporaryRoutes(() => this.#selection?.use ?? [], { log });
  }

  get selection(): InterfaceSelection | null {
    return this.#selection;
  }

  /** Interfaces this session brought up so far, in order. */
  get broughtUp(): readonly string[] {
    return [...this.#broughtUp];
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  /** Run the start hooks, choose and bring up interfaces, wait up to --delay. Once only. */
  start(): Promise<StartReport> {
    if (this.#closing) return Promise.reject(new NetworkError("cannot set up the network: shutting down"));
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<StartReport> {
    const { log } = this.#opts;
    const signal = this.#abort.signal;
    const stopped = () => new NetworkError("network setup interrupted");

    this.#hooksStarted = true;
    await this.#fx.runHooks("start", signal);
    if (signal.aborted) throw stopped();

    const available = await this.#fx.listInterfaces();
    const selection = selectInterfaces(this.#opts.interfaces, available, { connectMode: this.#opts.connect !== null });
    this.#selection = selection;
    for (const name of selection.missing) log.warning(`not using nonexisting interface "${name}"`);
    for (const v of selection.verdicts) log.debug(`${v.verdict.reason} "${v.name}"`);
    if (selection.automatic && selection.use.length === 0) throw new NetworkError("could not find a network interface");
    for (const name of selection.use) log.debug(`will use interface "${name}"`);
    if (selection.only !== null) log.debug(`using only interface "${selection.only}"`);

    const failed: { name: string; message: string }[] = [];
    if (selection.bringUp.length > 0 && (this.#opts.quietConsole ?? process.getuid?.() === 0)) {
      this.#restoreConsole = await this.#fx.quietConsole();
    }
    try {
      for (const name of selection.bringUp) {
        if (signal.aborted) throw stopped();
        try {
          const result = await this.#fx.bringUp(name, selection.bringUp);
          if (result === "brought-up") {
            this.#broughtUp.push(name);
            log.debug(`brought up interface "${name}"`);
          } else {
            log.debug(`interface "${name}" is already up`);
          }
        } catch (err) {
          const message = errorMessage(err);
          failed.push({ name, message });
          log.warning(message);
        }
      }
      if (this.#broughtUp.length === 0) log.debug("no interfaces were brought up");
      const waitFor = selection.bringUp.filter((n) => !failed.some((f) => f.name === n));
      const wait = await waitRunning(waitFor, this.#opts.delaySeconds * 1000, {
        now: () => this.#fx.now(),
        sleep: (ms) => this.#fx.sleep(ms),
        read: (n) => this.#fx.readInterface(n),
        signal,
      });
      for (const name of wait.notRunning) log.debug(`interface "${name}" is not running after ${this.#opts.delaySeconds} s`);
      if (signal.aborted) throw stopped();
      return { selection, broughtUp: [...this.#broughtUp], failed, running: wait.running, notRunning: wait.notRunning };
    } finally {
      await this.#restoreQuietConsole();
    }
  }

  async #restoreQuietConsole(): Promise<void> {
    const restore = this.#restoreConsole;
    this.#restoreConsole = null;
    if (restore) await restore();
  }

  /**
   * Add a temporary host route to a server on one of the interfaces in use;
   * remove it with the handle, or let close() do it.
   */
  addTemporaryRoute(address: string, interfaceName: string): Promise<TemporaryRoute> {
    if (this.#closing) return Promise.reject(new NetworkError(`cannot add a route to ${address}: shutting down`));
    return this.routes.add(address, interfaceName);
  }

  /**
   * Undo everything; idempotent, and safe to call from a SIGTERM handler
   * while start() is still running (it stops start() at the next step and
   * waits for the step in progress, so nothing it brought up is missed).
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const { log } = this.#opts;
    this.#abort.abort();
    if (this.#starting) await this.#starting.catch(() => {});
    await this.routes.removeAll();
    await this.#restoreQuietConsole();
    if (this.#hooksStarted) {
      try {
        await this.#fx.runHooks("stop", undefined);
      } catch (err) {
        log.warning(`network hooks (stop): ${errorMessage(err)}`);
      }
    }
    const mine = [...this.#broughtUp];
    for (const name of mine) {
      try {
        await this.#fx.bringDown(name, mine);
        log.debug(`took down interface "${name}"`);
      } catch (err) {
        log.warning(errorMessage(err));
      }
    }
    if (mine.length === 0) log.debug("no interfaces needed to be taken down");
  }
}
