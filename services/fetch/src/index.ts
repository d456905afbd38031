import { SOURCE_KIND } from "./source";

export { SOURCE_KIND, compileSource, splitPath, authTemplates, METHODS } from "./source";
export type {
  SourceDef,
  QueryDef,
  LimiterSpec,
  RateWindow,
  DataSpec,
  AuthSpec,
  OAuth2Spec,
  RetrySpec,
  ManagerSpec,
  BodyNode,
  PaginateSpec,
  ExtractSpec,
} from "./source";
export { resolveData, describeOrigin, redact } from "./source";
export type { ResolvedData } from "./source";
export { compileTemplate, renderTemplate, renderValue } from "./source";
export type { Template, TemplateRef, TemplatePart, TemplateScope, RenderContext } from "./source";
export { extractRecords, readPath, mergeRecords, countRecords } from "./source";
export type { EntityRecords } from "./source";
export { openLimiter, ServerClock, monotonicClock } from "./limiter";
export type {
  Limiter,
  LimiterOptions,
  LimitedSource,
  Acquired,
  WindowUsage,
  QuotaReport,
  LimiterStats,
  LocalClock,
  OffsetBounds,
} from "./limiter";
export { append, countSince, earliestFor, remove, roomAt, gridOf, decodeLog, encodeLog } from "./limiter";
export type { SlidingLog } from "./limiter";
export { retryAfterMs, exhaustedUntil, headerValue, createHttpManager, backoff } from "./http";
export type { HeaderBag, HttpManager, HttpManagerOptions, HttpRequest, HttpResult, CallHooks } from "./http";
export { sendRequest, UpstreamTimeoutError, BodyTooLargeError, DEFAULT_MAX_BODY_BYTES } from "./http";
export type { UpstreamRequest, UpstreamResponse } from "./http";
export { createRequestAuth, createOAuth2Tokens } from "./http";
export type { RequestAuth, RequestAuthOptions, AttemptCredentials, OAuth2Tokens, OAuth2TokenOptions } from "./http";
export { createFetcher, renderRequest } from "./fetcher";
export type { Fetcher, FetcherOptions, FetchRequest, FetchResult, FetchMeta, FetchLead } from "./fetcher";
export { fetchService } from "./fetch-service";
export type { FetchConfig } from "./fetch-service";

/** The component kinds the fetch service declares, for the reference docs generator. */
export const componentKinds = [SOURCE_KIND] as const;
