// Aggregator files: the component kind (one schema for every kind) and the per-type table compiled from them.
export { aggregatorKind, AGGREGATOR_KINDS, REDUCERS, MAX_PARTITIONS } from "./aggregator-kind";
export type { AggregatorKind, AggregatorSpec, Reducer, StatefulSpec } from "./aggregator-kind";
export { compileAggregators } from "./aggregator-table";
export type { AggregatorTable, TypeAggregator, StatefulAggregator } from "./aggregator-table";
