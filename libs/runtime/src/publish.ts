import { headers as makeHeaders } from "@nats-io/nats-core";
import type { JetStreamClient, PubAck } from "@nats-io/jetstream";
import type { MessageName, MessageTypes } from "@machina/protos";
import { CONTENT_TYPE_PROTOBUF, MachinaError, SENDER_HEADER, TIMING_HEADER, encodeBody } from "@machina/wire";
import { isCasConflict } from "./cas-conflict";

/** Options of a durable publish. */
export interface DurablePublishOptions {
  /** Deterministic id: the stream drops a second publish of it within its duplicate window. */
  msgID: string;
  /** Machina-Timing value to pass on. */
  timing?: string;
  /** Sender node id (Machina-Sender). */
  sender?: string;
  /**
   * Store only if the subject holds no message now; otherwise fail with CONFLICT
   * (`details.conflict: true`), not retryable. Default false.
   */
  expectEmptySubject?: boolean;
}

/** Publishes a pipeline message in protobuf and resolves once the stream stored it (PubAck). */
export async function publishDurable<N extends MessageName>(
  js: JetStreamClient,
  subject: string,
  name: N,
  value: Partial<MessageTypes[N]>,
  opts: DurablePublishOptions,
): Promise<PubAck> {
  const h = makeHeaders();
  h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
  if (opts.timing) h.set(TIMING_HEADER, opts.timing);
  if (opts.sender) h.set(SENDER_HEADER, opts.sender);
  try {
    return await js.publish(subject, encodeBody(name, value, "protobuf"), {
      msgID: opts.msgID,
      headers: h,
      ...(opts.expectEmptySubject ? { expect: { lastSubjectSequence: 0 } } : {}),
    });
  } catch (err) {
    if (opts.expectEmptySubject && isCasConflict(err)) {
      throw new MachinaError("CONFLICT", `${subject} already holds a message`, {
        retryable: false,
        details: { conflict: true, subject },
      });
    }
    throw new MachinaError("UNAVAILABLE", `could not store message on ${subject}: ${(err as Error).message}`, {
      cause: err,
      details: { dependency: "nats" },
    });
  }
}
