// Upstream HTTP: one manager per source (auth, timeout, retries), the credentials it sends
// (OAuth2 tokens included), the client it sends with, and the rate headers APIs answer with.
export { createHttpManager, backoff } from "./http-manager";
export type { HttpManager, HttpManagerOptions, HttpRequest, HttpResult, CallHooks } from "./http-manager";
export { sendRequest, UpstreamTimeoutError, BodyTooLargeError, DEFAULT_MAX_BODY_BYTES } from "./http-client";
export type { UpstreamRequest, UpstreamResponse } from "./http-client";
export { createRequestAuth } from "./request-auth";
export type { RequestAuth, RequestAuthOptions, AttemptCredentials } from "./request-auth";
export { createOAuth2Tokens } from "./oauth2-token";
export type { OAuth2Tokens, OAuth2TokenOptions } from "./oauth2-token";
export { retryAfterMs, exhaustedUntil, headerValue } from "./rate-headers";
export type { HeaderBag } from "./rate-headers";
