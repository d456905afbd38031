// OAuth2 client credentials (RFC 6749 §4.4): one bearer token per source and process, fetched on
// first use, reused until shortly before it expires, and fetched by one request however many
// calls need it at that moment. Token requests bypass the source's limiter: the token endpoint is
// usually another service with its own limits, and one request per token lifetime is noise.
import { MachinaError } from "@machina/wire";
import { sendRequest, UpstreamTimeoutError, type UpstreamResponse } from "./http-client";
import { retryAfterMs } from "./rate-headers";
import { parseJson, unreachableReason, upstreamSays } from "./upstream-text";
import { redact, type OAuth2Spec, type Template } from "../source";

// A token answer is a few hundred bytes; anything near this is not a token endpoint.
const MAX_TOKEN_BODY_BYTES = 1024 * 1024;

/** What {@link createOAuth2Tokens} needs besides the spec. */
export interface OAuth2TokenOptions {
  /** The source's name and file, for error messages. */
  readonly source: string;
  readonly origin: string;
  readonly spec: OAuth2Spec;
  /** Renders a credential template from the source's resolved data. */
  readonly render: (t: Template) => string;
  /** Values to scrub from anything the token endpoint says back. */
  readonly secrets: readonly string[];
  /** Where the client credentials come from, e.g. `env var X and env var Y`. */
  readonly credentialHint: string;
  readonly timeoutMs: number;
  /** Milliseconds on a clock that only moves forward. */
  readonly now: () => number;
}

/** The token cache of one source. */
export interface OAuth2Tokens {
  /** A token to send now: the cached one while it is fresh, else the one being fetched, else a new one. */
  get(): Promise<string>;
  /** The upstream refused `token`; it is dropped unless a newer token already replaced it. */
  invalidate(token: string): void;
  /** The token currently cached, if any, so it can be scrubbed from error text. */
  current(): string | null;
}

interface Cached {
  readonly value: string;
  /** When a new token is fetched instead of this one. */
  readonly refreshAt: number;
}

/** Creates the token cache of one oauth2 source; nothing is requested until the first {@link OAuth2Tokens.get}. */
export function createOAuth2Tokens(opts: OAuth2TokenOptions): OAuth2Tokens {
  const { spec } = opts;
  const url = new URL(spec.tokenUrl);
  const host = url.host;
  let cached: Cached | null = null;
  let inflight: Promise<Cached> | null = null;

  const fail = (message: string, retryable: boolean, status: number | null, retryAfter?: number) =>
    new MachinaError("UPSTREAM", `source ${opts.source} ${message}`, {
      retryable,
      details: {
        source: opts.source,
        tokenHost: host,
        status,
        ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }),
      },
    });

  async function request(): Promise<Cached> {
    const clientId = opts.render(spec.clientId);
    const clientSecret = opts.render(spec.clientSecret);
    // The secret is scrubbed even when it is a constant in the source file.
    const secrets = [...opts.secrets, clientSecret];
    const form = new URLSearchParams({ grant_type: "client_credentials" });
    if (spec.scopes.length > 0) form.set("scope", spec.scopes.join(" "));
    for (const [k, t] of Object.entries(spec.params)) form.set(k, opts.render(t));
    const headers: Record<string, string> = {
      accept: "application/json",
      "content-type": "application/x-www-form-urlencoded",
    };
    if (spec.authStyle === "header") {
      // RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64'd.
      const pair = `${formEncode(clientId)}:${formEncode(clientSecret)}`;
      headers.authorization = `Basic ${Buffer.from(pair).toString("base64")}`;
    } else {
      form.set("client_id", clientId);
      form.set("client_secret", clientSecret);
    }
    const startedAt = opts.now();
    let res: UpstreamResponse;
    try {
      res = await sendRequest({
        method: "POST",
        url,
        headers,
        body: form.toString(),
        timeoutMs: opts.timeoutMs,
        maxBytes: MAX_TOKEN_BODY_BYTES,
      });
    } catch (err) {
      if (err instanceof UpstreamTimeoutError)
        throw fail(
          `got no OAuth2 token: the token endpoint ${host} did not answer within ${opts.timeoutMs} ms; retry later, or raise manager.timeout in ${opts.origin}`,
          true,
          null,
        );
      throw fail(
        `could not reach the OAuth2 token endpoint ${host} (${redact(unreachableReason(err), secrets)}); check manager.auth.token_url in ${opts.origin} and the network`,
        true,
        null,
      );
    }
    const said = upstreamSays(res.text, secrets);
    const status = res.status;
    if (status < 200 || status >= 300) {
      const transient = status >= 500 || status === 408 || status === 429;
      const advice = transient
        ? "the token endpoint is having trouble, retry later"
        : `check manager.auth (client_id, client_secret supplied by ${opts.credentialHint}, scopes, auth_style, token_url) in ${opts.origin}`;
      throw fail(
        `got no OAuth2 token: the token endpoint ${host} answered HTTP ${status}${said}; ${advice}`,
        transient,
        status,
        transient ? (retryAfterMs(res.headers) ?? undefined) : undefined,
      );
    }
    const body = parseJson(res.text) as
      { access_token?: unknown; token_type?: unknown; expires_in?: unknown } | null | undefined;
    const token = body?.access_token;
    if (typeof token !== "string" || token === "")
      throw fail(
        `got no OAuth2 token: the token endpoint ${host} answered HTTP ${status} without an access_token; check manager.auth.token_url in ${opts.origin}`,
        false,
        status,
      );
    const type = body?.token_type;
    // Only bearer tokens (RFC 6750) can be sent as they are; a MAC or DPoP token needs signing.
    if (type !== undefined && (typeof type !== "string" || type.toLowerCase() !== "bearer"))
      throw fail(
        `got an OAuth2 token of type ${JSON.stringify(type)} from ${host}; only bearer tokens are supported`,
        false,
        status,
      );
    const lifetime = lifetimeMs(body?.expires_in) ?? spec.defaultExpiresInMs;
    // Counted from when the request left, so a slow answer cannot stretch the token's life.
    return { value: token, refreshAt: startedAt + lifetime - Math.min(spec.refreshMarginMs, lifetime / 2) };
  }

  return {
    async get() {
      if (cached !== null && opts.now() < cached.refreshAt) return cached.value;
      inflight ??= request()
        .then((t) => {
          cached = t;
          return t;
        })
        .finally(() => {
          inflight = null;
        });
      return (await inflight).value;
    },
    invalidate(token) {
      if (cached?.value === token) cached = null;
    },
    current: () => cached?.value ?? null,
  };
}

// `expires_in` in seconds; some servers send it as a string. Anything else counts as absent.
function lifetimeMs(v: unknown): number | null {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  return Number.isFinite(n) && n >= 0 ? n * 1000 : null;
}

function formEncode(v: string): string {
  return new URLSearchParams([["", v]]).toString().slice(1);
}
