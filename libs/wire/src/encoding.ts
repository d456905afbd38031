import { codec, ProtoShapeError } from "@machina/protos";
import type { MessageName, MessageTypes } from "@machina/protos";
import { MachinaError } from "./errors";

/** Content-Type of proto3 JSON bodies (the default). */
export const CONTENT_TYPE_JSON = "application/json";
/** Content-Type of binary protobuf bodies (what services use among themselves). */
export const CONTENT_TYPE_PROTOBUF = "application/x-protobuf";

/** How a body is encoded. */
export type Encoding = "json" | "protobuf";

/** Minimal header reader, satisfied by nats-core's MsgHdrs. */
export interface HeaderReader {
  get(k: string): string;
}

/** Encoding named by a Content-Type header; JSON when absent; BAD_REQUEST when unsupported. */
export function encodingOf(headers?: HeaderReader | null): Encoding {
  const raw = headers?.get("Content-Type") ?? "";
  // What services and `nats req` send, exactly: no parsing needed.
  if (raw === CONTENT_TYPE_PROTOBUF) return "protobuf";
  if (raw === "" || raw === CONTENT_TYPE_JSON) return "json";
  const ct = raw.split(";")[0].trim().toLowerCase();
  if (ct === "" || ct === CONTENT_TYPE_JSON) return "json";
  if (ct === CONTENT_TYPE_PROTOBUF || ct === "application/protobuf") return "protobuf";
  throw new MachinaError(
    "BAD_REQUEST",
    `unsupported Content-Type "${sanitize(raw)}": send ${CONTENT_TYPE_JSON} (default) or ${CONTENT_TYPE_PROTOBUF}`,
    {
      details: { contentType: sanitize(raw) },
    },
  );
}

/** Content-Type header value for an encoding. */
export function contentTypeOf(enc: Encoding): string {
  return enc === "json" ? CONTENT_TYPE_JSON : CONTENT_TYPE_PROTOBUF;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const enc8 = new TextEncoder();

/** Decodes a request/message body into message `name`; malformed input becomes BAD_REQUEST naming what is wrong. */
export function decodeBody<N extends MessageName>(name: N, data: Uint8Array, encoding: Encoding): MessageTypes[N] {
  const c = codec(name);
  try {
    if (encoding === "protobuf") return c.decode(data);
    let text: string;
    try {
      text = utf8.decode(data);
    } catch {
      throw new MachinaError(
        "BAD_REQUEST",
        `body is not UTF-8 text; send proto3 JSON for ${name} or set Content-Type: ${CONTENT_TYPE_PROTOBUF}`,
      );
    }
    if (text.trim() === "") return c.fromJson({});
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new MachinaError("BAD_REQUEST", `malformed JSON for ${name}: ${(err as Error).message}`, {
        retryable: false,
      });
    }
    return c.fromJson(json);
  } catch (err) {
    if (err instanceof ProtoShapeError) {
      throw new MachinaError("BAD_REQUEST", `invalid ${err.message}`, {
        details: { field: err.path, type: name },
        retryable: false,
      });
    }
    throw err;
  }
}

/** Encodes message `name` in the given encoding. */
export function encodeBody<N extends MessageName>(
  name: N,
  value: Partial<MessageTypes[N]>,
  encoding: Encoding,
): Uint8Array {
  const c = codec(name);
  if (encoding === "protobuf") return c.encode(value);
  return enc8.encode(JSON.stringify(c.toJson(value), bytesAsBase64));
}

// proto3 JSON writes bytes as base64; plain JSON.stringify would write a Uint8Array as {"0":..}.
function bytesAsBase64(_key: string, v: unknown): unknown {
  return v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : v;
}

/** Makes text safe for a header value: no CR/LF (which makes nats fail the reply), bounded length. */
export function sanitize(text: string, max = 300): string {
  // eslint-disable-next-line no-control-regex -- stripping control characters is the point
  const flat = text.replace(/[\r\n]+/g, " ").replace(/[\x00-\x1f\x7f]/g, "");
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
