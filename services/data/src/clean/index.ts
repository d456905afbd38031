// The clean job: merging an entity's dump rows of one window into its clean row, field by field.
export { mergeRows } from "./merge";
export type { MergeRow, MergeResult } from "./merge";
export { runClean } from "./clean-job";
export type { RunCleanOptions, RunCleanResult, CleanedEntity, CleanFailure } from "./clean-job";
export { listFailed, retryFailed } from "./clean-failed";
export type { FailedPage, FailedWindow } from "./clean-failed";
export { CleanLeases } from "./clean-leases";
export type { CleanUnit } from "./clean-leases";
