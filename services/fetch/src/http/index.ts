// Upstream HTTP: one manager per source (auth, timeout, retries), the credentials it sends
// (OAuth2 tokens included), the client it sends with, and the rate headers APIs answer with.
export { createHttpManager, backoff } from "./http-manager";
export type { HttpManager, HttpManagerOptions, HttpRequest, HttpResult, CallHooks } from "./http-manager";
export {
  sendRequest,
  UpstreamTimeoutError,
  BodyTooLargeError,
  BodyDecodeError,
  DEFAULT_MAX_BODY_BYTES,
} from "./http-client";
export { parseBody, formatOf, isNdjsonType } from "./body-format";
export type { ParsedBody } from "./body-format";
export type { UpstreamRequest, UpstreamResponse } from "./http-client";
export { createRequestAuth } from "./request-auth";
export type { RequestAuth, RequestAuthOptions, AttemptCredentials } from "./request-auth";
export { createOAuth2Tokens } from "./oauth2-token";
export type { OAuth2Tokens, OAuth2TokenOptions } from "./oauth2-token";
export { retryAfterMs, exhaustedUntil, headerValue } from "./rate-headers";
export type { HeaderBag } from "./rate-headers";
export { readQuotaHeaders } from "./quota-headers";
export { createSourceAuth } from "./pool-auth";
export type { RenderWith } from "./pool-auth";
export type { UpstreamQuota, UpstreamQuotaView } from "./quota-headers";
export { parseSfList, parseSfDictionary } from "./structured-fields";
export type { SfItem, BareItem } from "./structured-fields";
