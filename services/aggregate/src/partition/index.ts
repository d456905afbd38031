// Partitions of stateful types: routing by key hash, per-partition state in KV committed
// atomically, the runner that owns a partition, and the lease-driven manager of runners.
export { recordKey, partitionOf } from "./partition-key";
export type { RecordKey } from "./partition-key";
export { routeBatch } from "./router";
export type { Routed, Refused } from "./router";
export { PartitionState } from "./partition-state";
export { RecentBatches, DEDUPE_SECONDS, PART_BYTES } from "./recent-batches";
export { StateStore } from "./state-store";
export { checkLayout, checkRetire } from "./layout-check";
export { PartitionManager } from "./partition-manager";
