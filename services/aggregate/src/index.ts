import { aggregatorKind } from "./aggregators";

export { aggregateService } from "./aggregate-service";
export { compileAggregators, aggregatorKind, AGGREGATOR_KINDS } from "./aggregators";
export type { Aggregator, AggregatorKind, AggregatorTable } from "./aggregators";

/** Aggregate's component kinds, for the reference docs. */
export const componentKinds = [aggregatorKind] as const;
