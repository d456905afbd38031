/** Response headers as fetch gives them, or a plain (case-insensitive) record. */
export type HeaderBag = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/** Reads one header, case-insensitively. */
export function headerValue(headers: HeaderBag, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === lower) return typeof v === "string" ? v : v?.[0];
  }
  return undefined;
}

/** `Retry-After` (delta seconds or an HTTP date) as milliseconds from `now`; null when absent or unreadable. */
export function retryAfterMs(headers: HeaderBag, now = Date.now()): number | null {
  const v = headerValue(headers, "retry-after")?.trim();
  if (v === undefined || v === "") return null;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * When the upstream says it has no calls left (`X-RateLimit-Remaining: 0`), the epoch ms at
 * which it resets; null otherwise. `X-RateLimit-Reset` is read as epoch seconds when it looks
 * like a timestamp, else as seconds from now (APIs use both).
 */
export function exhaustedUntil(headers: HeaderBag, now = Date.now()): number | null {
  const remaining = headerValue(headers, "x-ratelimit-remaining")?.trim();
  if (remaining !== "0") return null;
  const reset = Number(headerValue(headers, "x-ratelimit-reset")?.trim());
  if (!Number.isFinite(reset) || reset <= 0) return null;
  return reset > 1e9 ? reset * 1000 : now + reset * 1000;
}
