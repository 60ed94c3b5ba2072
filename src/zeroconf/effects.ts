// What the browser and the responder do to the world, passed in so that
// their state machines run in tests without sockets or waiting: the clock
// and timers, chance (RFC 6762's random delays), opening mDNS links, and
// listing the network interfaces.
import { MdnsLink, type Link, type LinkOptions } from "./link.js";
import { listInterfaces, type NetInterface } from "../sys/interfaces.js";

export interface ZeroconfEffects {
  now(): number;
  /** Run `fn` after `ms`; returns what cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
  /** A number in [0, 1). */
  random(): number;
  openLink(opts: LinkOptions): Link;
  listInterfaces(): NetInterface[];
}

export const realEffects: ZeroconfEffects = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  random: () => Math.random(),
  openLink: (opts) => new MdnsLink(opts),
  listInterfaces: () => listInterfaces(),
};
