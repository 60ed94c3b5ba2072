// What a process that parses network input, and so runs unprivileged, may
// ask of a privileged process that does a few network steps for it: the
// request types, their validation, and the bounds on how much it may ask.
// The privileged side serves them with serveRequests(), the unprivileged
// side sends them through a Requester; both speak over a jsonLineChannel,
// whatever stream carries it. Two pairs speak it: the client's network
// worker and its root supervisor, and the client the password agent runs
// without privileges and the agent. The unprivileged side asks to bring an
// interface up (one its selection takes: at the start, or one that
// appeared later) and for a temporary route to a server; the privileged
// side undoes both when the run ends, so there is no request to undo. A
// request kind is an entry in OPS (its fields and their checks) and a
// handler on the privileged side.
//
// The shape of each field is checked here; whether the request is allowed
// (an address worth a route, an interface the run may use) is for the
// handler, which replies with an error for a well-formed request it
// refuses. A message outside the protocol or past a limit is not answered:
// the sender is broken or hostile, and the privileged side stops it.
import type { Duplex } from "node:stream";
import { errorMessage } from "../cli/log.js";
import { jsonLineChannel, type MessageChannel } from "./json-lines.js";

export const REQUEST_LIMITS = {
  /** Bytes in one request: its few short fields fit several times over. */
  maxMessageBytes: 1024,
  /** Requests sent and not answered yet. */
  maxUnanswered: 4,
  /** Requests in one run: each is for a distinct server or interface, and a network has a handful. */
  maxRequests: 64,
};
export type RequestLimits = typeof REQUEST_LIMITS;

/** Error texts in replies are cut to this length. */
const MAX_ERROR_CHARS = 500;
/** The most a reply takes as a JSON line: its error text, each character at most six bytes ("\u0000"), and the rest. */
export const MAX_REPLY_BYTES = 6 * MAX_ERROR_CHARS + 128;

export interface AddRouteRequest {
  type: "request";
  id: number;
  op: "add-route";
  /** IP address text; the handler decides whether it may have a route. */
  address: string;
  interface: string;
}

export interface BringUpRequest {
  type: "request";
  id: number;
  op: "bring-up";
  /** The handler decides whether the run's --interface selection takes it. */
  interface: string;
}

export type Request = AddRouteRequest | BringUpRequest;
export type RequestOp = Request["op"];

export interface Reply {
  type: "reply";
  id: number;
  /** null: done. */
  error: string | null;
}

/** Digits, hex digits, dots and colons: at most INET6_ADDRSTRLEN - 1 of them. */
const isAddressText = (v: unknown) => typeof v === "string" && /^[0-9A-Fa-f:.]{2,45}$/.test(v);

/** As the kernel's dev_valid_name(): 1-15 bytes, no "/", ":" or white space, not "." or "..". */
const isInterfaceName = (v: unknown) => typeof v === "string" && /^[!-~]{1,15}$/.test(v) && !/[/:]/.test(v) && v !== "." && v !== "..";

const OPS: Record<RequestOp, Record<string, (v: unknown) => boolean>> = {
  "add-route": { address: isAddressText, interface: isInterfaceName },
  "bring-up": { interface: isInterfaceName },
};
const COMMON_FIELDS = new Set(["type", "id", "op"]);

/** A value as an error message may show it: short, and on one line. */
const describe = (v: unknown) => (JSON.stringify(v) ?? String(v)).slice(0, 40);

/** Pure: the request in one message, or why it is not one. */
export function parseRequest(m: unknown): { ok: true; request: Request } | { ok: false; reason: string } {
  const fail = (reason: string) => ({ ok: false as const, reason });
  if (typeof m !== "object" || m === null || Array.isArray(m)) return fail("a message that is not an object");
  const r = m as Record<string, unknown>;
  if (r.type !== "request") return fail(`a message of type ${describe(r.type)}`);
  if (typeof r.id !== "number" || !Number.isSafeInteger(r.id) || r.id < 1) return fail(`a request with id ${describe(r.id)}`);
  const op = r.op;
  if (typeof op !== "string" || !Object.hasOwn(OPS, op)) return fail(`a request for an unknown operation ${describe(op)}`);
  const fields = OPS[op as RequestOp];
  for (const key of Object.keys(r)) {
    if (!COMMON_FIELDS.has(key) && !Object.hasOwn(fields, key)) return fail(`a ${op} request with an unknown field ${describe(key)}`);
  }
  for (const [key, valid] of Object.entries(fields)) {
    if (!valid(r[key])) return fail(`a ${op} request with an invalid ${key} ${describe(r[key])}`);
  }
  return { ok: true, request: r as unknown as Request };
}

