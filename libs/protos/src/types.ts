// Plain-object shapes of the messages in protos/machina/v1, as the codecs produce and accept them
// (proto3 JSON names; int64 as number; enums by name; Struct/Value as plain JSON). They are derived
// from the classes that pbts declares in ./generated/machina.d.ts (`make protos` after editing a
// .proto; `make lint` fails while it is stale), so no field is written down twice.
import type { google, machina } from "./generated/machina";

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
/** A JSON object (google.protobuf.Struct). */
export type JsonObject = { [k: string]: JsonValue };

// ---- from a pbts class to its plain shape ----

type Flat<T> = T extends object ? { [K in keyof T]: T[K] } : never;
// Same type and same keys (a class with no fields is assignable both ways to the all-optional Value).
type Same<A, B> = [A, keyof A] extends [B, keyof B] ? ([B, keyof B] extends [A, keyof A] ? true : false) : false;

// A oneof's virtual discriminator (`kind?: "a" | "b"`): a union of the class's own field names.
// toObject leaves it out, as it does methods.
type OneofKeys<C> = {
  [K in keyof C]-?: string extends NonNullable<C[K]>
    ? never
    : NonNullable<C[K]> extends Exclude<keyof C, K>
      ? K
      : never;
}[keyof C];
type FieldKeys<C> = { [K in keyof C]-?: C[K] extends (...args: never[]) => unknown ? never : K }[keyof C] &
  Exclude<keyof C, OneofKeys<C>>;

// pbts declares `x?: (T|null)` for proto3 `optional` (and oneof) fields and for singular message fields.
// toObject({defaults: true}) omits the former when unset and gives null for the latter, which the plain
// shapes type as always there (see DeadLetterShowReply for the one exception). google.protobuf.Value fields
// are optional too: absent and null are the same JSON value.
type OptionalKeys<C> = {
  [K in FieldKeys<C>]-?: Pick<C, K> extends Required<Pick<C, K>>
    ? never
    : IsMessage<NonNullable<C[K]>> extends true
      ? Same<NonNullable<C[K]>, google.protobuf.Value> extends true
        ? K
        : never
      : K;
}[FieldKeys<C>];
type IsMessage<T> = [T] extends [Uint8Array] ? false : [T] extends [object] ? true : false;

type PlainValue<T> =
  Same<T, google.protobuf.Struct> extends true
    ? JsonObject
    : Same<T, google.protobuf.Value> extends true
      ? JsonValue
      : Same<T, google.protobuf.ListValue> extends true
        ? JsonValue[]
        : [T] extends [Uint8Array]
          ? Uint8Array
          : [T] extends [readonly (infer E)[]]
            ? PlainValue<E>[]
            : [T] extends [object]
              ? string extends keyof T
                ? Record<string, PlainValue<T[string]>>
                : Plain<T>
              : T;

type RequiredKeys<C> = Exclude<FieldKeys<C>, OptionalKeys<C>>;
type Field<C, K extends keyof C> = PlainValue<NonNullable<C[K]>>;

/** The plain object the codec reads and writes for pbts message class `C`. */
export type Plain<C> = [FieldKeys<C>] extends [never]
  ? Record<string, never>
  : Flat<
      { [K in keyof C as K extends RequiredKeys<C> ? K : never]-?: Field<C, K> } & {
        [K in keyof C as K extends OptionalKeys<C> ? K : never]+?: Field<C, K>;
      }
    >;

type Ctor<I = object> = abstract new (...args: never[]) => I;
type V1 = typeof machina.v1;
type Generated = { [N in keyof V1 as V1[N] extends Ctor ? N : never]: V1[N] extends Ctor<infer I> ? Plain<I> : never };

// ---- the messages, by name ----

