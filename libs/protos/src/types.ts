// Plain-object shapes of the messages in protos/machina/v1, as the codecs produce
// and accept them (proto3 JSON names; int64 as number; Struct as plain JSON).

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
/** A JSON object (google.protobuf.Struct). */
export type JsonObject = { [k: string]: JsonValue };

/** Timing and quota facts about one fetch or handler run. */
export interface Meta {
  start: number;
  end: number;
  requestTime: number;
  sourceTime: number;
  responseTime: number;
  limiterUsage: number;
  limiterQuota: number;
  percentQuota?: number;
  source: string;
  query: string;
  node: string;
  attempts: number;
  pages: number;
}

/** One row of a ledger. */
export interface Lead {
  id: string;
  args: JsonObject;
}

/** Records of one entity type. */
export interface Records {
  records: JsonObject[];
}

/** Records grouped by entity type. */
export interface EntitySet {
  types: Record<string, Records>;
}

/** Error body carried with Nats-Service-Error headers. */
export interface ErrorBody {
  code: string;
  status: number;
  message: string;
  details: JsonObject;
  retryable: boolean;
}

/** Run one query of one source for one lead. */
export interface QueryRequest {
  source: string;
  query: string;
  lead: Lead;
  requestId: string;
}

/** Answer to a QueryRequest or FetchTask. */
export interface QueryResponse {
  requestId: string;
  source: string;
  query: string;
  lead: Lead;
  data: EntitySet;
  meta: Meta;
  taskId: string;
}

/** A unit of scheduled fetch work. */
export interface FetchTask {
  id: string;
  source: string;
  query: string;
  lead: Lead;
  trigger: string;
  tick: number;
  createdAt: number;
  querySet: string;
}

/** Quota request for one source. */
export interface QuotaRequest {
  source: string;
}

/** One limiter window's usage. */
export interface QuotaWindow {
  perMs: number;
  usage: number;
  quota: number;
  percent?: number;
  resetsAt: number;
  /** `rolling` or `clock`. */
  align: string;
}

/** Quota view of one source. */
export interface QuotaReply {
  source: string;
  overQuota: boolean;
  windows: QuotaWindow[];
}

/** Rows of leads. */
export interface Ledger {
  name: string;
  leads: Lead[];
}

/** A source and the queries to run per lead. */
export interface QuerySet {
  name: string;
  source: string;
  queries: string[];
  ledger: string;
}

/** Fire a trigger now. */
export interface FireRequest {
  trigger: string;
}

/** What a fired tick published. */
export interface FireReply {
  trigger: string;
  tick: number;
  tasks: number;
  duplicates: number;
  /** New tasks that replaced an older queued task for the same (source, query, lead). */
  superseded: number;
}

/** Ask for the tasks a query set would produce. */
export interface BuildQuerySetRequest {
  querySet: string;
}

/** Tasks of a query set. */
export interface BuildQuerySetReply {
  tasks: FetchTask[];
}

/** Records of one type moving through aggregate and store. */
export interface RecordBatch {
  id: string;
  type: string;
  source: string;
  query: string;
  taskId: string;
  fetchedAt: number;
  records: JsonObject[];
}

/** A message parked after repeated failure. */
export interface DeadLetter {
  stream: string;
  subject: string;
  streamSeq: number;
  deliveries: number;
  errorCode: string;
  errorMessage: string;
  payload: Uint8Array;
  contentType: string;
}

/** Upsert records. */
export interface CreateRequest {
  records: JsonObject[];
}

/** Read records by criteria. */
export interface ReadRequest {
  criteria: JsonObject;
  offset: number;
  limit: number;
}

/** One entity by key. */
export interface KeyRequest {
  key: JsonObject;
}

/** Alter the newest record of a key. */
export interface UpdateRequest {
  key: JsonObject;
  alterations: JsonObject;
}

/** Count records by criteria. */
export interface CountRequest {
  criteria: JsonObject;
}

/** Many records. */
export interface RecordsReply {
  records: JsonObject[];
}

/** One record. */
export interface RecordReply {
  record: JsonObject;
}

/** A count. */
export interface CountReply {
  count: number;
}

/** How many rows a write touched. */
export interface WriteReply {
  affected: number;
}

/** Arguments of a computation. */
export interface ComputeRequest {
  args: JsonObject;
}

/** Rows a computation produced. */
export interface ComputeReply {
  name: string;
  rows: JsonObject[];
  cached: boolean;
}

/** A service instance as vertex sees it. */
export interface NodeInfo {
  id: string;
  service: string;
  role: string;
  hostname: string;
  pid: number;
  cpuCores: number;
  ramBytes: number;
  gpus: string[];
  storageBytes: number;
  network: string[];
  startedAt: number;
  seenAt: number;
  version: string;
  configHead: string;
}

