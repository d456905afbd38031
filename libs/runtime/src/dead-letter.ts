import { headers as makeHeaders } from "@nats-io/nats-core";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { MeshNames } from "@machina/subjects";
import { CONTENT_TYPE_PROTOBUF, DEAD_LETTER_ERROR_HEADER, MachinaError, encodeBody } from "@machina/wire";

/** The stream message a dead letter is made from. */
export interface LetterSource {
  stream: string;
  subject: string;
  seq: number;
  deliveries: number;
  data: Uint8Array;
  /** Content-Type of `data`. */
  contentType: string;
}

/**
 * Parks a message (or one part of it, re-encoded in protobuf: `part` then names it) on the
 * dead-letter stream with its error; resolves once the letter is stored. Its id follows from the
 * stream sequence and part, so parking the same thing again is dropped as a duplicate.
 * UNAVAILABLE when it cannot be stored: the message must then stay where it is.
 */
export async function storeDeadLetter(
  js: JetStreamClient,
  names: MeshNames,
  src: LetterSource,
  err: MachinaError,
  part?: { part: string; payload: Uint8Array },
): Promise<void> {
  const h = makeHeaders();
  h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
  h.set(DEAD_LETTER_ERROR_HEADER, err.code);
  const body = encodeBody(
    "DeadLetter",
    {
      stream: src.stream,
      subject: src.subject,
      streamSeq: src.seq,
      deliveries: src.deliveries,
      errorCode: err.code,
      errorMessage: err.message,
      payload: part?.payload ?? src.data,
      contentType: part ? CONTENT_TYPE_PROTOBUF : src.contentType,
    },
    "protobuf",
  );
  const msgID = `dlq-${src.stream}-${src.seq}${part ? `-${part.part}` : ""}`;
  try {
    await js.publish(names.dlq(src.stream), body, { headers: h, msgID });
  } catch (e) {
    throw new MachinaError("UNAVAILABLE", `could not store a dead letter: ${(e as Error).message}`, {
      cause: e,
      details: { dependency: "nats" },
    });
  }
}
