import type { JsonObject, MessageName } from "@machina/protos";
import { decodeBody, encodingOf } from "@machina/wire";
import type { WorkStream } from "./dead-letter-store";

// The message each pipeline stream carries (what its consumer decodes).
const PAYLOAD_TYPES: Record<WorkStream, MessageName> = {
  FETCH: "FetchTask",
  FETCHED: "QueryResponses",
  AGGREGATE: "RecordBatches",
  STORE: "RecordBatches",
};

/** A dead letter's payload as JSON, or why it could not be decoded. */
export interface DecodedPayload {
  /** Message name tried, e.g. RecordBatch; "" when the stream is not a pipeline stream. */
  type: string;
  /** The payload in proto3 JSON; undefined when it did not decode. */
  json?: JsonObject;
  /** Why it did not decode. */
  error?: string;
}

/** Decodes a payload as the message its original stream carries, honouring its Content-Type. */
export function decodePayload(
  streamKey: WorkStream | undefined,
  payload: Uint8Array,
  contentType: string,
): DecodedPayload {
  if (!streamKey)
    return { type: "", error: "the original subject belongs to no pipeline stream, so the payload type is unknown" };
  const type = PAYLOAD_TYPES[streamKey];
  try {
    const value = decodeBody(
      type,
      payload,
      encodingOf({ get: (k) => (k.toLowerCase() === "content-type" ? contentType : "") }),
    );
    // The codecs yield proto3-JSON-ready plain objects; these three messages hold no bytes fields.
    return { type, json: value as unknown as JsonObject };
  } catch (err) {
    return { type, error: `not a ${type} in ${contentType || "application/json"}: ${(err as Error).message}` };
  }
}
