import { createInbox, headers as makeHeaders } from "@nats-io/nats-core";
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { MessageName, MessageTypes } from "@machina/protos";
import { CONTENT_TYPE_PROTOBUF, MachinaError, decodeBody, encodeBody, readErrorReply } from "@machina/wire";

/** Options of one mesh request. */
export interface MeshRequestOptions {
  /** Reply time-out, ms. Default 10 000. */
  timeoutMs?: number;
}

interface Pending {
  subject: string;
  resolve(m: Msg): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Typed request/reply between services, in protobuf, with errors turned back into MachinaErrors.
 * Replies arrive on one inbox subscription and are matched by a per-request token: nats.js'
 * own request() builds a stack-capturing error object per call, which dominated the CPU profile.
 */
export class MeshClient {
  private readonly inbox = createInbox();
  private readonly pending = new Map<string, Pending>();
  private sub: Subscription | undefined;
  private seq = 0;

  constructor(private readonly nc: NatsConnection) {}

  /** Sends `value` as message `reqName` to `subject` and decodes the reply as `repName`. */
  async request<Q extends MessageName, R extends MessageName>(
    subject: string,
    reqName: Q,
    value: Partial<MessageTypes[Q]>,
    repName: R,
    opts: MeshRequestOptions = {},
  ): Promise<MessageTypes[R]> {
    const reply = await this.send(subject, encodeBody(reqName, value, "protobuf"), opts.timeoutMs ?? 10_000);
    const error = readErrorReply(reply);
    if (error) throw error;
    return decodeBody(repName, reply.data, "protobuf");
  }

  private send(subject: string, data: Uint8Array, timeoutMs: number): Promise<Msg> {
    this.listen();
    const token = (++this.seq).toString(36);
    const h = makeHeaders();
    h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(token);
        reject(
          new MachinaError("TIMEOUT", `${subject} did not answer within ${timeoutMs} ms`, { details: { subject } }),
        );
      }, timeoutMs);
      this.pending.set(token, { subject, resolve, reject, timer });
      try {
        this.nc.publish(subject, data, { reply: `${this.inbox}.${token}`, headers: h });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(token);
        reject(
          new MachinaError("UNAVAILABLE", `request to ${subject} failed: ${(err as Error).message}`, { cause: err }),
        );
      }
    });
  }

  private listen(): void {
    if (this.sub) return;
    const prefixLength = this.inbox.length + 1;
    this.sub = this.nc.subscribe(`${this.inbox}.*`, {
      callback: (err, msg) => {
        if (err) return this.failAll(err);
        const token = msg.subject.slice(prefixLength);
        const p = this.pending.get(token);
        if (!p) return; // a late reply after its time-out
        this.pending.delete(token);
        clearTimeout(p.timer);
        // The server answers 503 itself when nobody subscribes to the subject.
        if (msg.headers?.code === 503 && msg.data.length === 0) {
          p.reject(
            new MachinaError("UNAVAILABLE", `no service answers ${p.subject}; is it running?`, {
              details: { subject: p.subject },
            }),
          );
        } else {
          p.resolve(msg);
        }
      },
    });
    this.sub.closed.then(
      () => this.failAll(new Error("connection closed")),
      (err: Error) => this.failAll(err),
    );
  }

  private failAll(err: Error): void {
    this.sub = undefined;
    for (const [token, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(token);
      p.reject(new MachinaError("UNAVAILABLE", `request to ${p.subject} failed: ${err.message}`, { cause: err }));
    }
  }
}
