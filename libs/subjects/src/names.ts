import { hash } from "node:crypto";
import { nameProblem } from "./name-rule";

/** The six deployable services of the mesh. */
export const SERVICES = ["fetch", "invoke", "aggregate", "data", "compute", "vertex"] as const;

/** A service name. */
export type ServiceName = (typeof SERVICES)[number];

/** Stores of the data layer: raw answers and merged records. */
export type StoreName = "dump" | "clean";

/** Data-layer operations reachable as `data.<op>.<store>.<type>`. */
export const DATA_OPS = ["create", "read", "readone", "update", "delete", "count"] as const;

/** A data-layer operation. */
export type DataOp = (typeof DATA_OPS)[number];

/** Throws when `value` breaks the name rule; a name becomes one subject token, stream or bucket name part. */
export function assertName(what: string, value: string): string {
  const problem = nameProblem(value);
  if (problem !== null) throw new TypeError(`${what}: ${problem}`);
  return value;
}

/**
 * A lead id as one subject token: lead ids are free text (dots, spaces, unicode), so the
 * token is a digest; 128 bits keep collisions out of reach for any realistic ledger.
 */
export function leadToken(leadId: string): string {
  // One-shot hash: no Hash object per call (a tick of 200,000 tasks made as many, promoted to the old space).
  return hash("sha256", leadId, "base64url").slice(0, 22);
}

/** A partition number as a subject token: a non-negative integer below 10 000. */
function partitionToken(partition: number): string {
  if (!Number.isInteger(partition) || partition < 0 || partition >= 10_000)
    throw new TypeError(`partition: expected an integer from 0 to 9999, got ${String(partition)}`);
  return String(partition);
}

