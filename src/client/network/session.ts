// One client run's network setup and teardown, in Mandos's order:
// start hooks → choose interfaces → bring the chosen ones up → wait for
// them to run; later, adopt interfaces that appear and that the selection
// takes; and on exit (also on SIGTERM): remove temporary routes → stop
// hooks → take down exactly the interfaces this run brought up.
//
// The privileged steps (bringing interfaces up, adding routes) are checked
// here against the run's --interface selection, whoever asks: the client
// itself, or its unprivileged worker or client through a request channel
// (src/protocol/privileged-requests.ts). A client run by the password
// agent without privileges delegates them instead (`delegate`): the agent
// does them on its requests, checks them the same way, and undoes them.
import type { Logger } from "../../cli/log.js";
import { errorMessage } from "../../cli/log.js";
import { quietConsole as realQuietConsole } from "./console.js";
import { hookDeviceList, runNetworkHooks, type HookResult } from "./hooks.js";
import { bringDown as realBringDown, bringUp as realBringUp, waitRunning } from "./interfaces.js";
import { decide, selectInterfaces, selectionRules, type InterfaceSelection, type SelectionRules } from "./selection.js";
import { listInterfaces as realListInterfaces, readInterface as realReadInterface, type NetInterface } from "../../sys/interfaces.js";
import { NetworkError } from "./ip.js";
import { TemporaryRoutes } from "./routes.js";

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

/**
 * Privileged steps another process does for this run (the password agent
 * for the client it runs without privileges); that process also undoes
 * them when the run ends. Each rejects with its one-line reason.
 */
export interface DelegatedSteps {
  bringUp(name: string): Promise<void>;
  addRoute(address: string, interfaceName: string): Promise<void>;
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
  /** Have another process bring interfaces up and add routes (see DelegatedSteps). */
  delegate?: DelegatedSteps;
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
  /** The selection's rules: from start(), or made at the first request of a session that serves requests only. */
  #rules: SelectionRules | null = null;
  /** Interfaces the run uses: chosen at the start, or adopted since. Routes may go through these only. */
  readonly #inUse = new Set<string>();
  readonly #broughtUp: string[] = [];
  /** Privileged steps under way, for close() to wait for. */
  readonly #underWay = new Set<Promise<unknown>>();
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
    this.routes = new TemporaryRoutes(() => this.#inUse, { log });
  }

  get selection(): InterfaceSelection | null {
    return this.#selection;
  }

  /** Interfaces this session brought up so far, in order. */
  get broughtUp(): readonly string[] {
    return [...this.#broughtUp];
  }

  /** Interfaces the run uses so far (chosen at the start, or adopted since). */
  get inUse(): ReadonlySet<string> {
    return new Set(this.#inUse);
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
    this.#rules = selection.rules;
    for (const name of selection.use) this.#inUse.add(name);
    for (const name of selection.missing) {
      // Without --connect, Zeroconf's survey warns and adopts it when it appears.
      if (this.#opts.connect !== null) log.warning(`not using nonexisting interface "${name}"`);
      else log.debug(`interface "${name}" is not there (yet)`);
    }
    for (const v of selection.verdicts) log.debug(`${v.verdict.reason} "${v.name}"`);
    if (selection.automatic && selection.use.length === 0) {
      if (this.#opts.connect !== null) throw new NetworkError("could not find a network interface");
      log.info("no network interface yet; will use one when it appears");
    }
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
          await this.#bringUp(name, selection.bringUp);
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

  /** Bring one chosen interface up, ourselves or through the delegate; note it if close() must take it down. */
  async #bringUp(name: string, allowed: readonly string[]): Promise<void> {
    const { log, delegate } = this.#opts;
    if (delegate) {
      await delegate.bringUp(name);
      log.debug(`interface "${name}" is up (brought up by the password agent if it was down)`);
      return;
    }
    const result = await this.#fx.bringUp(name, allowed);
    if (result === "brought-up") {
      this.#broughtUp.push(name);
      log.debug(`brought up interface "${name}"`);
    } else {
      log.debug(`interface "${name}" is already up`);
    }
  }

  async #restoreQuietConsole(): Promise<void> {
    const restore = this.#restoreConsole;
    this.#restoreConsole = null;
    if (restore) await restore();
  }

  /** The selection's rules; a session that was not started makes them from the interfaces there now. */
  async #currentRules(): Promise<SelectionRules> {
    if (this.#starting) await this.#starting.catch(() => {});
    this.#rules ??= selectionRules(
      this.#opts.interfaces,
      (await this.#fx.listInterfaces()).map((i) => i.name),
      { connectMode: this.#opts.connect !== null },
    );
    return this.#rules;
  }

  /**
   * Take `name` into use if the selection takes it (an interface that
   * appeared after the start), bringing it up if the selection says so.
   * Rejects with a one-line NetworkError if the selection does not take it,
   * it is not there, or bringing it up fails.
   */
  adopt(name: string): Promise<void> {
    return this.#track(async () => {
      const rules = await this.#currentRules();
      const iface = await this.#fx.readInterface(name);
      if (iface === null) throw new NetworkError(`cannot bring up ${name}: no such interface`);
      const { take, reason } = decide(rules, iface);
      if (take === null) throw new NetworkError(`cannot bring up ${name}: the --interface selection does not take it (${reason})`);
      if (take === "use") throw new NetworkError(`cannot bring up ${name}: it is named after "none", to be used as it is`);
      this.#inUse.add(name);
      await this.#bringUp(name, [name]);
    });
  }

  /**
   * Add a temporary host route to a server on an interface the selection
   * takes; remove it with the handle, or let close() do it.
   */
  addTemporaryRoute(address: string, interfaceName: string): Promise<void> {
    return this.#track(async () => {
      const { delegate } = this.#opts;
      if (delegate) return delegate.addRoute(address, interfaceName);
      if (!this.#inUse.has(interfaceName)) {
        // Asked for by a process that uses it: our rules must take it too.
        const iface = await this.#fx.readInterface(interfaceName);
        if (iface !== null && decide(await this.#currentRules(), iface).take !== null) this.#inUse.add(interfaceName);
      }
      await this.routes.add(address, interfaceName);
    });
  }

  /** Run a privileged step unless closing; close() waits for the ones under way. */
  #track(step: () => Promise<void>): Promise<void> {
    if (this.#closing) return Promise.reject(new NetworkError("cannot change the network: shutting down"));
    const running = step();
    this.#underWay.add(running);
    void running.catch(() => {}).finally(() => this.#underWay.delete(running));
    return running;
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
    await Promise.allSettled([...this.#underWay]);
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