/** Registered nodes. */
export interface NodeList {
  nodes: NodeInfo[];
}

/** One JSON-Patch operation. */
export interface PatchOp {
  op: string;
  path: string;
  value?: JsonValue;
  from: string;
}

/** A live config change. */
export interface ConfigPatch {
  hash: string;
  parent: string;
  ops: PatchOp[];
  author: string;
  createdAt: number;
}

/** No fields. */
export type Empty = Record<string, never>;

/** A plain acknowledgement. */
export interface Ack {
  ok: boolean;
  id: string;
}

/** Which dead letters a replay or purge applies to; every set field must match, none set = all. */
export interface DeadLetterFilter {
  code: string;
  /** NATS subject pattern; `*` and `>` allowed. */
  subject: string;
  type: string;
  /** Stream name (MACHINA_STORE) or key (STORE). */
  stream: string;
  seqs: number[];
}

/** Counts of matching dead letters, plus the oldest `limit` one by one. */
export interface DeadLetterListRequest {
  code: string;
  subject: string;
  type: string;
  stream: string;
  limit: number;
}

/** Dead letters sharing an error code and an original subject. */
export interface DeadLetterGroup {
  code: string;
  subject: string;
  type: string;
  stream: string;
  count: number;
  oldestTime: number;
  oldestSeq: number;
}

/** One dead letter without its payload. */
export interface DeadLetterEntry {
  seq: number;
  stream: string;
  subject: string;
  type: string;
  code: string;
  message: string;
  deliveries: number;
  time: number;
}

/** Dead-letter counts by group, oldest first. */
export interface DeadLetterListReply {
  total: number;
  groups: DeadLetterGroup[];
  letters: DeadLetterEntry[];
  moreGroups: number;
}

/** One dead letter by DLQ sequence. */
export interface DeadLetterShowRequest {
  seq: number;
}

/** One dead letter with its payload decoded by its original stream. */
export interface DeadLetterShowReply {
  seq: number;
  stream: string;
  subject: string;
  streamSeq: number;
  type: string;
  code: string;
  message: string;
  deliveries: number;
  time: number;
  contentType: string;
  payloadType: string;
  /** Null when the payload did not decode (then payloadRaw and payloadError are set). */
  payload: JsonObject | null;
  payloadRaw: Uint8Array;
  payloadError: string;
}

/** A dead letter an operation could not handle. */
export interface DeadLetterFailure {
  seq: number;
  code: string;
  reason: string;
}

/** What a replay did. */
export interface DeadLetterReplayReply {
  replayed: number;
  failed: number;
  failures: DeadLetterFailure[];
}

/** What a purge deleted. */
export interface DeadLetterPurgeReply {
  purged: number;
}

/** Message name → plain shape, for typed codec lookup. */
export interface MessageTypes {
  Meta: Meta;
  Lead: Lead;
  Records: Records;
  EntitySet: EntitySet;
  Error: ErrorBody;
  QueryRequest: QueryRequest;
  QueryResponse: QueryResponse;
  FetchTask: FetchTask;
  QuotaRequest: QuotaRequest;
  QuotaWindow: QuotaWindow;
  QuotaReply: QuotaReply;
  Ledger: Ledger;
  QuerySet: QuerySet;
  FireRequest: FireRequest;
  FireReply: FireReply;
  BuildQuerySetRequest: BuildQuerySetRequest;
  BuildQuerySetReply: BuildQuerySetReply;
  RecordBatch: RecordBatch;
  DeadLetter: DeadLetter;
  CreateRequest: CreateRequest;
  ReadRequest: ReadRequest;
  KeyRequest: KeyRequest;
  UpdateRequest: UpdateRequest;
  CountRequest: CountRequest;
  RecordsReply: RecordsReply;
  RecordReply: RecordReply;
  CountReply: CountReply;
  WriteReply: WriteReply;
  ComputeRequest: ComputeRequest;
  ComputeReply: ComputeReply;
  NodeInfo: NodeInfo;
  NodeList: NodeList;
  PatchOp: PatchOp;
  ConfigPatch: ConfigPatch;
  Empty: Empty;
  Ack: Ack;
  DeadLetterFilter: DeadLetterFilter;
  DeadLetterListRequest: DeadLetterListRequest;
  DeadLetterGroup: DeadLetterGroup;
  DeadLetterEntry: DeadLetterEntry;
  DeadLetterListReply: DeadLetterListReply;
  DeadLetterShowRequest: DeadLetterShowRequest;
  DeadLetterShowReply: DeadLetterShowReply;
  DeadLetterFailure: DeadLetterFailure;
  DeadLetterReplayReply: DeadLetterReplayReply;
  DeadLetterPurgeReply: DeadLetterPurgeReply;
}

/** Name of a message in package machina.v1. */
export type MessageName = keyof MessageTypes;
