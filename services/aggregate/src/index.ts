export { aggregateService } from "./aggregate-service";
export { compileAggregators, AGGREGATOR_KINDS } from "./aggregators";
export type { Aggregator, AggregatorKind, AggregatorTable } from "./aggregators";
