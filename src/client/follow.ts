// Following the network while browsing: each Zeroconf survey of the
// interfaces also adopts those that appeared since the start and that the
// run's --interface selection takes (a NIC whose driver loaded late, a
// named interface that was missing), brings them up through whoever does
// the run's privileged steps, and browses on them, with no restart. The
// decision is selection.ts's newlyTaken(); this is its edge.
import { errorMessage, type Logger } from "../cli/log.js";
import { missingNames, newlyTaken, type SelectionRules } from "./network/index.js";
import type { NetInterface } from "../sys/interfaces.js";

export class InterfaceFollower {
  readonly #inUse: Set<string>;

  constructor(
    private readonly rules: SelectionRules,
    inUseAtStart: Iterable<string>,
    /** Bring an adopted interface up (the session, or a request to the privileged side). */
    private readonly bringUp: (name: string) => Promise<void>,
    private readonly log: Logger,
  ) {
    this.#inUse = new Set(inUseAtStart);
  }

  /**
   * For the browser's survey: adopt what is new, then the interfaces to
   * browse on, and the named ones still missing (the browser looks again
   * every second for those).
   */
  readonly select = (all: NetInterface[]): { chosen: NetInterface[]; missing: string[] } => {
    const known = all.filter((i) => i.index > 0);
    for (const { name, take, reason } of newlyTaken(this.rules, known, this.#inUse)) {
      this.#inUse.add(name);
      this.log.debug(`${reason} "${name}"`);
      this.log.info(`using interface "${name}", which appeared after the start`);
      if (take === "bring-up") {
        void this.bringUp(name).catch((err: unknown) => this.log.warning(errorMessage(err)));
      }
    }
    return {
      chosen: known.filter((i) => this.#inUse.has(i.name)),
      missing: missingNames(this.rules, new Set(known.map((i) => i.name))),
    };
  };
}
