import { MachinaError } from "@machina/wire";
import {
  BodyDecodeError,
  BodyTooLargeError,
  DEFAULT_MAX_BODY_BYTES,
  sendRequest,
  type UpstreamResponse,
} from "./http-client";
import { formatOf, parseBody } from "./body-format";
import { bodyTooLarge, undecodable } from "./body-errors";
import { retryAfterMs } from "./rate-headers";
import type { AttemptCredentials } from "./request-auth";
import { createSourceAuth } from "./pool-auth";
import { unreachableReason, upstreamSays } from "./upstream-text";
import {
  redact,
  renderTemplate,
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
  /**
   * Absolute URL that replaces `manager.base_url` + `path` (a next page URL from pagination,
   * already checked to be on the source's host); `params` are set over its query string.
   */
  readonly url?: string;
}

/** A successful upstream answer. */
export interface HttpResult {
  readonly status: number;
  readonly headers: Headers;
  /** Parsed JSON (NDJSON: the list of its lines' values); null for an empty body. */
  readonly body: unknown;
  /** Attempts made, including the successful one. */
  readonly attempts: number;
  /** Milliseconds spent waiting on the upstream across attempts (backoff sleeps excluded). */
  readonly sourceTimeMs: number;
}

/** Callbacks around each attempt; the fetcher uses them for the limiter. */
export interface CallHooks {
  /**
   * Runs before every attempt, retries included (each attempt spends upstream quota); throwing
   * stops the call. For a source with a credential pool it resolves with the id of the
   * credential the attempt was admitted for, and runs before the credentials are fetched.
   */
  beforeAttempt?(attempt: number): Promise<string | undefined | void>;
  /** The upstream refused the attempt's pool credential (HTTP 401/403); failures here never fail the call. */
  onRefused?(status: number): Promise<void>;
  /** Sees every upstream answer's status and headers; failures here never fail the call. */
  onResponse?(status: number, headers: Headers): Promise<void>;
  /** Runs after every attempt, answered or not; failures here never fail the call. */
  afterAttempt?(): Promise<void>;
}

/** Performs HTTP calls for one source: auth, timeout, retries, error mapping. */
export interface HttpManager {
  call(req: HttpRequest, hooks?: CallHooks): Promise<HttpResult>;
}

/** Options mainly for tests: a deterministic random source, sleep and clock. */
export interface HttpManagerOptions {
  readonly random?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Monotonic milliseconds that OAuth2 token lifetimes are measured on; default `performance.now`. */
  readonly now?: () => number;
}

// Failed attempt, classified: retryable ones are retried, others thrown at once.
type Failure = { retryable: boolean; error: MachinaError; retryAfterMs?: number };

/**
 * Builds the HTTP manager of `def`, with static credentials rendered once from its resolved data
 * and OAuth2 tokens fetched when first needed.
 */
