// How many connections each source address holds, against a cap, so one
// host cannot take every connection slot from the clients of a reboot
// storm. Decisions only: the listener does the counting's I/O.
export type Admission = "taken" | "refused" | "refused again";

export class PeerSlots {
  private readonly held = new Map<string, number>();
  /** Addresses refused since they last went below the cap: said once, not per connection. */
  private readonly saturated = new Set<string>();

  /** Lowering it refuses new connections only; those held stay. */
  constructor(public perAddress: number) {}

  /** A new connection from `address`: "taken" (release it later), or refused. */
  take(address: string): Admission {
    const n = this.held.get(address) ?? 0;
    if (n >= this.perAddress) {
      if (this.saturated.has(address)) return "refused again";
      this.saturated.add(address);
      return "refused";
    }
    this.held.set(address, n + 1);
    return "taken";
  }

  /** A connection that was "taken" has ended. */
  release(address: string): void {
    const n = (this.held.get(address) ?? 0) - 1;
    if (n > 0) this.held.set(address, n);
    else this.held.delete(address);
    this.saturated.delete(address);
  }

  holding(address: string): number {
    return this.held.get(address) ?? 0;
  }
}
