// The live dashboard page vertex serves: the HTTP server and its event stream, the snapshot it
// draws, and the default source reading that snapshot from NATS.
export { startDashboard } from "./dashboard-server";
export type { DashboardOptions, RunningDashboard } from "./dashboard-server";
export { natsSnapshot } from "./nats-snapshot";
export type { NatsSnapshotOptions } from "./nats-snapshot";
export type {
  DashboardEndpoint,
  DashboardLag,
  DashboardNode,
  DashboardQuota,
  DashboardSnapshot,
  DashboardSource,
} from "./dashboard-snapshot";
