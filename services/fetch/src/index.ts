export { compileSource, splitPath, METHODS } from "./source-def";
export type {
  SourceDef,
  QueryDef,
  LimiterSpec,
  RateWindow,
  DataSpec,
  AuthSpec,
  RetrySpec,
  ManagerSpec,
  BodyNode,
  PaginateSpec,
  ExtractSpec,
} from "./source-def";
export { resolveData, describeOrigin, redact } from "./secrets";
export type { ResolvedData } from "./secrets";
export { compileTemplate, renderTemplate, renderValue } from "./template";
export type { Template, TemplateRef, TemplatePart, TemplateScope, RenderContext } from "./template";
export { openLimiter } from "./limiter/limiter";
export type { Limiter, LimiterOptions, LimitedSource, Acquired, WindowUsage, QuotaReport, LimiterStats } from "./limiter/limiter-types";
export { ServerClock, monotonicClock } from "./limiter/server-clock";
export type { LocalClock, OffsetBounds } from "./limiter/server-clock";
export { append, countSince, earliestFor, remove, roomAt, gridOf, decodeLog, encodeLog } from "./limiter/sliding-log";
export type { SlidingLog } from "./limiter/sliding-log";
export { retryAfterMs, exhaustedUntil, headerValue } from "./rate-headers";
export type { HeaderBag } from "./rate-headers";
export { createHttpManager, backoff } from "./http-manager";
export type { HttpManager, HttpManagerOptions, HttpRequest, HttpResult, CallHooks } from "./http-manager";
export { extractRecords, readPath, mergeRecords, countRecords } from "./extract";
export type { EntityRecords } from "./extract";
export { createFetcher, renderRequest } from "./fetcher";
export type { Fetcher, FetcherOptions, FetchRequest, FetchResult, FetchMeta, FetchLead } from "./fetcher";
export { fetchService } from "./fetch-service";
export type { FetchConfig } from "./fetch-service";