/** Every subject, stream, consumer and bucket name of one network, derived from its prefix. */
export interface MeshNames {
  readonly prefix: string;
  /** Micro-service queue group shared by all replicas of a service. */
  queue(service: ServiceName): string;
  /** Root subject of a service's request/reply endpoints, e.g. `machina.fetch`. */
  serviceRoot(service: ServiceName): string;
  /** Inbox prefix of a service's connections (`_INBOX.<p>.<service>`): its NATS user may read replies there only. */
  inbox(service: ServiceName): string;
  readonly fetch: {
    fetch: string;
    overquota: string;
    quota: string;
    sources: string;
    /** `<p>.fetch.cursors` and `.cursors.reset`: read and reset the cursors of incremental queries. */
    cursors: string;
    cursorsReset: string;
  };
  readonly invoke: { buildQuerySet: string; fire: string; triggers: string; ledger(op: string): string };
  aggregateSave(type: string): string;
  data(op: DataOp, store: StoreName, type: string): string;
  /** `<p>.data.keys.<type>`: pages through every entity key of a type. */
  dataKeys(type: string): string;
  /** `<p>.data.drift.<type>`: fields records of a type carry that it does not declare. */
  dataDrift(type: string): string;
  /** `<p>.data.schema.<type>`: a type's registered schema and its history. */
  dataSchema(type: string): string;
  /** `<p>.data.clean.failed.<type>` and `.retry.<type>`: windows the clean job parked, and putting them back. */
  dataClean(op: "failed" | "retry", type: string): string;
  /** `<p>.data.changed.<type>`: a clean record of the type changed (DataChanged, core NATS). */
  dataChanged(type: string): string;
  /** `<p>.data.series.<type>`: one numeric field of one entity over a time range, as float64 columns. */
  dataSeries(type: string): string;
  computeGet(name: string): string;
  /** `<p>.compute.cache.stats` (this replica's result cache) and `.drop` (drop entries on every replica). */
  computeCache(op: "stats" | "drop"): string;
  readonly vertex: {
    connect(role: "processor" | "scheduler"): string;
    nodes: string;
    stats: string;
    /** Recommended replicas per service, from measured handler time and lag. */
    scale: string;
    /** Dead-letter operations; outside `<p>.dlq.>` so the DLQ stream never captures a request. */
    dlq: { list: string; show: string; replay: string; purge: string };
  };
  /** Config chain endpoints: read the document, append a patch, list the chain, explain a key. */
  readonly config: {
    head: string;
    get: string;
    patch: string;
    history: string;
    explain: string;
    /** `<p>.config.validate.<service>`: the service checks a proposed tree's part it owns (every service serves it). */
    validate(service: ServiceName): string;
    /** `<p>.config.defaults.<service>`: the service fills a component of its kinds with its schema defaults (for explain). */
    defaults(service: ServiceName): string;
  };
  /** Wildcard subjects that one endpoint serves for every type/name, and their parsers. */
  readonly any: {
    aggregateSave: string;
    data(op: DataOp): string;
    dataKeys: string;
    dataDrift: string;
    dataSchema: string;
    dataClean(op: "failed" | "retry"): string;
    dataChanged: string;
    dataSeries: string;
    computeGet: string;
    vertexConnect: string;
    /** `<p>.data.<op>.<store>.*`: one operation on one store, every type. */
    dataStore(op: DataOp, store: StoreName): string;
    /** `<p>.config.validate.*`: every service's check of a proposed config. */
    configValidate: string;
    /** `<p>.config.defaults.*`: every service's schema defaults of its components. */
    configDefaults: string;
    /** `<p>.task.fetch.*.>`: every source's FetchTasks (one token per source, then query and lead). */
    fetchTasks: string;
    /** `<p>.task.fetched.*`: every source's answers. */
    fetched: string;
    /** `<p>.task.aggregate.*.*`: every partition of every stateful type. */
    aggregatePartitions: string;
    /** `<p>.task.store.*`: every type's STORE subject. */
    store: string;
  };
  /** The last `n` tokens of a subject (e.g. store and type of a data subject). */
  tail(subject: string, n: number): string[];
  /** Cache invalidation broadcasts between compute replicas. */
  readonly cacheInvalidate: string;
  readonly task: {
    /**
     * One FetchTask's subject: `<p>.task.fetch.<source>.<query>.<lead hash>`. The FETCH stream
     * keeps one message per subject, so a newer task for the same (source, query, lead)
     * supersedes the queued one.
     */
    fetch(source: string, query: string, leadId: string): string;
    /** Every FetchTask of one source: the filter of that source's own consumer. */
    fetchOf(source: string): string;
    fetched(source: string): string;
    aggregate(type: string): string;
    /** `<p>.task.aggregate.<type>.<n>`: partition `n` of a stateful type, read in order by its one owner. */
    aggregatePartition(type: string, partition: number): string;
    /** Every type's unpartitioned subject, one token after `aggregate` (partition subjects have two). */
    aggregateAll: string;
    store(type: string): string;
  };
  /** Dead-letter subject for a stream's messages that kept failing. */
  dlq(stream: string): string;
  readonly streams: { FETCH: string; FETCHED: string; AGGREGATE: string; STORE: string; DLQ: string };
  /** The subject filter each stream captures. */
  readonly streamSubjects: { FETCH: string; FETCHED: string; AGGREGATE: string; STORE: string; DLQ: string };
  readonly consumers: {
    /** Durable consumer of one source's FetchTasks (`fetch-<source>`), shared by every fetch replica. */
    fetch(source: string): string;
    fetched: string;
    aggregate: string;
    /** Durable consumer of one partition of a stateful type (`aggregate-<type>-<n>`), used by its owner only. */
    aggregatePartition(type: string, partition: number): string;
    store: string;
  };
  /**
   * KV buckets: limiter windows, config patches, live nodes, which data replica cleans which
   * shard, how far each paginated FetchTask got (`fetchPages`, so a redelivery resumes), the
   * state of stateful aggregators (`aggregateState`: open windows, partials, last values) and
   * which aggregate replica owns which partition (`aggregateLeases`), the cursors of incremental
   * queries (`fetchCursors`, advanced by data once an answer's records are stored) and the stored
   * parts of answers split across messages (`fetchCursorParts`), the leads of `kv` and
   * `self` ledgers (`invokeLedgers`) and how far each trigger tick got (`invokeTicks`, so a tick
   * an invoke replica dropped is finished by another).
   */
  readonly buckets: {
    limiter: string;
    config: string;
    nodes: string;
    cleanLeases: string;
    fetchPages: string;
    fetchCursors: string;
    fetchCursorParts: string;
    aggregateState: string;
    aggregateLeases: string;
    invokeLedgers: string;
    invokeTicks: string;
  };
}

