// Upstream HTTP: one manager per source (auth, timeout, retries) and the rate headers APIs answer with.
export { createHttpManager, backoff } from "./http-manager";
export type { HttpManager, HttpManagerOptions, HttpRequest, HttpResult, CallHooks } from "./http-manager";
export { retryAfterMs, exhaustedUntil, headerValue } from "./rate-headers";
export type { HeaderBag } from "./rate-headers";
