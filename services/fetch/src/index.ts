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
  PageKind,
  PageStops,
  PagePath,
  ExtractSpec,
} from "./source";
export { PAGINATE_TYPES } from "./source";
export type { PaginateType } from "./source";
export { resolveData, describeOrigin, redact } from "./source";
export type { ResolvedData } from "./source";
export type { PoolSpec, PoolCredentialSpec, PoolListSpec, PoolSecretSpec, ResolvedCredential } from "./source";
export { credentialHash, resolvePool } from "./source";
export { compileTemplate, renderTemplate, renderValue } from "./source";
export type { Template, TemplateRef, TemplatePart, TemplateScope, RenderContext } from "./source";
export { extractRecords, extractPage, checkExtractLeads, readPath, mergeRecords, countRecords } from "./source";
export type { EntityRecords, ExtractedPage, ExtractOptions, RejectedRecord } from "./source";
export { compileValuePath, readValuePath, selectItems, compileJsonPath, isJsonPath, applyMapping } from "./source";
export type { ValuePath, JsonPathSelector, FieldMap, FieldMapping, FieldSource, MappingProblem } from "./source";
export { coerceValue, VALUE_TYPES, parseByteSize, formatByteSize } from "./source";
export type { ValueType, Coerced, BodyFormat } from "./source";
export { openLimiter, ServerClock, monotonicClock, isOverQuota } from "./limiter";
export type { LimiterLog, CredentialQuota } from "./limiter";
export { quotaReply } from "./quota-reply";
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
export { readQuotaHeaders, parseSfList, parseSfDictionary, createSourceAuth } from "./http";
export type { UpstreamQuota, UpstreamQuotaView, SfItem, BareItem, RenderWith } from "./http";
export { sendRequest, UpstreamTimeoutError, BodyTooLargeError, BodyDecodeError, DEFAULT_MAX_BODY_BYTES } from "./http";
export { parseBody, formatOf, isNdjsonType } from "./http";
export type { ParsedBody } from "./http";
export type { UpstreamRequest, UpstreamResponse } from "./http";
export { createRequestAuth, createOAuth2Tokens } from "./http";
export type { RequestAuth, RequestAuthOptions, AttemptCredentials, OAuth2Tokens, OAuth2TokenOptions } from "./http";
export { createFetcher, renderRequest } from "./fetcher";
export { loadCodeModules, checkCodeModule, createCodeRunner, toHttpRequest, admittedCall } from "./code-source";
export type {
  CodeSource,
  CodeQuery,
  CodeContext,
  CodeRequest,
  CodeResponse,
  CodeParsed,
  PageToken,
} from "./code-source";
export type { CodeRunner, CodeRequestScope, AdmittedCall, AdmittedResult } from "./code-source";
export { CODE_MAX_PAGES } from "./source";
export type { CodeSpec, LoadedCode } from "./source";
export type { RejectedRecordHandler } from "./rejected-records";
export type { Fetcher, FetcherOptions, FetchRequest, FetchResult, FetchMeta, FetchLead } from "./fetcher";
export type { FetchOptions, FetchedPage } from "./fetcher";
export { startWalk, requestUrl, firstProgress, asProgress, refKey } from "./pagination";
export type { PageWalk, PageAnswer, PageStep, WalkScope, PageProgress, PageRef } from "./pagination";
export { parseLinkHeader, relationsOf, linkTarget, resolveNextUrl } from "./pagination";
export type { LinkValue, NextUrlScope } from "./pagination";
export { ProgressStore, PROGRESS_TTL_MS, progressKey, paginationFingerprint } from "./pagination";
export type { ProgressTask, StoredProgress, ProgressStoreOptions } from "./pagination";
export { createPagedTaskRunner, pageIds } from "./pagination";
export type { PagedTask, PageIds, PublishPage, PagedTaskOutcome, PagedTaskRunner } from "./pagination";
export type { PagedTaskRunnerOptions } from "./pagination";
export { CursorStore, cursorKey, cursorOrder, cursorProblem, answerMark, expectMark, pageMark } from "./incremental";
export { incrementalOutcome, tallyOf, tallyPage } from "./incremental";
export { CURSOR_KINDS, INCREMENTAL, incrementalOf, listCursors, resetCursors } from "./incremental";
export type { IncrementalSpec, CursorEntry, CursorValue, CursorKind, CursorOrder } from "./incremental";
export type { CursorTally, IncrementalOutcome, CursorReader, MarkScope, RankedCursor } from "./incremental";
export { fetchService } from "./fetch-service";
export type { FetchConfig } from "./fetch-service";

/** The component kinds the fetch service declares, for the reference docs generator. */
export const componentKinds = [SOURCE_KIND] as const;
