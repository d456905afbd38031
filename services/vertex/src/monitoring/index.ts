// Monitoring kept over time: collectors read the mesh every few seconds (micro stats, handler
// histograms from heartbeats, consumer lag, DLQ size, node load, quota use), the sampler stores
// their samples as clean rows of one data-layer type, retention deletes old days, and
// queryStats answers vertex.stats from them.
export { EndpointStatsCollector } from "./endpoint-stats";
export { meshMicroStats } from "./mesh-micro-stats";
export type { InstanceEndpointStats } from "./mesh-micro-stats";
export { HandlerTimesCollector } from "./handler-times";
export { NodeGaugesCollector } from "./node-gauges";
export { QuotaUseCollector } from "./quota-use";
export { StreamGaugesCollector } from "./stream-gauges";
export type { Collector } from "./collector";
export { Sampler } from "./sampler";
export type { SamplerLog, SamplerOptions } from "./sampler";
export { SampleStore, utcDay } from "./sample-store";
export type { SeriesDay } from "./sample-store";
export { Retention } from "./retention";
export { queryStats, bucketize, MAX_BUCKETS, MAX_SERIES } from "./stats-query";
export { seriesName, defaultReducer, REDUCERS } from "./series-names";
export type { Sample, Reducer } from "./series-names";
export { quantile, histogramDelta, addHistograms } from "./histogram-percentiles";
export type { HistogramDelta } from "./histogram-percentiles";