/** Timing and quota facts about one fetch or handler run. */
export type Meta = Plain<machina.v1.Meta>;
/** One row of a ledger. */
export type Lead = Plain<machina.v1.Lead>;
/** Records of one entity type. */
export type Records = Plain<machina.v1.Records>;
/** Records grouped by entity type. */
export type EntitySet = Plain<machina.v1.EntitySet>;
/** Error body carried with Nats-Service-Error headers (message `Error`). */
export type ErrorBody = Plain<machina.v1.Error>;
/** Run one query of one source for one lead. */
export type QueryRequest = Plain<machina.v1.QueryRequest>;
/** Answer to a QueryRequest or FetchTask. */
export type QueryResponse = Plain<machina.v1.QueryResponse>;
/** Answers to FetchTasks of one source (FETCHED messages; fetch sends one per message). */
export type QueryResponses = Plain<machina.v1.QueryResponses>;
/** A unit of scheduled fetch work. */
export type FetchTask = Plain<machina.v1.FetchTask>;
/** Quota request for one source. */
export type QuotaRequest = Plain<machina.v1.QuotaRequest>;
/** One limiter window's usage. */
export type QuotaWindow = Plain<machina.v1.QuotaWindow>;
/** One credential of a source's pool, by stable id. */
export type QuotaCredential = Plain<machina.v1.QuotaCredential>;
/** Quota view of one source. */
export type QuotaReply = Plain<machina.v1.QuotaReply>;
/** One source fetch serves and its queries. */
export type SourceInfo = Plain<machina.v1.SourceInfo>;
/** Every source fetch serves. */
export type SourcesReply = Plain<machina.v1.SourcesReply>;
/** The incremental cursors of one query (fetch.cursors). */
export type CursorsRequest = Plain<machina.v1.CursorsRequest>;
/** One lead's cursor of an incremental query. */
export type CursorInfo = Plain<machina.v1.CursorInfo>;
/** Cursors of one query. */
export type CursorsReply = Plain<machina.v1.CursorsReply>;
/** Put cursors back to the initial value or at a value (fetch.cursors.reset). */
export type CursorResetRequest = Plain<machina.v1.CursorResetRequest>;
/** What a cursor reset did. */
export type CursorResetReply = Plain<machina.v1.CursorResetReply>;
/** Rows of leads (one page of them). */
export type Ledger = Plain<machina.v1.Ledger>;
/** A ledger operation: get, list, put, patch or delete. */
export type LedgerRequest = Plain<machina.v1.LedgerRequest>;
/** A lead left out, and why. */
export type LeadProblem = Plain<machina.v1.LeadProblem>;
/** What a ledger edit changed. */
export type LedgerEditReply = Plain<machina.v1.LedgerEditReply>;
/** One trigger and its next fire time. */
export type TriggerInfo = Plain<machina.v1.TriggerInfo>;
/** Every trigger of invoke. */
export type TriggersReply = Plain<machina.v1.TriggersReply>;
/** A source and the queries to run per lead. */
export type QuerySet = Plain<machina.v1.QuerySet>;
/** Fire a trigger now. */
export type FireRequest = Plain<machina.v1.FireRequest>;
/** What a fired tick published. */
export type FireReply = Plain<machina.v1.FireReply>;
/** Ask for the tasks a query set would produce. */
export type BuildQuerySetRequest = Plain<machina.v1.BuildQuerySetRequest>;
/** Tasks of a query set. */
export type BuildQuerySetReply = Plain<machina.v1.BuildQuerySetReply>;
/** Records of one type moving through aggregate and store. */
export type RecordBatch = Plain<machina.v1.RecordBatch>;
/** Record batches of one type from several fetch answers (AGGREGATE and STORE messages). */
export type RecordBatches = Plain<machina.v1.RecordBatches>;
/** A message parked after repeated failure. */
export type DeadLetter = Plain<machina.v1.DeadLetter>;
/** Upsert records. */
export type CreateRequest = Plain<machina.v1.CreateRequest>;
/** One page of entity keys of a type. */
export type KeysRequest = Plain<machina.v1.KeysRequest>;
/** Entity keys and the next page's token. */
export type KeysReply = Plain<machina.v1.KeysReply>;
/** One undeclared field of a type. */
export type DriftField = Plain<machina.v1.DriftField>;
/** The undeclared fields of a type. */
export type DriftReply = Plain<machina.v1.DriftReply>;
/** An entity window the clean job parked after repeated failures. */
export type FailedWindow = Plain<machina.v1.FailedWindow>;
/** A page of parked clean windows. */
export type CleanFailedReply = Plain<machina.v1.CleanFailedReply>;
/** Parked clean windows to put back (none named: every one). */
export type CleanRetryRequest = Plain<machina.v1.CleanRetryRequest>;
/** One registered version of a type's schema. */
export type SchemaVersion = Plain<machina.v1.SchemaVersion>;
/** A type's schema and its history. */
export type SchemaReply = Plain<machina.v1.SchemaReply>;
/** Read records by criteria, or of many entities (`criteriaList`). */
export type ReadRequest = Plain<machina.v1.ReadRequest>;
/** One entity by key, or many (`keys`). */
export type KeyRequest = Plain<machina.v1.KeyRequest>;
/** A clean record of a type changed (data.changed.<type>). */
export type DataChanged = Plain<machina.v1.DataChanged>;
/** Alter the newest record of a key, or of many (`items`). */
export type UpdateRequest = Plain<machina.v1.UpdateRequest>;
/** One entity of a bulk update: its key and the fields to alter. */
export type UpdateItem = Plain<machina.v1.UpdateItem>;
/** Count records by criteria, or per criteria of a list (`criteriaList`). */
export type CountRequest = Plain<machina.v1.CountRequest>;
/** Many records. */
export type RecordsReply = Plain<machina.v1.RecordsReply>;
/** One record, or (bulk) the records found and the keys missing. */
export type RecordReply = Plain<machina.v1.RecordReply>;
/** A count, and (bulk) one per criteria. */
export type CountReply = Plain<machina.v1.CountReply>;
/** How many rows a write touched. */
export type WriteReply = Plain<machina.v1.WriteReply>;
/** One numeric field of one entity over a time range (data.series.<type>). */
export type SeriesRequest = Plain<machina.v1.SeriesRequest>;
/** A page of a series as float64 columns. */
export type SeriesReply = Plain<machina.v1.SeriesReply>;
/** What one compute replica's result cache holds. */
export type CacheStats = Plain<machina.v1.CacheStats>;
/** Drop compute cache entries everywhere: all, a type's, or one entity's. */
export type CacheInvalidate = Plain<machina.v1.CacheInvalidate>;
/** Arguments of a computation. */
export type ComputeRequest = Plain<machina.v1.ComputeRequest>;
/** Rows a computation produced. */
export type ComputeReply = Plain<machina.v1.ComputeReply>;
/** A service instance as vertex sees it. */
export type NodeInfo = Plain<machina.v1.NodeInfo>;
/** Registered nodes. */
export type NodeList = Plain<machina.v1.NodeList>;
/** One JSON-Patch operation. */
export type PatchOp = Plain<machina.v1.PatchOp>;
/** A live config change. */
export type ConfigPatch = Plain<machina.v1.ConfigPatch>;
/** Read the config chain's document (or a subtree) at its head. */
export type ConfigGetRequest = Plain<machina.v1.ConfigGetRequest>;
/** The config chain's head and (part of) its document. */
export type ConfigDocument = Plain<machina.v1.ConfigDocument>;
/** Append JSON-Patch operations after the head. */
export type ConfigPatchRequest = Plain<machina.v1.ConfigPatchRequest>;
/** How many of the chain's newest patches to list. */
export type ConfigHistoryRequest = Plain<machina.v1.ConfigHistoryRequest>;
/** The config chain's patches, oldest first. */
export type ConfigHistory = Plain<machina.v1.ConfigHistory>;
/** Which layer gave a config key its value. */
export type ConfigExplainRequest = Plain<machina.v1.ConfigExplainRequest>;
/** A config key's value and the layer it came from. */
export type ConfigExplainReply = Plain<machina.v1.ConfigExplainReply>;
/** No fields. */
export type Empty = Plain<machina.v1.Empty>;
/** A plain acknowledgement. */
export type Ack = Plain<machina.v1.Ack>;
/** A cumulative handler-time histogram of one endpoint or worker. */
export type HandlerTimes = Plain<machina.v1.HandlerTimes>;
/** What vertex answers a connect or heartbeat: the registry id and the heartbeat interval. */
export type ConnectReply = Plain<machina.v1.ConnectReply>;
/** Monitoring series over a range, in buckets. */
export type StatsRequest = Plain<machina.v1.StatsRequest>;
/** One bucket of a monitoring series. */
export type StatsBucket = Plain<machina.v1.StatsBucket>;
/** One monitoring series, bucketed. */
export type StatsSeries = Plain<machina.v1.StatsSeries>;
/** Monitoring series over a range. */
export type StatsReply = Plain<machina.v1.StatsReply>;
/** The recommended replica count of one service and what it is based on. */
export type ScaleAdvice = Plain<machina.v1.ScaleAdvice>;
/** vertex.scale: advice per service. */
export type ScaleReply = Plain<machina.v1.ScaleReply>;
/** Which dead letters a replay or purge applies to; every set field must match, none set = all. */
export type DeadLetterFilter = Plain<machina.v1.DeadLetterFilter>;
/** Counts of matching dead letters, plus the oldest `limit` one by one. */
export type DeadLetterListRequest = Plain<machina.v1.DeadLetterListRequest>;
/** Dead letters sharing an error code and an original subject. */
export type DeadLetterGroup = Plain<machina.v1.DeadLetterGroup>;
/** One dead letter without its payload. */
export type DeadLetterEntry = Plain<machina.v1.DeadLetterEntry>;
/** Dead-letter counts by group, oldest first. */
export type DeadLetterListReply = Plain<machina.v1.DeadLetterListReply>;
/** One dead letter by DLQ sequence. */
export type DeadLetterShowRequest = Plain<machina.v1.DeadLetterShowRequest>;
/**
 * One dead letter with its payload decoded by its original stream. `payload` is null when it did
 * not decode (then payloadRaw and payloadError are set): the one message field typed as nullable.
 */
export type DeadLetterShowReply = Flat<
  Omit<Plain<machina.v1.DeadLetterShowReply>, "payload"> & { payload: JsonObject | null }
>;
/** A dead letter an operation could not handle. */
export type DeadLetterFailure = Plain<machina.v1.DeadLetterFailure>;
/** What a replay did. */
export type DeadLetterReplayReply = Plain<machina.v1.DeadLetterReplayReply>;
/** What a purge deleted. */
export type DeadLetterPurgeReply = Plain<machina.v1.DeadLetterPurgeReply>;

/** Message name → plain shape, for typed codec lookup: every message class of machina.v1. */
export type MessageTypes = Flat<Omit<Generated, "DeadLetterShowReply"> & { DeadLetterShowReply: DeadLetterShowReply }>;

/** Name of a message in package machina.v1. */
export type MessageName = keyof MessageTypes;
