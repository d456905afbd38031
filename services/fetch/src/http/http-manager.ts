import { MachinaError } from "@machina/wire";
import { BodyTooLargeError, DEFAULT_MAX_BODY_BYTES, sendRequest, type UpstreamResponse } from "./http-client";
import { retryAfterMs } from "./rate-headers";
import {
  redact,
  renderTemplate,
  type AuthSpec,
  type RenderContext,
  type ResolvedData,
  type SourceDef,
  type Template,
} from "../source";

/** One rendered upstream request; `path` is already URL-encoded. */
export interface HttpRequest {
  readonly query: string;
  readonly method: string;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  /** JSON body, or undefined for none. */
  readonly body?: unknown;
}

/** A successful upstream answer. */
export interface HttpResult {
  readonly status: number;
  readonly headers: Headers;
  /** Parsed JSON; null for an empty body. */
  readonly body: unknown;
  /** Attempts made, including the successful one. */
  readonly attempts: number;
  /** Milliseconds spent waiting on the upstream across attempts (backoff sleeps excluded). */
  readonly sourceTimeMs: number;
}

/** Callbacks around each attempt; the fetcher uses them for the limiter. */
export interface CallHooks {
  /** Runs before every attempt, retries included (each attempt spends upstream quota); throwing stops the call. */
  beforeAttempt?(attempt: number): Promise<void>;
  /** Sees every upstream answer's status and headers; failures here never fail the call. */
  onResponse?(status: number, headers: Headers): Promise<void>;
  /** Runs after every attempt, answered or not; failures here never fail the call. */
  afterAttempt?(): Promise<void>;
}

/** Performs HTTP calls for one source: auth, timeout, retries, error mapping. */
export interface HttpManager {
  call(req: HttpRequest, hooks?: CallHooks): Promise<HttpResult>;
}

/** Options mainly for tests: a deterministic random source and sleep. */
export interface HttpManagerOptions {
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

// Failed attempt, classified: retryable ones are retried, others thrown at once.
type Failure = { retryable: boolean; error: MachinaError; retryAfterMs?: number };

const MAX_UPSTREAM_TEXT = 200;

// Largest upstream body a call accepts; sources have no setting for it yet. Past it the call
// fails rather than letting one runaway answer take the process's memory.
const MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES;

/** Builds the HTTP manager of `def`, with credentials rendered once from its resolved data. */
export function createHttpManager(def: SourceDef, data: ResolvedData, opts: HttpManagerOptions = {}): HttpManager {
  const random = opts.random ?? Math.random;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const m = def.manager;
  const ctx: RenderContext = { source: def.name, query: "(auth)", lead: { id: "", args: {} }, data: data.values };
  const render = (t: Template) => renderTemplate(t, ctx, "auth");
  const auth = authParts(m.auth, render);
  const staticHeaders: Record<string, string> = { accept: "application/json" };
  for (const [k, t] of Object.entries(m.headers)) staticHeaders[k] = render(t);
  const credentialOrigin = describeCredentials(def, data);

  async function attempt(
    req: HttpRequest,
    label: string,
  ): Promise<{ res?: UpstreamResponse; failure?: Failure; ms: number }> {
    const url = new URL(m.baseUrl + req.path);
    for (const [k, v] of Object.entries(req.params)) url.searchParams.set(k, v);
    if (auth.param !== null) url.searchParams.set(auth.param[0], auth.param[1]);
    const headers: Record<string, string> = { ...staticHeaders, ...req.headers, ...auth.headers };
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type"))
        headers["content-type"] = "application/json";
    }
    const t0 = performance.now();
    try {
      const res = await sendRequest({
        method: req.method,
        url,
        headers,
        body,
        timeoutMs: m.timeoutMs,
        maxBytes: MAX_BODY_BYTES,
      });
      return { res, ms: performance.now() - t0 };
    } catch (err) {
      const ms = performance.now() - t0;
      const name = (err as Error)?.name;
      if (name === "TimeoutError" || name === "AbortError") {
        return {
          ms,
          failure: {
            retryable: true,
            error: new MachinaError(
              "TIMEOUT",
              `${label} timed out after ${m.timeoutMs} ms; the upstream is slow or down (raise manager.timeout in ${def.origin} if it is just slow)`,
            ),
          },
        };
      }
      if (err instanceof BodyTooLargeError) {
        // Asking again would fetch the same oversized body.
        return {
          ms,
          failure: {
            retryable: false,
            error: new MachinaError(
              "UPSTREAM",
              `source ${def.name} answered ${label} with a body that exceeded ${err.maxBytes} bytes, the most the fetch service accepts; check the query path and params in ${def.origin} (a smaller page size, perhaps)`,
              { retryable: false, cause: err },
            ),
          },
        };
      }
      return {
        ms,
        failure: {
          retryable: true,
          error: new MachinaError(
            "UPSTREAM",
            `${label} could not reach ${m.baseUrl} (${unreachableReason(err)}); check manager.base_url in ${def.origin} and the network`,
            { cause: err },
          ),
        },
      };
    }
  }