export function createHttpManager(def: SourceDef, data: ResolvedData, opts: HttpManagerOptions = {}): HttpManager {
  const random = opts.random ?? Math.random;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const m = def.manager;
  const ctx: RenderContext = { source: def.name, query: "(auth)", lead: { id: "", args: {} }, data: data.values };
  const render = (t: Template) => renderTemplate(t, ctx, "auth");
  const renderWith = (values: Readonly<Record<string, string>>) => (t: Template) =>
    renderTemplate(t, { ...ctx, data: values }, "auth");
  const auth = createSourceAuth(def, data, render, renderWith, {
    timeoutMs: m.timeoutMs,
    now: opts.now ?? (() => performance.now()),
  });
  const staticHeaders: Record<string, string> = { accept: "application/json" };
  // Limits are per query, falling back to the source's, then the defaults.
  const bodyCap = (query: string) => def.queries.get(query)?.maxBodyBytes ?? m.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const bodyFormat = (query: string) => def.queries.get(query)?.format ?? "auto";
  for (const [k, t] of Object.entries(m.headers)) staticHeaders[k] = render(t);

  async function attempt(
    req: HttpRequest,
    label: string,
    cred: AttemptCredentials,
  ): Promise<{ res?: UpstreamResponse; failure?: Failure; ms: number }> {
    const url = new URL(req.url ?? m.baseUrl + req.path);
    for (const [k, v] of Object.entries(req.params)) url.searchParams.set(k, v);
    if (cred.param !== null) url.searchParams.set(cred.param[0], cred.param[1]);
    const headers: Record<string, string> = { ...staticHeaders, ...req.headers, ...cred.headers };
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
        // Past the cap the call fails rather than letting one runaway answer take the process's memory.
        maxBytes: bodyCap(req.query),
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
      // Asking again would fetch the same oversized or undecodable body.
      if (err instanceof BodyTooLargeError)
        return { ms, failure: { retryable: false, error: bodyTooLarge(def, req.query, label, err) } };
      if (err instanceof BodyDecodeError)
        return { ms, failure: { retryable: false, error: undecodable(def, label, err) } };
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

  function classify(res: UpstreamResponse, label: string, reauthed: boolean, cred?: AttemptCredentials): Failure {
    const said = upstreamSays(res.text, auth.secrets());
    const status = res.status;
    if (status === 401 || status === 403) {
      const fresh = reauthed ? ", again with a freshly fetched token" : "";
      return {
        retryable: false,
        error: new MachinaError(
          "UPSTREAM",
          `source ${def.name} refused the credentials (HTTP ${status} on ${label}${fresh}); ${cred?.advice ?? auth.advice}${said}`,
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

  // Getting credentials can fail like a call does (an OAuth2 token endpoint that is down).
  async function credentials(
    credential: string | undefined,
  ): Promise<{ cred?: AttemptCredentials; failure?: Failure; ms: number }> {
    const t0 = performance.now();
    try {
      const cred = await auth.credentials(credential);
      return { cred, ms: performance.now() - t0 };
    } catch (err) {
      if (!(err instanceof MachinaError)) throw err;
      const after = err.details.retryAfterMs;
      return {
        ms: performance.now() - t0,
        failure: { retryable: err.retryable, error: err, retryAfterMs: typeof after === "number" ? after : undefined },
      };
    }
  }

  return {
    async call(req, hooks = {}) {
      const label = `${req.method} ${redact(req.path, data.secrets)}`;
      const max = m.retries.max;
      let sourceTimeMs = 0;
      // Upstream calls made; `tries` also counts failed credential fetches.
      let attempts = 0;
      let tries = 0;
      let retries = 0;
      // A refreshable credential refused with 401 is replaced once per call, outside the retry budget.
      let reauthed = false;
      // A pool credential refused with 401/403 is replaced by another, each at most once per call.
      const pooled = (auth.poolSize ?? 0) > 0;
      let rotated = 0;
      for (;;) {
        tries++;
        // A pool's credentials are those the limiter admitted the attempt for: it goes first there.
        const picked = pooled ? await hooks.beforeAttempt?.(attempts + 1) : undefined;
        const c = await credentials(typeof picked === "string" ? picked : undefined);
        sourceTimeMs += c.ms;
        let failure = c.failure;
        let res: UpstreamResponse | undefined;
        if (c.cred !== undefined) {
          attempts++;
          if (!pooled) await hooks.beforeAttempt?.(attempts);
          const a = await attempt(req, label, c.cred);
          await hooks.afterAttempt?.().catch(() => undefined);
          sourceTimeMs += a.ms;
          failure = a.failure;
          res = a.res;
          if (res !== undefined) {
            // The limiter correction is best effort; a KV hiccup must not turn a good answer into an error.
            await hooks.onResponse?.(res.status, res.headers).catch(() => undefined);
            if (res.status >= 200 && res.status < 300) {
              const contentType = res.headers.get("content-type");
              const parsed = parseBody(res.text, formatOf(bodyFormat(req.query), contentType));
              if (parsed.ok)
                return { status: res.status, headers: res.headers, body: parsed.body, attempts, sourceTimeMs };
              failure = {
                retryable: false,
                error: new MachinaError(
                  "UPSTREAM",
                  `source ${def.name} answered ${label} with HTTP ${res.status} but ${parsed.problem} (content-type ${contentType ?? "none"}); check manager.base_url and the query's format in ${def.origin}`,
                  { retryable: false },
                ),
              };
            } else if (res.status === 401 && auth.refreshable && !reauthed) {
              reauthed = true;
              auth.refused(c.cred);
              continue;
            } else if ((res.status === 401 || res.status === 403) && typeof c.cred.credential === "string") {
              // The limiter benches it on every replica; the next attempt goes to another credential.
              await hooks.onRefused?.(res.status).catch(() => undefined);
              if (rotated < (auth.poolSize ?? 1) - 1) {
                rotated++;
                continue;
              }
              failure = classify(res, label, reauthed, c.cred);
            } else {
              failure = classify(res, label, reauthed, c.cred);
            }
          }
        }
        const f = failure as Failure;
        const details = {
          ...f.error.details,
          source: def.name,
          query: req.query,
          method: req.method,
          path: redact(req.path, data.secrets),
          status: res?.status ?? f.error.details.status ?? null,
          attempts,
        };
        if (!f.retryable || retries >= max) {
          const suffix = f.retryable && tries > 1 ? ` (gave up after ${tries} attempts)` : "";
          throw new MachinaError(f.error.code, f.error.message + suffix, {
            retryable: f.error.retryable,
            details,
            cause: f.error.cause,
          });
        }
        retries++;
        await sleep(backoff(m.retries.baseDelayMs, m.retries.maxDelayMs, retries, random, f.retryAfterMs));
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
