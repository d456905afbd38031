export { vertexService } from "./vertex-service";
export type { VertexConfig } from "./vertex-service";
export { NodeRegistry } from "./node-registry";
export { configEndpoints, openServedChain, remoteValidator } from "./config/index";
export type { ConfigEndpointDeps, ServedChainOptions } from "./config/index";
export type { NodeRegistryOptions, WarnLog } from "./node-registry";
export { Retention, SampleStore, bucketize, defaultReducer, quantile, seriesName, utcDay } from "./monitoring/index";
export type { Sample, SeriesDay } from "./monitoring/index";
export { startDashboard, natsSnapshot } from "./dashboard/index";
export type {
  DashboardOptions,
  RunningDashboard,
  NatsSnapshotOptions,
  DashboardSnapshot,
  DashboardSource,
  DashboardNode,
  DashboardEndpoint,
  DashboardLag,
  DashboardQuota,
} from "./dashboard/index";
export { ScaleAdvisor } from "./scaling/index";
export type { ScaleRule } from "./scaling/index";
