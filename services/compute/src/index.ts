import { CACHE_KIND } from "@machina/cache";

export { computeService } from "./compute-service";
export type { ComputeConfig } from "./compute-service";
export { BUILTIN_COMPUTATIONS } from "./computations/builtins";
export { COMPUTATIONS, computationOf } from "./computations/builtin-lookup";
export { ComputationRegistry } from "./computations/registry";
export { defineComputation } from "./computations/define";
export type { Computation, ComputationSpec, ComputeDeps, ComputeResult, Paging } from "./computations/define";
export { DataReads, SERIES_PARTS, seriesParts } from "./reads/data-reads";
export type { SeriesOptions } from "./reads/data-reads";
export { ReadSet, canonicalKey } from "./reads/read-set";
export type { Columns } from "./reads/series-columns";
export { ResultCache } from "./cache/result-cache";
export { resultKey } from "./cache/cache-key";
export { bucketGrid, fittingStep, widenGrid } from "./kernels/bucket-grid";
export type { BucketGrid } from "./kernels/bucket-grid";
export { REDUCERS, bucketReduce } from "./kernels/bucket-reduce";
export type { Reduced, Reducer } from "./kernels/bucket-reduce";
export { FILLS, fillGaps } from "./kernels/gap-fill";
export type { Fill } from "./kernels/gap-fill";
export { trailingMean } from "./kernels/moving-window";
export { growthPoints } from "./kernels/growth-kernel";
export type { GrowthPoints } from "./kernels/growth-kernel";
export { lowerBound, upperBound } from "./kernels/sorted-search";
export { resolveRange, resolveTime, timeArg } from "./kernels/time-args";
export type { TimeArg, TimeRange } from "./kernels/time-args";
export { FloatBuffer, percentileOfSorted, percentiles } from "./kernels/percentiles";
export { TopHeap } from "./kernels/top-heap";
export { WHERE_OPS, compileWhere, whereArg, whereFields } from "./computations/predicate";
export type { RecordTest, Where, WhereOp, WhereOps } from "./computations/predicate";
export { COMPUTATIONS_FOLDER, checkCodeComputation, loadCodeComputations } from "./code/index";
export type { CodeComputation, FieldBuilders } from "./code/index";

/** Compute's component kinds: its result caches (`compute/caches/<name>.yaml`); computations are code. */
export const componentKinds = [CACHE_KIND] as const;
