import { createInbox } from "@nats-io/nats-core";
import type { Msg, MsgHdrs, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { MessageName, MessageTypes } from "@machina/protos";
import {
  CONTENT_TYPE_PROTOBUF,
  FixedHeaders,
  MachinaError,
  decodeBody,
  encodeBody,
  readErrorReply,
  toMachinaError,
  useFastCommandEncoding,
  useFastHeaderDecoding,
} from "@machina/wire";

/** Options of one mesh request. */
export interface MeshRequestOptions {
  /** Reply time-out, ms. Default 10 000. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** Options of one raw request ({@link MeshClient.requestMsg}). */
export interface MeshRawRequestOptions extends MeshRequestOptions {
  /** Headers to send. Default: none. */
  headers?: MsgHdrs;
}

/** One request waiting for its reply. */
interface Pending {
  subject: string;
  /** Reply message type, decoded in the subscription callback so a call costs one promise; null: resolve with the Msg. */
  repName: MessageName | null;
  resolve(value: unknown): void;
  reject(e: Error): void;
  /** performance.now() after which it has timed out. */
  deadline: number;
  timeoutMs: number;
}

/**
 * Typed request/reply between services, in protobuf, with errors turned back into MachinaErrors.
 *
 * Built for throughput (DESIGN §13): nats.js' own request() creates a request object, a timer and
 * a stack-capturing error per call. Here every reply arrives on one wildcard inbox subscription
 * (`<inbox>.<id>`) and is matched to its caller through a Map; one timer, armed for the earliest
 * deadline, serves every request's time-out; error objects exist only for requests that fail; the
 * request headers are built and encoded once per client.
 *
 * Failures: an error reply (Nats-Service-Error-Code) rejects with the MachinaError it carries; no
 * subscriber on the subject (the server's 503) with UNAVAILABLE; no reply in time with TIMEOUT; a
 * closed connection or {@link close} rejects everything pending with UNAVAILABLE.
 */
export class MeshClient {
  /** Under the connection's inbox prefix: a service's NATS user may read its own inboxes only. */
  private readonly inbox: string;
  private readonly pending = new Map<string, Pending>();
  /** Content-Type: protobuf, encoded once; nats-core only reads it. */
  private readonly headers = new FixedHeaders([["Content-Type", CONTENT_TYPE_PROTOBUF]]);
  private sub: Subscription | undefined;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Deadline the timer is armed for (Infinity when it is not armed). */
  private timerAt = Infinity;
  private closed = false;

  constructor(private readonly nc: NatsConnection) {
    // Every reply's headers are read (error code, status): on whatever connection it is given.
    useFastHeaderDecoding();
    useFastCommandEncoding();
    this.inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  }

  /** Sends `value` as message `reqName` to `subject` and decodes the reply as `repName`. */
  request<Q extends MessageName, R extends MessageName>(
    subject: string,
    reqName: Q,
    value: Partial<MessageTypes[Q]>,
    repName: R,
    opts: MeshRequestOptions = {},
  ): Promise<MessageTypes[R]> {
    let data: Uint8Array;
    try {
      data = encodeBody(reqName, value, "protobuf");
    } catch (err) {
      return Promise.reject(err as Error); // the ProtoShapeError naming the field, as before
    }
    return this.send(subject, data, repName, this.headers, opts.timeoutMs) as Promise<MessageTypes[R]>;
  }

  /**
   * Sends raw bytes and resolves with the reply message as it came (e.g. a JetStream PubAck);
   * only no responders (UNAVAILABLE), a time-out (TIMEOUT) and a lost connection reject.
   */
  requestMsg(subject: string, data: Uint8Array, opts: MeshRawRequestOptions = {}): Promise<Msg> {
    return this.send(subject, data, null, opts.headers, opts.timeoutMs) as Promise<Msg>;
  }

  private send(
    subject: string,
    data: Uint8Array,
    repName: MessageName | null,
    headers: MsgHdrs | undefined,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<unknown> {
    try {
      this.listen();
    } catch (err) {
      return Promise.reject(toRequestError(subject, err));
    }
    const token = (++this.seq).toString(36);
    return new Promise<unknown>((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      this.pending.set(token, { subject, repName, resolve, reject, deadline, timeoutMs });
      if (deadline < this.timerAt) this.arm(deadline);
      try {
        this.nc.publish(subject, data, { reply: `${this.inbox}.${token}`, headers });
      } catch (err) {
        this.pending.delete(token);
        reject(toRequestError(subject, err));
      }
    });
  }

  /** Number of requests waiting for a reply. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Stops the client: every pending request rejects with UNAVAILABLE, later ones too. The
   * connection stays open (it is not the client's).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const sub = this.sub;
    this.sub = undefined;
    try {
      sub?.unsubscribe();
    } catch {
      // the connection is already closed: nothing to unsubscribe
    }
    this.failAll("the client was closed");
  }

  private listen(): void {
    if (this.sub) return;
    if (this.closed) throw new MachinaError("UNAVAILABLE", "the mesh client was closed");
    const prefixLength = this.inbox.length + 1;
    const sub = this.nc.subscribe(`${this.inbox}.*`, {
      callback: (err, msg) => {
        if (err) {
          this.failAll(err.message, err);
          return;
        }
        const token = msg.subject.slice(prefixLength);
        const p = this.pending.get(token);
        if (p === undefined) return; // a late reply after its time-out
        this.pending.delete(token);
        settle(p, msg);
      },
    });
    this.sub = sub;
    sub.closed.then(
      () => this.subscriptionEnded(sub, new Error("connection closed")),
      (err: Error) => this.subscriptionEnded(sub, err),
    );
  }

  private subscriptionEnded(sub: Subscription, err: Error): void {
    if (this.sub !== sub) return; // close() already failed everything pending
    this.sub = undefined;
    this.failAll(err.message, err);
  }

  /** Arms the one timer for `deadline` (it must be earlier than the armed one). */
  private arm(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = deadline;
    // ceil: a timer must not fire before the deadline it serves; +1 absorbs timer granularity.
    this.timer = setTimeout(() => this.expire(), Math.max(1, Math.ceil(deadline - performance.now()) + 1));
    // The connection keeps the process alive while requests wait; the timer must not on its own.
    this.timer.unref();
  }

  /** Rejects every request past its deadline and re-arms for the earliest one left. */
  private expire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [token, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(token);
        p.reject(
          new MachinaError("TIMEOUT", `${p.subject} did not answer within ${p.timeoutMs} ms`, {
            details: { subject: p.subject },
          }),
        );
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    if (next !== Infinity) this.arm(next);
  }

  private failAll(reason: string, cause?: unknown): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      p.reject(
        new MachinaError("UNAVAILABLE", `request to ${p.subject} failed: ${reason}`, {
          cause,
          details: { subject: p.subject },
        }),
      );
    }
  }
}

/** Resolves or rejects a pending request with its reply. */
function settle(p: Pending, msg: Msg): void {
  try {
    const h = msg.headers;
    if (h !== undefined) {
      // The server answers 503 itself when nobody subscribes to the subject.
      if (h.code === 503 && msg.data.length === 0) {
        p.reject(
          new MachinaError("UNAVAILABLE", `no service answers ${p.subject}; is it running?`, {
            details: { subject: p.subject },
          }),
        );
        return;
      }
      if (p.repName === null) {
        p.resolve(msg);
        return;
      }
      const error = readErrorReply(msg);
      if (error) {
        p.reject(error);
        return;
      }
    }
    p.resolve(p.repName === null ? msg : decodeBody(p.repName, msg.data, "protobuf"));
  } catch (err) {
    // A reply that is not a `repName` (BAD_REQUEST from the decoder) or any other surprise.
    p.reject(toMachinaError(err));
  }
}

/** A request that could not be sent: bad input stays what it is, anything else is UNAVAILABLE. */
function toRequestError(subject: string, err: unknown): MachinaError {
  if (err instanceof MachinaError) return err;
  return new MachinaError("UNAVAILABLE", `request to ${subject} failed: ${(err as Error)?.message ?? err}`, {
    cause: err,
    details: { subject },
  });
}
