import { aggregatorKind } from "./config";

export { aggregateService, createAggregateService } from "./aggregate-service";
export type { AggregateConfig, AggregateOptions } from "./aggregate-service";
export { aggregatorKind, AGGREGATOR_KINDS, REDUCERS, compileAggregators } from "./config";
export type {
  AggregatorKind,
  AggregatorSpec,
  Reducer,
  AggregatorTable,
  TypeAggregator,
  StatefulAggregator,
} from "./config";
export { makeKind, DueQueue } from "./kinds";
export type { InRecord, KindContext, Outcome, StatefulKind } from "./kinds";
export { recordKey, partitionOf, routeBatch, PartitionState, RecentBatches, PART_BYTES, StateStore } from "./partition";

/** Aggregate's component kinds, for the reference docs. */
export const componentKinds = [aggregatorKind] as const;
