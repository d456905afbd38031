// Sends one HTTP request upstream over node:http / node:https. The WHATWG fetch() (undici) costs
// about three times the CPU per request of node:http with a keep-alive Agent, and the fetch
// service needs none of what fetch adds (CORS, redirects); bodies are decoded in body-reader.ts.
import http from "node:http";
import https from "node:https";
import { ACCEPT_ENCODING, collectBody } from "./body-reader";

export { BodyTooLargeError, BodyDecodeError } from "./body-reader";

/** Default cap on a response body (decoded): 10 MB, large enough for any sane JSON page, small enough to bound memory. */
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;

// Shared by every source so connections to one host are reused across calls. The free-socket
// timeout stays under the usual 5 s server keep-alive timeout (Node's default), and lets the
// agent honour a shorter `Keep-Alive: timeout=N` hint (it only lowers a non-zero timeout), so a
// reused socket is rarely one the server is closing. LIFO keeps the busiest sockets warm and
// lets the others idle out.
const AGENT_OPTIONS = { keepAlive: true, maxSockets: 256, timeout: 4_000, scheduling: "lifo" } as const;
const httpAgent = new http.Agent(AGENT_OPTIONS);
const httpsAgent = new https.Agent(AGENT_OPTIONS);

/** One request to send; `url` carries the path and query string. */
export interface UpstreamRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  /** Request body, sent UTF-8 encoded with a content-length; undefined for none. */
  readonly body?: string;
  /** Deadline for the whole exchange: connect, headers and body. */
  readonly timeoutMs: number;
  /** Largest response body accepted, on the wire and decoded, in bytes; default {@link DEFAULT_MAX_BODY_BYTES}. */
  readonly maxBytes?: number;
}

/** An upstream answer, whatever its status; redirects are never followed. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Headers;
  /** The body, content-decoded (gzip, deflate, br), as UTF-8. */
  readonly text: string;
}

/** The exchange outlived `timeoutMs`; named like the error of `AbortSignal.timeout()`. */
export class UpstreamTimeoutError extends Error {
  override readonly name = "TimeoutError";
  constructor(readonly timeoutMs: number) {
    super(`the request timed out after ${timeoutMs} ms`);
  }
}

/**
 * Sends `req` and resolves with the full answer. Rejects with {@link UpstreamTimeoutError},
 * {@link BodyTooLargeError}, {@link BodyDecodeError}, or the socket's error (carrying `code`,
 * such as ECONNREFUSED).
 */
export function sendRequest(req: UpstreamRequest): Promise<UpstreamResponse> {
  return new Promise<UpstreamResponse>((resolve, reject) => {
    const { url } = req;
    const maxBytes = req.maxBytes ?? DEFAULT_MAX_BODY_BYTES;
    const secure = url.protocol === "https:";
    if (!secure && url.protocol !== "http:") {
      reject(new TypeError(`unsupported protocol ${url.protocol}`));
      return;
    }
    // fetch() refused these and node:http would quietly turn them into basic auth: keep refusing.
    if (url.username !== "" || url.password !== "") {
      reject(new TypeError("Request cannot be constructed from a URL that includes credentials"));
      return;
    }
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-length"))
      headers["content-length"] = String(Buffer.byteLength(req.body));
    if (!Object.keys(headers).some((h) => h.toLowerCase() === "accept-encoding"))
      headers["accept-encoding"] = ACCEPT_ENCODING;

    let outgoing: http.ClientRequest | undefined;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Destroying drops the socket instead of returning a half-read one to the pool.
      outgoing?.destroy();
      reject(err);
    };
    const done = (res: UpstreamResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(res);
    };

    const timer = setTimeout(() => fail(new UpstreamTimeoutError(req.timeoutMs)), req.timeoutMs);
    try {
      outgoing = (secure ? https : http).request({
        agent: secure ? httpsAgent : httpAgent,
        method: req.method,
        // URL keeps IPv6 literals bracketed; the socket wants them bare.
        hostname: url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port === "" ? undefined : Number(url.port),
        path: url.pathname + url.search,
        headers,
      });
    } catch (err) {
      // Invalid header names or values throw synchronously.
      fail(err as Error);
      return;
    }
    outgoing.on("error", fail);
    outgoing.on("response", (res) => {
      res.on("error", fail);
      // A connection cut mid-body ends with 'close' but no 'end'.
      res.on("close", () => {
        if (!res.complete) fail(Object.assign(new Error("the connection closed mid-response"), { code: "ECONNRESET" }));
      });
      let responseHeaders: Headers;
      try {
        responseHeaders = toHeaders(res.rawHeaders);
      } catch (err) {
        fail(err as Error);
        return;
      }
      collectBody(res, maxBytes, {
        fail,
        done: (body) => done({ status: res.statusCode ?? 0, headers: responseHeaders, text: body.toString("utf8") }),
      });
    });
    outgoing.end(req.body);
  });
}

// From the raw name/value pairs, so repeated headers join with ", " exactly as fetch's Headers
// does (node's parsed `headers` keeps only the first of some, such as retry-after).
function toHeaders(raw: readonly string[]): Headers {
  const headers = new Headers();
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
  return headers;
}
