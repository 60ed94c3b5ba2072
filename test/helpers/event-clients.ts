// The clients the metrics and journal tests drive through every event, with
// keys from Debian's mandos-keygen: "served" waits a second for approval and
// is approved by default; "sleepy" has a failing checker and a one-second
// timeout, so it is soon disabled and refused; "stranger" is in no
// clients.conf, so its key is unknown.
import { join } from "node:path";
import { makeKeys, type ClientKeys } from "./server.js";

export interface EventClients {
  served: ClientKeys;
  sleepy: ClientKeys;
  stranger: ClientKeys;
  /** clients.conf with served and sleepy. */
  clients: string;
}

export async function eventClients(dir: string): Promise<EventClients> {
  const [served, sleepy, stranger] = await Promise.all([
    makeKeys(join(dir, "served"), "served secret"),
    makeKeys(join(dir, "sleepy"), "sleepy secret"),
    makeKeys(join(dir, "stranger"), "stranger secret"),
  ]);
  const clients =
    served.section("served") + "approval_delay = PT1S\napproved_by_default = True\n" + sleepy.section("sleepy") + "checker = false\ninterval = PT1S\ntimeout = PT1S\n";
  return { served, sleepy, stranger, clients };
}
