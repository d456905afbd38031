import { headers as makeHeaders } from "@nats-io/nats-core";
import type { MsgHdrs } from "@nats-io/nats-core";
import type { JsonObject } from "@machina/protos";
import { ErrorCode, MachinaError, statusOf } from "./errors";
import { contentTypeOf, decodeBody, encodeBody, encodingOf, sanitize } from "./encoding";
import type { Encoding, HeaderReader } from "./encoding";

/** Header carrying the one-line error description (micro-service convention). */
export const ERROR_HEADER = "Nats-Service-Error";
/** Header carrying the numeric, HTTP-like status (micro-service convention). */
export const ERROR_CODE_HEADER = "Nats-Service-Error-Code";

/** Headers and body of an error reply in the request's encoding. */
export function errorReply(err: MachinaError, encoding: Encoding): { headers: MsgHdrs; body: Uint8Array } {
  const h = makeHeaders();
  h.set(ERROR_HEADER, sanitize(err.message));
  h.set(ERROR_CODE_HEADER, String(err.status));
  h.set("Content-Type", contentTypeOf(encoding));
  const body = encodeBody(
    "Error",
    {
      code: err.code,
      status: err.status,
      message: err.message,
      details: jsonSafe(err.details),
      retryable: err.retryable,
    },
    encoding,
  );
  return { headers: h, body };
}

/** The MachinaError an error reply carries, or null when the message is not an error. */
export function readErrorReply(msg: {
  headers?: HeaderReader & { has?(k: string): boolean };
  data: Uint8Array;
}): MachinaError | null {
  const h = msg.headers;
  const codeText = h?.get(ERROR_CODE_HEADER) ?? "";
  if (!h || codeText === "") return null;
  const status = Number(codeText);
  let code: ErrorCode = codeForStatus(status);
  let message = h.get(ERROR_HEADER) || `error ${status}`;
  let details: Record<string, unknown> = {};
  let retryable: boolean | undefined;
  try {
    const body = decodeBody("Error", msg.data, encodingOf(h));
    if (body.code && Object.hasOwn(ErrorCode, body.code)) code = body.code as ErrorCode;
    if (body.message) message = body.message;
    details = body.details ?? {};
    // An empty or foreign body decodes to defaults (retryable false); only our own Error body,
    // which always has a code, may override the code's default retryability.
    if (body.code) retryable = body.retryable;
  } catch {
    // A responder that is not ours may send only the headers; they are enough.
  }
  return new MachinaError(code, message, { details, retryable });
}

function codeForStatus(status: number): ErrorCode {
  // Of the codes sharing 404, a reply that only says "404" means NOT_FOUND, not UNKNOWN_SOURCE.
  if (status === statusOf.NOT_FOUND) return "NOT_FOUND";
  const hit = (Object.keys(statusOf) as ErrorCode[]).find((c) => statusOf[c] === status);
  return hit ?? (status >= 500 ? "INTERNAL" : "BAD_REQUEST");
}

function jsonSafe(details: Record<string, unknown>): JsonObject {
  try {
    return JSON.parse(JSON.stringify(details)) as JsonObject;
  } catch {
    return {};
  }
}
