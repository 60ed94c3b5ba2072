// Pure decisions of a fleet member about its view of etcd: whether it may
// serve secrets, and the keys it uses.

/**
 * Why no secret may be served at `now`, or null: a server serves from its
 * last confirmed view (a linearizable read of etcd that its cache matched)
 * for at most `graceMs`, because past that it cannot know whether another
 * server disabled the client.
 */
export function refusalAt(now: number, confirmedAt: number | null, graceMs: number): string | null {
  if (confirmedAt === null) return "fleet state not yet read from etcd";
  const age = now - confirmedAt;
  if (age <= graceMs) return null;
  return `no etcd quorum for ${Math.round(age / 1000)} s (grace ${Math.round(graceMs / 1000)} s): fleet state unconfirmed`;
}

/** Where a client's state lives: PREFIX clients/NAME. */
export function stateKey(prefix: string, name: string): string {
  return `${prefix}clients/${name}`;
}

/** The lock of a client's checker: PREFIX checkers/NAME, held on a server's lease. */
export function checkerKey(prefix: string, name: string): string {
  return `${prefix}checkers/${name}`;
}

/** The client a key names, and of which kind, or null for keys not ours. */
export function parseKey(prefix: string, key: string): { kind: "state" | "checker"; name: string } | null {
  if (!key.startsWith(prefix)) return null;
  const rest = key.slice(prefix.length);
  if (rest.startsWith("clients/")) return { kind: "state", name: rest.slice("clients/".length) };
  if (rest.startsWith("checkers/")) return { kind: "checker", name: rest.slice("checkers/".length) };
  return null;
}

/** The end of etcd's range of keys starting with `prefix` ("ab" → "ac"). */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i] = b[i]! + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}