  function classify(res: UpstreamResponse, label: string): Failure {
    const said = upstreamSays(res.text, data.secrets);
    const status = res.status;
    if (status === 401 || status === 403) {
      return {
        retryable: false,
        error: new MachinaError(
          "UPSTREAM",
          `source ${def.name} refused the credentials (HTTP ${status} on ${label}); ${credentialOrigin}${said}`,
          { retryable: false },
        ),
      };
    }
    if (status === 429) {
      const after = retryAfterMs(res.headers) ?? 1_000;
      return {
        retryable: false,
        error: new MachinaError(
          "OVER_QUOTA",
          `source ${def.name} answered 429 Too Many Requests on ${label}; retry in ${after} ms, and lower the limiter windows in ${def.origin} if this repeats`,
          { retryable: true, details: { retryAfterMs: after } },
        ),
      };
    }
    if (status >= 300 && status < 400) {
      // Redirects are not followed: custom credential headers would travel to whatever host they name.
      const to = redact(res.headers.get("location") ?? "nowhere", data.secrets);
      return {
        retryable: false,
        error: new MachinaError(
          "UPSTREAM",
          `source ${def.name} redirected ${label} to ${to} (HTTP ${status}); point manager.base_url or the query path in ${def.origin} at the final address`,
          { retryable: false },
        ),
      };
    }
    if (status === 404) {
      return {
        retryable: false,
        error: new MachinaError(
          "NOT_FOUND",
          `source ${def.name} has nothing at ${label} (HTTP 404)${said}; check the lead's fields and the query path`,
          { retryable: false },
        ),
      };
    }
    if (status >= 500 || status === 408) {
      return {
        retryable: true,
        retryAfterMs: retryAfterMs(res.headers) ?? undefined,
        error: new MachinaError(
          "UPSTREAM",
          `source ${def.name} failed on ${label} (HTTP ${status})${said}; the upstream is having trouble, retry later`,
          { retryable: true },
        ),
      };
    }
    return {
      retryable: false,
      error: new MachinaError(
        "UPSTREAM",
        `source ${def.name} rejected ${label} (HTTP ${status})${said}; check the query's params and body in ${def.origin}`,
        { retryable: false },
      ),
    };
  }

  return {
    async call(req, hooks = {}) {
      const label = `${req.method} ${redact(req.path, data.secrets)}`;
      const max = m.retries.max;
      let sourceTimeMs = 0;
      for (let n = 1; ; n++) {
        await hooks.beforeAttempt?.(n);
        const a = await attempt(req, label);
        await hooks.afterAttempt?.().catch(() => undefined);
        sourceTimeMs += a.ms;
        let failure = a.failure;
        if (a.res !== undefined) {
          // The limiter correction is best effort; a KV hiccup must not turn a good answer into an error.
          await hooks.onResponse?.(a.res.status, a.res.headers).catch(() => undefined);
          if (a.res.status >= 200 && a.res.status < 300) {
            const body = parseJson(a.res.text);
            if (body === undefined) {
              failure = {
                retryable: false,
                error: new MachinaError(
                  "UPSTREAM",
                  `source ${def.name} answered ${label} with HTTP ${a.res.status} but a body that is not JSON (content-type ${a.res.headers.get("content-type") ?? "none"}); check manager.base_url in ${def.origin}`,
                  { retryable: false },
                ),
              };
            } else {
              return { status: a.res.status, headers: a.res.headers, body, attempts: n, sourceTimeMs };
            }
          } else {
            failure = classify(a.res, label);
          }
        }
        const f = failure as Failure;
        const details = {
          ...f.error.details,
          source: def.name,
          query: req.query,
          method: req.method,
          path: redact(req.path, data.secrets),
          status: a.res?.status ?? null,
          attempts: n,
        };
        if (!f.retryable || n > max) {
          const suffix = f.retryable && n > 1 ? ` (gave up after ${n} attempts)` : "";
          throw new MachinaError(f.error.code, f.error.message + suffix, {
            retryable: f.error.retryable,
            details,
            cause: f.error.cause,
          });
        }
        await sleep(backoff(m.retries.baseDelayMs, m.retries.maxDelayMs, n, random, f.retryAfterMs));
      }
    },
  };
}