/** Pure bookkeeping of the privileged side: ids only ever grow, and the limits hold. */
export class RequestGuard {
  #lastId = 0;
  #count = 0;
  #unanswered = 0;

  constructor(readonly limits: RequestLimits = REQUEST_LIMITS) {}

  admit(m: unknown): { ok: true; request: Request } | { ok: false; reason: string } {
    const parsed = parseRequest(m);
    if (!parsed.ok) return parsed;
    const { id } = parsed.request;
    const { maxRequests, maxUnanswered } = this.limits;
    if (id <= this.#lastId) return { ok: false, reason: `a request with id ${id} after id ${this.#lastId}` };
    if (this.#count >= maxRequests) return { ok: false, reason: `more than ${maxRequests} requests` };
    if (this.#unanswered >= maxUnanswered) return { ok: false, reason: `a request while ${maxUnanswered} were unanswered` };
    this.#lastId = id;
    this.#count++;
    this.#unanswered++;
    return parsed;
  }

  answered(): void {
    this.#unanswered--;
  }
}

export type RequestHandlers = { [Op in RequestOp]: (r: Extract<Request, { op: Op }>) => Promise<void> };

/**
 * The privileged side: serve the requests arriving on `stream`, one reply
 * each. On the first message outside the protocol or past a limit, reading
 * stops and `stop` is called once with what the peer did ("sent …").
 * The returned channel also carries messages of the caller's own.
 */
export function serveRequests(
  stream: Duplex,
  handlers: RequestHandlers,
  stop: (reason: string) => void,
  limits: RequestLimits = REQUEST_LIMITS,
): MessageChannel {
  const guard = new RequestGuard(limits);
  const refuse = (reason: string) => {
    channel.close();
    stop(`sent ${reason}`);
  };
  const channel = jsonLineChannel(stream, limits.maxMessageBytes, {
    message(m) {
      const admitted = guard.admit(m);
      if (!admitted.ok) return refuse(admitted.reason);
      const { request } = admitted;
      const handle = handlers[request.op] as (r: Request) => Promise<void>;
      handle(request).then(
        () => null,
        (err: unknown) => errorMessage(err).slice(0, MAX_ERROR_CHARS),
      ).then((error) => {
        guard.answered();
        channel.send({ type: "reply", id: request.id, error } satisfies Reply);
      });
    },
    invalid: refuse,
    closed() {},
  });
  return channel;
}

/** A request as its sender writes it: each kind with its own fields. */
type Outgoing = Request extends infer R ? (R extends Request ? Omit<R, "type" | "id"> : never) : never;

/**
 * The unprivileged side. It keeps within the limits itself, so a
 * well-behaved process is never stopped: past maxRequests a request is
 * refused here without being sent, and past maxUnanswered it waits.
 */
export class Requester {
  #nextId = 1;
  #issued = 0;
  #unanswered = 0;
  #pending = new Map<number, { resolve(error: string | null): void; reject(err: Error): void }>();
  #slotWaiters: Array<() => void> = [];
  #closed: string | null = null;

  constructor(
    private readonly send: (message: Request) => void,
    readonly limits: RequestLimits = REQUEST_LIMITS,
  ) {}

  /** Resolves once done; rejects with the privileged side's reason, or if it cannot be asked. */
  async request(what: Outgoing): Promise<void> {
    if (this.#issued >= this.limits.maxRequests) throw new Error(`not asked: already ${this.limits.maxRequests} requests in this run`);
    this.#issued++;
    while (this.#unanswered >= this.limits.maxUnanswered && this.#closed === null) {
      await new Promise<void>((wake) => this.#slotWaiters.push(wake));
    }
    if (this.#closed !== null) throw new Error(this.#closed);
    const id = this.#nextId++;
    this.#unanswered++;
    try {
      const error = await new Promise<string | null>((resolve, reject) => {
        this.#pending.set(id, { resolve, reject });
        this.send({ type: "request", id, ...what } as Request);
      });
      if (error !== null) throw new Error(error);
    } finally {
      this.#unanswered--;
      this.#slotWaiters.shift()?.();
    }
  }

  /** Take a message from the privileged side; false if it is not a reply. */
  receive(m: unknown): boolean {
    if (typeof m !== "object" || m === null || (m as { type?: unknown }).type !== "reply") return false;
    const { id, error } = m as Partial<Reply>;
    const waiter = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (waiter) {
      this.#pending.delete(id!);
      waiter.resolve(error === null ? null : typeof error === "string" ? error : "a malformed reply");
    }
    return true;
  }

  /** The privileged side is gone: fail whatever waits, and every later request. */
  close(reason: string): void {
    this.#closed ??= reason;
    for (const w of this.#pending.values()) w.reject(new Error(reason));
    this.#pending.clear();
    for (const wake of this.#slotWaiters.splice(0)) wake();
  }
}
