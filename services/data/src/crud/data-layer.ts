import type { ConnectionOptions } from "node:tls";
import cassandra from "cassandra-driver";
import type { StoreName } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import {
  listFailed,
  retryFailed,
  runClean,
  type FailedPage,
  type RunCleanOptions,
  type RunCleanResult,
} from "../clean";
import type { TypeDef } from "../schema";
import {
  checkSchema,
  ensureSchema,
  newCleanMemory,
  RecordedDays,
  toDataError,
  listKeys,
  readDrift,
  readSchemaHistory,
  prepareDumpRows,
  resolveType,
  storeDumps,
  writeDump,
  type DataContext,
  type DumpRow,
  type DriftField,
  type EnsureSchemaResult,
  type KeyPage,
  type PlainRow,
  type PreparedDump,
  type SchemaVersionEntry,
  type RefusedRow,
  type WriteDumpResult,
  type WriteQueueOptions,
  type WriteQueueStats,
  WriteQueue,
} from "../store";
import {
  countRecordsBulk,
  deleteRecordsBulk,
  readOneRecordsBulk,
  readRecordsBulk,
  updateRecordsBulk,
  type BulkCount,
  type BulkRecords,
  type UpdateItem,
} from "./bulk";
import { chooseForm, type BulkField, type RequestForm, type SingleFields } from "./bulk-items";
import { countRecords, readOneRecord, readRecords, type ReadOptions } from "./read";
import { readSeries, type SeriesOptions, type SeriesPage } from "./series";
import { createRecords, deleteRecords, updateRecord, type DeleteResult } from "./write";

/** How to reach the cluster and what to register. */
export interface DataLayerOptions {
  /** `host` or `host:port` entries. */
  contactPoints: string[];
  /** Datacenter of this replica (Cassandra's default is `datacenter1`). */
  localDataCenter: string;
  keyspace: string;
  /** Replication factor per datacenter, e.g. `{ datacenter1: 1 }`. */
  replication: Record<string, number>;
  types: readonly TypeDef[];
  /** Day buckets clean reads walk back. Default 7. */
  lookbackDays?: number;
  /** Statements or batches in flight per call. Default 32. */
  concurrency?: number;
  /** Plain-text credentials, when the cluster requires them. */
  credentials?: { username: string; password: string };
  /** TLS options of every connection (node `tls.connect` options); undefined: plain CQL. */
  sslOptions?: ConnectionOptions;
  /** The replica's clock (epoch ms), for dirty-mark slots and clean runs. Default `Date.now`; tests skew it. */
  clock?: () => number;
  /** The operation queue's bounds (rows, batches in flight, wait for room); defaults in {@link WriteQueueOptions}. */
  queue?: WriteQueueOptions;
}

/** The data layer of the `data` service: schema, dump writes, clean job and CRUD over one keyspace. */
export class DataLayer {
  private closed = false;

  private constructor(
    private readonly ctx: DataContext,
    /** What the schema registration did when the layer was opened. */
    readonly schema: EnsureSchemaResult,
    private readonly replication: Record<string, number>,
  ) {}