/** Exponential backoff with equal jitter for the n-th failed attempt, at least `floorMs` when the upstream asked. */
export function backoff(baseMs: number, maxMs: number, n: number, random: () => number, floorMs?: number): number {
  const cap = Math.min(maxMs, baseMs * 2 ** (n - 1));
  const jittered = cap / 2 + random() * (cap / 2);
  return Math.round(floorMs !== undefined && floorMs <= maxMs ? Math.max(jittered, floorMs) : jittered);
}

function authParts(
  auth: AuthSpec | null,
  render: (t: Template) => string,
): { headers: Record<string, string>; param: [string, string] | null } {
  if (auth === null) return { headers: {}, param: null };
  if (auth.type === "bearer") return { headers: { authorization: `Bearer ${render(auth.token)}` }, param: null };
  if (auth.type === "basic") {
    const token = Buffer.from(`${render(auth.username)}:${render(auth.password)}`).toString("base64");
    return { headers: { authorization: `Basic ${token}` }, param: null };
  }
  const value = render(auth.value);
  return auth.header !== null
    ? { headers: { [auth.header]: value }, param: null }
    : { headers: {}, param: [auth.param as string, value] };
}

// Says where the refused credentials come from, so the operator knows which secret to fix.
function describeCredentials(def: SourceDef, data: ResolvedData): string {
  const a = def.manager.auth;
  if (a === null)
    return `the source sends no credentials; set manager.type to http-auth and add manager.auth in ${def.origin}`;
  const templates = a.type === "api_key" ? [a.value] : a.type === "bearer" ? [a.token] : [a.username, a.password];
  const origins = [
    ...new Set(templates.flatMap((t) => t.refs.map((r) => data.origins[r.path[0]]).filter((o) => o !== undefined))),
  ];
  const what = a.type === "api_key" ? "API key" : a.type === "bearer" ? "bearer token" : "username/password";
  return origins.length === 0
    ? `check the ${what} in manager.auth of ${def.origin}`
    : `check the ${what} supplied by ${origins.join(" and ")}`;
}

// A short, single-line, secret-free excerpt of an upstream error body, to help diagnose.
function upstreamSays(text: string, secrets: readonly string[]): string {
  let msg = text;
  const parsed = parseJson(text) as { error?: unknown; message?: unknown } | undefined;
  if (parsed !== null && typeof parsed === "object") {
    const m = parsed.error ?? parsed.message;
    if (typeof m === "string") msg = m;
  }
  msg = redact(msg, secrets)
    .replace(/[\r\n\t]+/g, " ")
    .trim();
  if (msg === "") return "";
  return `; upstream said: "${msg.length > MAX_UPSTREAM_TEXT ? `${msg.slice(0, MAX_UPSTREAM_TEXT)}...` : msg}"`;
}

// The socket error's code (ECONNREFUSED, ENOTFOUND...), else its message; fetch() hid the code
// in `cause`. Node's own ERR_* codes say less than their messages (an invalid header, say).
function unreachableReason(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined;
  for (const x of [e?.cause, e]) {
    if (typeof x?.code === "string" && !x.code.startsWith("ERR_")) return x.code;
  }
  for (const x of [e?.cause, e]) {
    if (typeof x?.message === "string" && x.message !== "") return x.message;
  }
  return String(err);
}

function parseJson(text: string): unknown {
  if (text.trim() === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
