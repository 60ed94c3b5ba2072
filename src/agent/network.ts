// The network steps the agent does for the Mandos client it runs without
// privileges: the client asks over its channel (the client's one request
// protocol, src/protocol/privileged-requests.ts) to bring interfaces up
// and for temporary routes; a network session checks each request against
// the client's own --interface selection, read from the command line the
// agent runs it with, and the route rules, does it, and undoes all of it
// when the client's run ends, however it ends. A client that breaks the
// protocol's bounds is stopped at once.
import type { Duplex } from "node:stream";
import type { Logger } from "../cli/log.js";
import { errorMessage } from "../cli/log.js";
import { serveRequests } from "../protocol/privileged-requests.js";
import { clientSelection } from "../client/options.js";
import { NetworkSession } from "../client/network/session.js";

/** What the agent knows of the client's selection: its --interface words and --connect, or why it cannot tell. */
export type ClientSelection = { interfaces: string[]; connect: string | null } | { unknown: string };

/** Pure: read the selection from the client's options (the words after its program). */
export function selectionOfClient(args: string[]): ClientSelection {
  try {
    return clientSelection(args);
  } catch (err) {
    return { unknown: errorMessage(err) };
  }
}

export interface ClientNetwork {
  /** Close the channel and undo every step done for the client (routes first, then interfaces). */
  close(): Promise<void>;
}

export function serveClientNetwork(
  stream: Duplex,
  selection: { interfaces: string[]; connect: string | null },
  log: Logger,
  /** The client broke the protocol: stop it (`reason` says what it did). */
  stop: (reason: string) => void,
): ClientNetwork {
  const session = new NetworkSession({
    interfaces: selection.interfaces,
    connect: selection.connect,
    delaySeconds: 0,
    hookDir: null,
    debug: false,
    log,
    quietConsole: false,
  });
  const channel = serveRequests(
    stream,
    {
      "bring-up": (r) => session.adopt(r.interface),
      "add-route": (r) => session.addTemporaryRoute(r.address, r.interface),
    },
    stop,
  );
  return {
    async close() {
      channel.close();
      await session.close();
    },
  };
}
