export { startService } from "./service-host";
export type {
  ServiceSpec,
  ServiceContext,
  ServiceParts,
  RunningService,
  StartOptions,
  LiveWorkers,
} from "./service-host";
export { ComponentSet } from "./component-set";
export { LiveConfig } from "./config-follow";
export type { ServiceComponents, LiveConfigOptions, RunningCheck } from "./config-follow";
export { defineEndpoint } from "./endpoint";
export type { EndpointDef, EndpointContext } from "./endpoint";
export { defineWorker, retryDelayMs, MAX_RETRY_DELAY_MS } from "./durable-worker";
export { Health } from "./health";
export type { Waiting } from "./health";
export { classifyThrown } from "./classify";
export { isCasConflict } from "./cas-conflict";
export type { WorkerDef, WorkerContext, RunningWorker } from "./durable-worker";
export { MeshClient } from "./mesh-client";
export type { MeshRequestOptions, MeshRawRequestOptions } from "./mesh-client";
export { pipelineStreams, ensureStream, ensureDurable, ensureSharedTopology, isPermissionDenied } from "./topology";
export { connectNats, natsConnectOptions, natsPassword } from "./nats-connect";
export { coalesceWrites } from "./write-coalescing";
export { bootstrapMesh } from "./bootstrap";
export type { BootstrapResult } from "./bootstrap";
export { tlsOptions, tlsWanted } from "./tls-files";
export type { ReadText } from "./tls-files";
export type { PipelineStream, DurableOptions } from "./topology";
export { createMetrics, observeGauge, addCounter } from "./metrics";
export { FastCounter, FastHistogram } from "./fast-metrics";
export type { CounterSeries, HistogramSeries, LabelValues } from "./fast-metrics";
export type { ServiceMetrics } from "./metrics";
export { collectNodeInfo } from "./node-info";
export { publishDurable } from "./publish";
export { GroupCommit, groupMsgId } from "./group-commit";
export type { GroupCommitOptions } from "./group-commit";
export { GroupPublisher, recordBatchesPublisher } from "./group-publisher";
export type { GroupPublisherOptions } from "./group-publisher";
export type { DurablePublishOptions, StoredAck } from "./publish";
export { runMain } from "./run-main";
export { publishAtomic, MAX_ATOMIC_BATCH } from "./atomic-batch";
export type { AtomicEntry } from "./atomic-batch";
export { KvLeases } from "./kv-leases";
export type { KvLeasesOptions, LeaseRound } from "./kv-leases";
export { storeDeadLetter } from "./dead-letter";
export type { LetterSource } from "./dead-letter";
export { setLongTimeout, MAX_TIMER_DELAY_MS } from "./long-timer";
export type { LongTimeout } from "./long-timer";
export {
  RESOURCES_HEADER,
  RESOURCE_KINDS,
  amountProblem,
  formatResources,
  noResources,
  parseAmount,
  parseResources,
} from "./resources";
export type { ResourceKind, Resources } from "./resources";
export { ResourceGate, resourceGate } from "./resource-gate";
export type { Admission, ResourceSettings } from "./resource-gate";
