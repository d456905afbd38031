import { headers as makeHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import type { MessageName, MessageTypes } from "@machina/protos";
import { CONTENT_TYPE_PROTOBUF, MachinaError, decodeBody, encodeBody, readErrorReply } from "@machina/wire";

/** Options of one mesh request. */
export interface MeshRequestOptions {
  /** Reply time-out, ms. Default 10 000. */
  timeoutMs?: number;
}

/** Typed request/reply between services, in protobuf, with errors turned back into MachinaErrors. */
export class MeshClient {
  constructor(private readonly nc: NatsConnection) {}

  /** Sends `value` as message `reqName` to `subject` and decodes the reply as `repName`. */
  async request<Q extends MessageName, R extends MessageName>(
    subject: string,
    reqName: Q,
    value: Partial<MessageTypes[Q]>,
    repName: R,
    opts: MeshRequestOptions = {},
  ): Promise<MessageTypes[R]> {
    const h = makeHeaders();
    h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
    let reply;
    try {
      reply = await this.nc.request(subject, encodeBody(reqName, value, "protobuf"), { timeout: opts.timeoutMs ?? 10_000, headers: h });
    } catch (err) {
      const msg = String((err as Error).message ?? err);
      if (/no responders/i.test(msg) || (err as { code?: string }).code === "503") {
        throw new MachinaError("UNAVAILABLE", `no service answers ${subject}; is it running?`, { details: { subject } });
      }
      if (/timeout/i.test(msg)) {
        throw new MachinaError("TIMEOUT", `${subject} did not answer within ${opts.timeoutMs ?? 10_000} ms`, { details: { subject } });
      }
      throw new MachinaError("UNAVAILABLE", `request to ${subject} failed: ${msg}`, { cause: err });
    }
    const error = readErrorReply(reply);
    if (error) throw error;
    return decodeBody(repName, reply.data, "protobuf");
  }
}
