// Pagination: how each kind finds the next page and when paging stops, RFC 8288 Link headers,
// next URLs kept on the source's host, and the progress a FetchTask resumes from on redelivery.
export { startWalk, requestUrl } from "./page-walk";
export type { PageWalk, PageAnswer, PageStep, WalkScope } from "./page-walk";
export { firstProgress, asProgress, refKey } from "./page-progress";
export type { PageProgress, PageRef } from "./page-progress";
export { parseLinkHeader, relationsOf, linkTarget } from "./link-header";
export type { LinkValue } from "./link-header";
export { resolveNextUrl } from "./next-url";
export type { NextUrlScope } from "./next-url";
export { ProgressStore, PROGRESS_TTL_MS, progressKey, paginationFingerprint } from "./progress-store";
export type { ProgressTask, StoredProgress, ProgressStoreOptions } from "./progress-store";
export { createPagedTaskRunner, pageIds } from "./paged-task";
export type {
  PagedTask,
  PageIds,
  PublishPage,
  PagedTaskOutcome,
  PagedTaskRunner,
  PagedTaskRunnerOptions,
} from "./paged-task";
