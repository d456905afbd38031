import { describeValue } from "@machina/config";

// Upstream timeouts and backoffs run on timers, which Node caps at ~24.8 days; an hour is far
// past any sane value and keeps the cap out of reach.
/** Longest timeout, backoff or margin a source may set, in ms. */
export const HOUR_MS = 3_600_000;

/** What an environment variable name may be made of. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

// RFC 9110 token characters.
/** What an HTTP header name may be made of. */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A zod error callback worded `must be <rule>, got <value>`. */
export const must = (rule: string) => (iss: { input?: unknown }) => `must be ${rule}, got ${describeValue(iss.input)}`;
