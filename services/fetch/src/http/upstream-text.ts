// Turning what an upstream said (or why it could not be reached) into short, secret-free text
// for error messages; shared by the API calls and the OAuth2 token requests.
import { redact } from "../source";

const MAX_UPSTREAM_TEXT = 200;

/**
 * A short, single-line, secret-free excerpt of an upstream error body, worded
 * `; upstream said: "..."`, or "" when the body says nothing.
 */
export function upstreamSays(text: string, secrets: readonly string[]): string {
  let msg = text;
  const parsed = parseJson(text) as { error?: unknown; message?: unknown; error_description?: unknown } | undefined;
  if (parsed !== null && typeof parsed === "object") {
    const m = parsed.error ?? parsed.message;
    // OAuth2 error bodies (RFC 6749 §5.2) put a code in `error` and the prose beside it.
    const prose = parsed.error_description;
    if (typeof m === "string") msg = typeof prose === "string" ? `${m}: ${prose}` : m;
  }
  msg = redact(msg, secrets)
    .replace(/[\r\n\t]+/g, " ")
    .trim();
  if (msg === "") return "";
  return `; upstream said: "${msg.length > MAX_UPSTREAM_TEXT ? `${msg.slice(0, MAX_UPSTREAM_TEXT)}...` : msg}"`;
}

/**
 * Why a request never got an answer: the socket error's code (ECONNREFUSED, ENOTFOUND...), else
 * its message.
 */
export function unreachableReason(err: unknown): string {
  // fetch() hid the code in `cause`; Node's own ERR_* codes say less than their messages (an
  // invalid header, say).
  const e = err as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined;
  for (const x of [e?.cause, e]) {
    if (typeof x?.code === "string" && !x.code.startsWith("ERR_")) return x.code;
  }
  for (const x of [e?.cause, e]) {
    if (typeof x?.message === "string" && x.message !== "") return x.message;
  }
  return String(err);
}

/** Parses a JSON body: null for an empty one, undefined when it is not JSON. */
export function parseJson(text: string): unknown {
  if (text.trim() === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