  /** Connects, creates or extends the schema, and returns a ready layer; UNAVAILABLE if the cluster cannot be reached. */
  static async open(options: DataLayerOptions): Promise<DataLayer> {
    const lookbackDays = options.lookbackDays ?? 7;
    const concurrency = options.concurrency ?? 32;
    if (!Number.isInteger(lookbackDays) || lookbackDays < 1) {
      throw new MachinaError("BAD_REQUEST", `lookbackDays must be a positive integer, got ${String(lookbackDays)}`);
    }
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new MachinaError("BAD_REQUEST", `concurrency must be a positive integer, got ${String(concurrency)}`);
    }
    const client = new cassandra.Client({
      contactPoints: options.contactPoints,
      localDataCenter: options.localDataCenter,
      credentials: options.credentials,
      sslOptions: options.sslOptions,
      // bigint columns as JS bigint, so values survive merges and sums exactly.
      encoding: { useBigIntAsLong: true, useUndefinedAsUnset: true },
      // LOCAL_QUORUM writes and reads: a read after a completed write sees it, whatever the replication factor.
      queryOptions: { consistency: cassandra.types.consistencies.localQuorum, prepare: true },
      // The driver's default waits up to 10 min between reconnects; after an outage, queued work
      // must resume within seconds of the cluster's return.
      policies: { reconnection: new cassandra.policies.reconnection.ExponentialReconnectionPolicy(500, 5_000, false) },
    });
    try {
      await client.connect();
    } catch (err) {
      closeOrphanedControlConnection(client);
      throw toDataError(
        err,
        `connecting to ${options.contactPoints.join(", ")} (datacenter ${options.localDataCenter})`,
      );
    }
    try {
      const schema = await ensureSchema(client, options.keyspace, options.replication, options.types);
      const types = new Map(options.types.map((t) => [t.name, t]));
      return new DataLayer(
        {
          client,
          queue: new WriteQueue(client, {
            maxInFlight: concurrency,
            mixPartitions: holdsEverything(client, options.localDataCenter, options.replication),
            ...options.queue,
          }),
          keyspace: options.keyspace,
          types,
          concurrency,
          lookbackDays,
          recordedDays: new RecordedDays(),
          // Copies: registerTypes changes them in place as the types change live.
          indexSince: new Map(schema.indexSince),
          legacyDump: new Set(schema.legacyDump),
          driftWritten: new Map(),
          clock: options.clock ?? Date.now,
          cursorsKnown: new Set(),
          legacyDirty: schema.legacyDirty,
          clean: newCleanMemory(),
          manualSeen: new Map(),
        },
        schema,
        options.replication,
      );
    } catch (err) {
      await client.shutdown().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Serves `types` from now on, registered as {@link open} registers them: their tables created or
   * extended (CONFLICT, nothing changed, for a breaking change). A type left out is no longer
   * served; its tables stay. What a live config head runs.
   */
  registerTypes(types: readonly TypeDef[]): Promise<EnsureSchemaResult> {
    return this.run(async () => {
      const res = await ensureSchema(this.ctx.client, this.ctx.keyspace, this.replication, types);
      const indexSince = this.ctx.indexSince as Map<string, number>;
      const legacyDump = this.ctx.legacyDump as Set<string>;
      const byName = this.ctx.types as Map<string, TypeDef>;
      // What a new type's rows need is in place before requests can name it.
      for (const [name, since] of res.indexSince) indexSince.set(name, since);
      for (const name of res.legacyDump) legacyDump.add(name);
      byName.clear();
      for (const t of types) byName.set(t.name, t);
      return res;
    });
  }

  /** Throws CONFLICT naming each breaking change, changing nothing, when {@link registerTypes} would refuse `types`. */
  checkTypes(types: readonly TypeDef[]): Promise<void> {
    return this.run(() => checkSchema(this.ctx.client, this.ctx.keyspace, types));
  }

  /** Depth of the operation queue, for /metrics. */
  queueStats(): WriteQueueStats {
    return this.ctx.queue.stats();
  }

  /** The registered types, sorted by name. */
  types(): TypeDef[] {
    return [...this.ctx.types.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Stores raw answers and marks their entity windows dirty. */
  writeDump(type: string, rows: readonly DumpRow[]): Promise<WriteDumpResult> {
    return this.run(() => writeDump(this.ctx, type, rows));
  }

  /** Checks and coerces dump rows into statements without writing; bad rows are refused one by one (BAD_REQUEST naming the row and field). */
  prepareDumpRows(type: string, rows: readonly DumpRow[]): { prepared: PreparedDump; refused: RefusedRow[] } {
    if (this.closed) throw new MachinaError("UNAVAILABLE", "data layer is closed", { retryable: false });
    return prepareDumpRows(this.ctx, type, rows);
  }

  /** Stores prepared dumps together (rows grouped by partition), then marks their entity windows dirty. */
  storeDumps(dumps: readonly PreparedDump[]): Promise<void> {
    return this.run(() => storeDumps(this.ctx, dumps));
  }

  /** Merges every dirty entity window into clean rows. */
  runClean(options?: RunCleanOptions): Promise<RunCleanResult> {
    return this.run(() => runClean(this.ctx, options));
  }

  /** One page of the entity windows the clean job parked after repeated failures. */
  cleanFailed(type: string, options: { limit?: number; page?: string }): Promise<FailedPage> {
    return this.run(() => listFailed(this.ctx, resolveType(this.ctx, type), options));
  }

  /** Marks parked windows dirty again (those of `keys`, or every one when empty); answers how many. */
  retryCleanFailed(type: string, keys: readonly Record<string, unknown>[]): Promise<number> {
    return this.run(() => retryFailed(this.ctx, resolveType(this.ctx, type), keys));
  }

  /** Upserts records into a store (dump rows get source "manual"). */
  create(store: StoreName, type: string, records: readonly Record<string, unknown>[]): Promise<WriteDumpResult> {
    return this.run(() => createRecords(this.ctx, store, type, records));
  }

  /** Reads an entity's rows newest first; criteria must name the full key. */
  read(store: StoreName, type: string, options: ReadOptions): Promise<PlainRow[]> {
    return this.run(() => readRecords(this.ctx, store, type, options));
  }

  /** The entity's newest row, or NOT_FOUND. */
  readOne(store: StoreName, type: string, key: Record<string, unknown>): Promise<PlainRow> {
    return this.run(() => readOneRecord(this.ctx, store, type, key));
  }

  /** Number of an entity's rows matching the criteria. */
  count(store: StoreName, type: string, criteria: Record<string, unknown>): Promise<number> {
    return this.run(() => countRecords(this.ctx, store, type, criteria));
  }

  /** Every recorded version of a type's schema, newest first (NOT_FOUND for an unknown type). */
  schemaHistory(type: string): Promise<SchemaVersionEntry[]> {
    return this.run(() => readSchemaHistory(this.ctx.client, this.ctx.keyspace, resolveType(this.ctx, type).name));
  }

  /** Every undeclared field seen in records of a type, with when and its JSON type. */
  drift(type: string): Promise<DriftField[]> {
    return this.run(() => readDrift(this.ctx, resolveType(this.ctx, type)));
  }

  /** One page of the type's entity keys; pass `next` back as `page` for the following one. */
  keys(type: string, options: { limit?: number; page?: string }): Promise<KeyPage> {
    return this.run(() => listKeys(this.ctx, resolveType(this.ctx, type), options));
  }

  /** One page of one numeric field of one entity over [from, to), oldest first, as float64 columns. */
  series(type: string, options: SeriesOptions): Promise<SeriesPage> {
    return this.run(() => readSeries(this.ctx, type, options));
  }

  /** Alters the entity's newest clean row; returns it. */
  update(
    store: StoreName,
    type: string,
    key: Record<string, unknown>,
    alterations: Record<string, unknown>,
    clear: readonly string[] = [],
  ): Promise<PlainRow> {
    return this.run(() => updateRecord(this.ctx, store, type, key, alterations, Date.now(), clear));
  }

  /** Deletes the entity's rows from a store. */
  delete(store: StoreName, type: string, key: Record<string, unknown>): Promise<DeleteResult> {
    return this.run(() => deleteRecords(this.ctx, store, type, key));
  }

  /** Which form a request takes: NOT_FOUND for an unknown type, then BAD_REQUEST naming the fields when both or neither are set. */
  formOf(type: string, single: SingleFields, bulk: BulkField): RequestForm {
    if (this.closed) throw new MachinaError("UNAVAILABLE", "data layer is closed", { retryable: false });
    return chooseForm(resolveType(this.ctx, type), single, bulk);
  }

  /** Rows of every listed entity, each newest first with offset and limit applied per entity, in list order. */
  readBulk(
    store: StoreName,
    type: string,
    criteriaList: readonly Record<string, unknown>[],
    options: { offset?: number; limit?: number } = {},
  ): Promise<PlainRow[]> {
    return this.run(() => readRecordsBulk(this.ctx, store, type, criteriaList, options));
  }

  /** The newest row of each listed entity, in list order, and the keys that have none. */
  readOneBulk(store: StoreName, type: string, keys: readonly Record<string, unknown>[]): Promise<BulkRecords> {
    return this.run(() => readOneRecordsBulk(this.ctx, store, type, keys));
  }

  /** A count per criteria, in list order, and their sum. */
  countBulk(store: StoreName, type: string, criteriaList: readonly Record<string, unknown>[]): Promise<BulkCount> {
    return this.run(() => countRecordsBulk(this.ctx, store, type, criteriaList));
  }

  /** Alters the newest clean row of each listed entity; the rows in item order and the keys with none. */
  updateBulk(store: StoreName, type: string, items: readonly UpdateItem[]): Promise<BulkRecords> {
    return this.run(() => updateRecordsBulk(this.ctx, store, type, items));
  }

  /** Deletes the rows of every listed entity from a store; the total deleted. */
  deleteBulk(store: StoreName, type: string, keys: readonly Record<string, unknown>[]): Promise<DeleteResult> {
    return this.run(() => deleteRecordsBulk(this.ctx, store, type, keys));
  }

  /** Stores what is queued, then closes the connection; later calls fail with UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ctx.queue.close();
    await this.ctx.client.shutdown();
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new MachinaError("UNAVAILABLE", "data layer is closed", { retryable: false });
    try {
      return await fn();
    } catch (err) {
      throw toDataError(err, "unexpected failure");
    }
  }
}

// Whether every node of the local datacenter holds every partition (replication factor ≥ its
// nodes), so a coordinator writes a batch of many partitions locally instead of forwarding rows.
// The node count is looked up at most every 10 s: nodes may join.
function holdsEverything(client: cassandra.Client, dc: string, replication: Record<string, number>): () => boolean {
  let known = false;
  let at = -Infinity;
  return () => {
    const now = performance.now();
    if (now - at < 10_000) return known;
    at = now;
    const nodes = client.hosts.values().filter((h) => h.datacenter === dc).length;
    known = nodes > 0 && (replication[dc] ?? 0) >= nodes;
    return known;
  };
}

// cassandra-driver 4.10 leaves the control connection open when connect() fails after the handshake (an
// unknown localDataCenter, for one), and shutdown() is then a no-op, so the socket would keep the process
// alive. The driver keeps that connection in a private field; close it if it is there.
function closeOrphanedControlConnection(client: cassandra.Client): void {
  const internals = client as unknown as { controlConnection?: { connection?: { close?: () => void } | null } };
  try {
    internals.controlConnection?.connection?.close?.();
  } catch {
    // Best effort: a driver without that field has nothing of ours to close.
  }
}
