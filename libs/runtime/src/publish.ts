import { headers as makeHeaders } from "@nats-io/nats-core";
import type { Msg } from "@nats-io/nats-core";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { MessageName, MessageTypes } from "@machina/protos";
import { CONTENT_TYPE_PROTOBUF, MachinaError, SENDER_HEADER, TIMING_HEADER, encodeBody } from "@machina/wire";
import { isCasConflict } from "./cas-conflict";
import { MeshClient } from "./mesh-client";
import { RESOURCES_HEADER } from "./resources";

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
  /** Machina-Resources value: what running the message needs of the replica that takes it. Default none. */
  resources?: string;
}

/** What the stream said when it stored a message. */
export interface StoredAck {
  stream: string;
  seq: number;
  /** The stream already had this message id (within its duplicate window) and dropped this copy. */
  duplicate: boolean;
}

// How long a publish waits for the stream's acknowledgement (nats.js' JetStream default too).
const PUBACK_TIMEOUT_MS = 5_000;
const decoder = new TextDecoder();

/**
 * Publishes a pipeline message in protobuf and resolves once the stream stored it (PubAck).
 * Through a {@link MeshClient} (what services pass) the PubAck comes back on the client's shared
 * inbox: nats.js' request path builds a stack-capturing error for every call, even a successful
 * one, which showed as the top frame of the invoke service's profile.
 */
export async function publishDurable<N extends MessageName>(
  via: MeshClient | JetStreamClient,
  subject: string,
  name: N,
  value: Partial<MessageTypes[N]>,
  opts: DurablePublishOptions,
): Promise<StoredAck> {
  const h = makeHeaders();
  h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
  if (opts.timing) h.set(TIMING_HEADER, opts.timing);
  if (opts.sender) h.set(SENDER_HEADER, opts.sender);
  if (opts.resources) h.set(RESOURCES_HEADER, opts.resources);
  const data = encodeBody(name, value, "protobuf");
  try {
    if (via instanceof MeshClient) {
      h.set("Nats-Msg-Id", opts.msgID);
      if (opts.expectEmptySubject) h.set("Nats-Expected-Last-Subject-Sequence", "0");
      return readPubAck(await via.requestMsg(subject, data, { headers: h, timeoutMs: PUBACK_TIMEOUT_MS }));
    }
    const ack = await via.publish(subject, data, {
      msgID: opts.msgID,
      headers: h,
      ...(opts.expectEmptySubject ? { expect: { lastSubjectSequence: 0 } } : {}),
    });
    return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
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

/** The PubAck in a reply, or the JetStream API error it carries (thrown with its err_code). */
export function readPubAck(msg: Msg): StoredAck {
  let body: {
    stream?: unknown;
    seq?: unknown;
    duplicate?: unknown;
    error?: { err_code?: unknown; description?: unknown };
  };
  try {
    body = JSON.parse(decoder.decode(msg.data)) as typeof body;
  } catch {
    throw new Error("the reply is not a JetStream acknowledgement");
  }
  if (body.error !== undefined) {
    throw Object.assign(new Error(String(body.error.description ?? "JetStream refused the message")), {
      api_error: { err_code: body.error.err_code },
    });
  }
  if (typeof body.stream !== "string" || body.stream === "" || typeof body.seq !== "number") {
    throw new Error("invalid JetStream acknowledgement");
  }
  return { stream: body.stream, seq: body.seq, duplicate: body.duplicate === true };
}
