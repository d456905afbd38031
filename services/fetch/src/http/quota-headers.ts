// What an upstream's answer says about its quota, from whichever headers it sends: the
// X-RateLimit-* trio, the RateLimit-* trio of the early IETF drafts, the IETF `RateLimit` and
// `RateLimit-Policy` structured fields (draft-ietf-httpapi-ratelimit-headers), and Retry-After.
import { headerValue, retryAfterMs, type HeaderBag } from "./rate-headers";
import { parseSfDictionary, parseSfList, type SfItem } from "./structured-fields";

/** One quota the upstream described; a field it did not state is null. */
export interface UpstreamQuota {
  /** The policy's name (IETF fields); null for the header trios. */
  readonly policy: string | null;
  /** Calls allowed per window. */
  readonly limit: number | null;
  /** The window's length in ms (the IETF policy's `w`); the header trios never say it. */
  readonly windowMs: number | null;
  /** Calls left until `resetAt`. */
  readonly remaining: number | null;
  /** Epoch ms (on the `now` clock given) at which the quota resets. */
  readonly resetAt: number | null;
  /**
   * How much earlier the reset may really be: 1 000 when it was given in whole seconds (APIs
   * round it up, or send an HTTP date), else 0.
   */
  readonly resetPrecisionMs: number;
}

/** An upstream answer's quota headers, read. */
export interface UpstreamQuotaView {
  /** Epoch ms before which the upstream asked not to be called (Retry-After on a 429 or 503); null when it did not. */
  readonly retryAt: number | null;
  readonly quotas: readonly UpstreamQuota[];
}

// Reset values this large are timestamps (epoch seconds, or ms), smaller ones seconds from now.
const EPOCH_S = 1e9;
const EPOCH_MS = 1e12;

/** Reads every quota header of one answer; unreadable fields are left out, never guessed. */
export function readQuotaHeaders(status: number, headers: HeaderBag, now = Date.now()): UpstreamQuotaView {
  const after = status === 429 || status === 503 ? retryAfterMs(headers, now) : null;
  const quotas: UpstreamQuota[] = [];
  for (const prefix of ["x-ratelimit", "ratelimit"]) {
    const trio = readTrio(headers, prefix, now);
    if (trio !== null) quotas.push(trio);
  }
  quotas.push(...readIetf(headers, now));
  return { retryAt: after === null ? null : now + after, quotas };
}

// `<prefix>-Limit`, `-Remaining`, `-Reset`; null when none of the three is readable.
function readTrio(headers: HeaderBag, prefix: string, now: number): UpstreamQuota | null {
  const limit = count(headerValue(headers, `${prefix}-limit`));
  const remaining = count(headerValue(headers, `${prefix}-remaining`));
  const reset = resetTime(headerValue(headers, `${prefix}-reset`), now);
  if (limit === null && remaining === null && reset === null) return null;
  return { policy: null, limit, windowMs: null, remaining, ...(reset ?? { resetAt: null, resetPrecisionMs: 0 }) };
}

// The leading count of a header such as `100` or `100, 100;w=60` (some APIs append a policy).
function count(text: string | undefined): number | null {
  const m = /^\s*(\d{1,15})\s*(?:[,;]|$)/.exec(text ?? "");
  return m === null ? null : Number(m[1]);
}

function resetTime(text: string | undefined, now: number): { resetAt: number; resetPrecisionMs: number } | null {
  const v = text?.trim();
  if (v === undefined || v === "") return null;
  if (/^\d{1,15}(\.\d+)?$/.test(v)) {
    const n = Number(v);
    if (n >= EPOCH_MS) return { resetAt: n, resetPrecisionMs: 0 };
    const precision = Number.isInteger(n) ? 1000 : 0;
    return { resetAt: n >= EPOCH_S ? n * 1000 : now + n * 1000, resetPrecisionMs: precision };
  }
  // A few APIs send an HTTP date.
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : { resetAt: at, resetPrecisionMs: 1000 };
}

function nonNegativeInt(v: unknown): number | null {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : null;
}

// A policy counts requests unless its quota unit says otherwise (content-bytes, concurrent-requests).
function countsRequests(item: SfItem): boolean {
  const unit = item.params.qu;
  return unit === undefined || unit === "request" || unit === "requests";
}

// `RateLimit-Policy: "burst";q=100;w=60` with `RateLimit: "burst";r=40;t=12` (draft 07 and later),
// `RateLimit-Policy: 10;w=1, 50;w=60` (drafts up to 06), `RateLimit: limit=10, remaining=4, reset=3`.
function readIetf(headers: HeaderBag, now: number): UpstreamQuota[] {
  const policies = new Map<string | null, { limit: number; windowMs: number | null }>();
  const out: UpstreamQuota[] = [];
  for (const item of parseSfList(headerValue(headers, "ratelimit-policy")) ?? []) {
    if (!countsRequests(item)) continue;
    const named = typeof item.value === "string" && item.value !== "";
    const limit = nonNegativeInt(item.params.q) ?? (named ? null : nonNegativeInt(item.value));
    if (limit === null) continue;
    const w = nonNegativeInt(item.params.w);
    const windowMs = w === null || w === 0 ? null : w * 1000;
    if (named) policies.set(item.value as string, { limit, windowMs });
    else out.push({ policy: null, limit, windowMs, remaining: null, resetAt: null, resetPrecisionMs: 0 });
  }
  const field = headerValue(headers, "ratelimit");
  const list = parseSfList(field);
  const current = list?.filter((x) => nonNegativeInt(x.params.r) !== null) ?? [];
  for (const item of current) {
    const name = typeof item.value === "string" ? item.value : null;
    const t = item.params.t;
    const resetAt = typeof t === "number" && t >= 0 ? now + t * 1000 : null;
    const resetPrecisionMs = typeof t === "number" && Number.isInteger(t) ? 1000 : 0;
    const p = name === null ? undefined : policies.get(name);
    if (name !== null) policies.delete(name);
    out.push({
      policy: name,
      limit: p?.limit ?? null,
      windowMs: p?.windowMs ?? null,
      remaining: nonNegativeInt(item.params.r),
      resetAt,
      resetPrecisionMs,
    });
  }
  if (current.length === 0) {
    const dict = parseSfDictionary(field);
    const get = (k: string) => nonNegativeInt(dict?.get(k)?.value);
    const reset = get("reset");
    if (dict !== null && (get("limit") !== null || get("remaining") !== null))
      out.push({
        policy: null,
        limit: get("limit"),
        windowMs: null,
        remaining: get("remaining"),
        resetAt: reset === null ? null : now + reset * 1000,
        resetPrecisionMs: reset === null ? 0 : 1000,
      });
  }
  // Policies the RateLimit field did not report on still state their limit.
  for (const [policy, p] of policies) out.push({ policy, ...p, remaining: null, resetAt: null, resetPrecisionMs: 0 });
  return out;
}