/** Builds every name of a network from its prefix (default `machina`). */
export function meshNames(prefix = "machina"): MeshNames {
  // Stream names upper-case the prefix, so `a-b`/`a_b` or `Machina`/`machina` would share streams
  // while using different subjects: only lower-case letters and digits are allowed.
  if (!/^[a-z][a-z0-9]*$/.test(prefix)) {
    throw new TypeError(`mesh.prefix "${prefix}" must be lower-case letters and digits, starting with a letter`);
  }
  const p = prefix;
  const up = p.toUpperCase().replace(/-/g, "_");
  const tok = (what: string, v: string) => assertName(what, v);
  return {
    prefix: p,
    queue: (service) => `${p}-${service}`,
    serviceRoot: (service) => `${p}.${service}`,
    inbox: (service) => `_INBOX.${p}.${service}`,
    fetch: {
      fetch: `${p}.fetch.fetch`,
      overquota: `${p}.fetch.overquota`,
      quota: `${p}.fetch.quota`,
      sources: `${p}.fetch.sources`,
      cursors: `${p}.fetch.cursors`,
      cursorsReset: `${p}.fetch.cursors.reset`,
    },
    invoke: {
      buildQuerySet: `${p}.invoke.buildqueryset`,
      fire: `${p}.invoke.fire`,
      triggers: `${p}.invoke.triggers`,
      ledger: (op) => `${p}.invoke.ledger.${tok("ledger op", op)}`,
    },
    aggregateSave: (type) => `${p}.aggregate.save.${tok("entity type", type)}`,
    data: (op, store, type) => `${p}.data.${op}.${store}.${tok("entity type", type)}`,
    dataKeys: (type) => `${p}.data.keys.${tok("entity type", type)}`,
    dataDrift: (type) => `${p}.data.drift.${tok("entity type", type)}`,
    dataSchema: (type) => `${p}.data.schema.${tok("entity type", type)}`,
    dataClean: (op, type) => `${p}.data.clean.${op}.${tok("entity type", type)}`,
    dataChanged: (type) => `${p}.data.changed.${tok("entity type", type)}`,
    dataSeries: (type) => `${p}.data.series.${tok("entity type", type)}`,
    computeGet: (name) => `${p}.compute.get.${tok("computation", name)}`,
    computeCache: (op) => `${p}.compute.cache.${op}`,
    vertex: {
      connect: (role) => `${p}.vertex.connect.${role}`,
      nodes: `${p}.vertex.nodes`,
      stats: `${p}.vertex.stats`,
      scale: `${p}.vertex.scale`,
      dlq: {
        list: `${p}.vertex.dlq.list`,
        show: `${p}.vertex.dlq.show`,
        replay: `${p}.vertex.dlq.replay`,
        purge: `${p}.vertex.dlq.purge`,
      },
    },
    config: {
      head: `${p}.config.head`,
      get: `${p}.config.get`,
      patch: `${p}.config.patch`,
      history: `${p}.config.history`,
      explain: `${p}.config.explain`,
      validate: (service) => `${p}.config.validate.${service}`,
      defaults: (service) => `${p}.config.defaults.${service}`,
    },
    any: {
      aggregateSave: `${p}.aggregate.save.*`,
      data: (op) => `${p}.data.${op}.*.*`,
      dataKeys: `${p}.data.keys.*`,
      dataDrift: `${p}.data.drift.*`,
      dataSchema: `${p}.data.schema.*`,
      dataClean: (op) => `${p}.data.clean.${op}.*`,
      dataChanged: `${p}.data.changed.*`,
      dataSeries: `${p}.data.series.*`,
      computeGet: `${p}.compute.get.*`,
      vertexConnect: `${p}.vertex.connect.*`,
      dataStore: (op, store) => `${p}.data.${op}.${store}.*`,
      configValidate: `${p}.config.validate.*`,
      configDefaults: `${p}.config.defaults.*`,
      fetchTasks: `${p}.task.fetch.*.>`,
      fetched: `${p}.task.fetched.*`,
      aggregatePartitions: `${p}.task.aggregate.*.*`,
      store: `${p}.task.store.*`,
    },
    tail: (subject, n) => subject.split(".").slice(-n),
    cacheInvalidate: `${p}.cache.invalidate`,
    task: {
      fetch: (source, query, leadId) =>
        `${p}.task.fetch.${tok("source", source)}.${tok("query", query)}.${leadToken(leadId)}`,
      fetchOf: (source) => `${p}.task.fetch.${tok("source", source)}.>`,
      fetched: (source) => `${p}.task.fetched.${tok("source", source)}`,
      aggregate: (type) => `${p}.task.aggregate.${tok("entity type", type)}`,
      aggregatePartition: (type, partition) =>
        `${p}.task.aggregate.${tok("entity type", type)}.${partitionToken(partition)}`,
      aggregateAll: `${p}.task.aggregate.*`,
      store: (type) => `${p}.task.store.${tok("entity type", type)}`,
    },
    dlq: (stream) => `${p}.dlq.${stream}`,
    streams: {
      FETCH: `${up}_FETCH`,
      FETCHED: `${up}_FETCHED`,
      AGGREGATE: `${up}_AGGREGATE`,
      STORE: `${up}_STORE`,
      DLQ: `${up}_DLQ`,
    },
    streamSubjects: {
      FETCH: `${p}.task.fetch.>`,
      FETCHED: `${p}.task.fetched.>`,
      AGGREGATE: `${p}.task.aggregate.>`,
      STORE: `${p}.task.store.>`,
      DLQ: `${p}.dlq.>`,
    },
    consumers: {
      fetch: (source) => `fetch-${tok("source", source)}`,
      fetched: "invoke-handler",
      aggregate: "aggregate",
      aggregatePartition: (type, partition) => `aggregate-${tok("entity type", type)}-${partitionToken(partition)}`,
      store: "data-dump",
    },
    buckets: {
      limiter: `${p}_limiter`,
      config: `${p}_config`,
      nodes: `${p}_nodes`,
      cleanLeases: `${p}_clean_leases`,
      fetchPages: `${p}_fetch_pages`,
      fetchCursors: `${p}_fetch_cursors`,
      fetchCursorParts: `${p}_fetch_cursor_parts`,
      aggregateState: `${p}_aggregate_state`,
      aggregateLeases: `${p}_aggregate_leases`,
      invokeLedgers: `${p}_invoke_ledgers`,
      invokeTicks: `${p}_invoke_ticks`,
    },
  };
}
