// The shared rate limiter: rate windows of every source counted in NATS KV across all replicas.
export { openLimiter } from "./limiter";
export type {
  Limiter,
  LimiterOptions,
  LimitedSource,
  Acquired,
  WindowUsage,
  QuotaReport,
  LimiterStats,
  LimiterLog,
  CredentialQuota,
} from "./limiter-types";
export { isOverQuota } from "./quota-report";
export { ServerClock, monotonicClock } from "./server-clock";
export type { LocalClock, OffsetBounds } from "./server-clock";
export { append, countSince, earliestFor, remove, roomAt, gridOf, decodeLog, encodeLog } from "./sliding-log";
export type { SlidingLog } from "./sliding-log";
