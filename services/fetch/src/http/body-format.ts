// Parsing a successful answer's body: JSON, or NDJSON (one JSON value per line, the list of
// them being the body, so `path: .` makes each line a record).
import type { BodyFormat } from "../source";

// Content types that mean one JSON value per line; JSON Lines is the same format by another name.
const NDJSON_TYPES = new Set([
  "application/x-ndjson",
  "application/ndjson",
  "application/jsonl",
  "application/x-jsonl",
]);

/** A parsed body, or why it could not be parsed. */
export type ParsedBody =
  { readonly ok: true; readonly body: unknown } | { readonly ok: false; readonly problem: string };

/** True when `contentType` (a header value, parameters allowed) names NDJSON. */
export function isNdjsonType(contentType: string | null): boolean {
  if (contentType === null) return false;
  return NDJSON_TYPES.has(contentType.split(";")[0].trim().toLowerCase());
}

/** The format a body is read in: the declared one, or for `auto` what the content-type says. */
export function formatOf(declared: BodyFormat, contentType: string | null): "json" | "ndjson" {
  if (declared !== "auto") return declared;
  return isNdjsonType(contentType) ? "ndjson" : "json";
}

/** Parses `text` as `format`: JSON (null for an empty body) or NDJSON (blank lines skipped). */
export function parseBody(text: string, format: "json" | "ndjson"): ParsedBody {
  // A byte order mark is legal at the start of a UTF-8 body and JSON.parse chokes on it.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (format === "json") {
    if (body.trim() === "") return { ok: true, body: null };
    try {
      return { ok: true, body: JSON.parse(body) };
    } catch {
      return { ok: false, problem: "a body that is not JSON" };
    }
  }
  const values: unknown[] = [];
  const lines = body.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    try {
      values.push(JSON.parse(line));
    } catch {
      return { ok: false, problem: `an NDJSON body whose line ${i + 1} is not JSON` };
    }
  }
  return { ok: true, body: values };
}
