import { jsApi, kvKeys, kvStream } from "./js-api";
import { SERVICES } from "./names";
import type { MeshNames, ServiceName } from "./names";

/**
 * What one NATS user may do: the subjects it may publish to and subscribe to (allow lists; all
 * else is denied). Replies to requests it received are allowed besides (`allow_responses`), so a
 * service answers whoever asked without a grant on their inboxes.
 */
export interface NatsPermissions {
  publish: string[];
  subscribe: string[];
}

/** The user that creates the shared streams and buckets (`tools/nats-admin.ts bootstrap`); it has no limits. */
export const ADMIN_USER = "admin";

/** Every NATS user of a mesh: the admin, then one per service (named like the service). */
export const NATS_USERS = [ADMIN_USER, ...SERVICES] as const;

/** A NATS user name. */
export type NatsUser = (typeof NATS_USERS)[number];

type WorkStream = "FETCH" | "FETCHED" | "AGGREGATE" | "STORE";
const PIPELINE = ["FETCH", "FETCHED", "AGGREGATE", "STORE", "DLQ"] as const;

/** Who uses a KV bucket. */
interface BucketUse {
  /** Services that create it at start (its options follow their config), change its settings, read and write it. */
  own: readonly ServiceName[];
  /** Services that read and write a bucket the admin bootstrap made. */
  write?: readonly ServiceName[];
  /** Read by every service. */
  everyoneReads?: boolean;
}

// Every bucket of MeshNames must be named here (the type says so): a new bucket gets no grant
// until someone decides who may create, write and read it.
const BUCKETS: Record<keyof MeshNames["buckets"], BucketUse> = {
  // The config chain: every service follows it; vertex appends patches; the admin creates it.
  config: { own: [], write: ["vertex"], everyoneReads: true },
  limiter: { own: ["fetch"] },
  fetchPages: { own: ["fetch"] },
  // Incremental queries: fetch reads (and seeds) the cursors, data moves them once records are stored.
  fetchCursors: { own: ["fetch", "data"] },
  fetchCursorParts: { own: ["data"] },
  nodes: { own: ["vertex"] },
  cleanLeases: { own: ["data"] },
  aggregateState: { own: ["aggregate"] },
  aggregateLeases: { own: ["aggregate"] },
  invokeLedgers: { own: ["invoke"] },
  invokeTicks: { own: ["invoke"] },
};

class Grants {
  readonly pub = new Set<string>();
  readonly sub = new Set<string>();

  constructor(private readonly n: MeshNames) {}

  publish(...subjects: (string | readonly string[])[]): this {
    for (const s of subjects.flat()) this.pub.add(s);
    return this;
  }

  subscribe(...subjects: string[]): this {
    for (const s of subjects) this.sub.add(s);
    return this;
  }

  /** Gets, watches and status of a bucket (ordered consumers on its stream). */
  kvRead(bucket: string): this {
    const s = kvStream(bucket);
    return this.publish(
      jsApi.streamInfo(s),
      jsApi.streamMsgGet(s),
      jsApi.directGet(s),
      jsApi.consumerCreateAny(s),
      jsApi.consumerInfo(s, "*"),
      jsApi.consumerDelete(s, "*"),
      jsApi.msgNext(s, "*"),
      jsApi.flowControl(s),
    );
  }

  /** Puts, creates, updates, deletes and purges of keys. */
  kvWrite(bucket: string): this {
    return this.publish(kvKeys(bucket));
  }

  /**
   * A bucket only this service uses: it creates it at start (its options follow its own config,
   * e.g. a TTL from its windows) and may change its stream's settings.
   */
  kvOwn(bucket: string): this {
    const s = kvStream(bucket);
    return this.kvRead(bucket).kvWrite(bucket).publish(jsApi.streamCreate(s), jsApi.streamUpdate(s));
  }

  /**
   * A durable pull consumer the service makes and reads on a work stream: create/update it with
   * this filter, read its info, pull, ack, and park dead letters of that stream. `name` `*`: names
   * that follow the service's config (one per source, one per partition).
   */
  consume(key: WorkStream, name: string, filter: string): this {
    const s = this.n.streams[key];
    return this.publish(
      jsApi.consumerCreate(s, name, filter),
      jsApi.consumerInfo(s, name),
      jsApi.msgNext(s, name),
      jsApi.ack(s, name),
      this.n.dlq(s),
    );
  }
}

// What every service does: start (stream info of the pipeline, JetStream account info), use its
// buckets and follow the config chain (read only), heartbeat to vertex, answer micro-service
// discovery, check its part of a proposed config and fill in its defaults, and receive its
// replies on its own inbox prefix.
function base(n: MeshNames, service: ServiceName): Grants {
  const g = new Grants(n);
  g.publish(jsApi.accountInfo, n.any.vertexConnect);
  for (const k of PIPELINE) g.publish(jsApi.streamInfo(n.streams[k]));
  for (const [key, use] of Object.entries(BUCKETS) as [keyof MeshNames["buckets"], BucketUse][]) {
    const bucket = n.buckets[key];
    if (use.own.includes(service)) g.kvOwn(bucket);
    else if (use.write?.includes(service)) g.kvRead(bucket).kvWrite(bucket);
    else if (use.everyoneReads === true) g.kvRead(bucket);
  }
  g.subscribe(`${n.inbox(service)}.>`, "$SRV.*", `$SRV.*.${service}`, `$SRV.*.${service}.*`);
  g.subscribe(n.config.validate(service), n.config.defaults(service));
  return g;
}

const SERVICE_GRANTS: Record<ServiceName, (g: Grants, n: MeshNames) => void> = {
  fetch(g, n) {
    g.subscribe(`${n.serviceRoot("fetch")}.>`);
    // One consumer per source, made live when a source is added; its filter is one source's tasks.
    g.consume("FETCH", "*", n.any.fetchTasks);
    // The shared consumer of older versions, removed once at start.
    g.publish(jsApi.consumerDelete(n.streams.FETCH, "fetch"));
    g.publish(n.any.fetched);
    // The record-less batch that closes a paginated incremental task goes straight to STORE: it
    // tells data where the cursor moves once every page is stored.
    g.publish(n.any.store);
    // Data-backed query arguments, refreshed when a clean record changes.
    g.publish(n.any.dataStore("readone", "clean"));
    g.subscribe(n.any.dataChanged);
  },
  invoke(g, n) {
    g.subscribe(`${n.serviceRoot("invoke")}.>`);
    g.consume("FETCHED", n.consumers.fetched, n.streamSubjects.FETCHED);
    g.publish(n.streamSubjects.FETCH, n.task.aggregateAll);
    // Cross-check of query sets against fetch's sources; `self` ledgers page through computations.
    g.publish(n.fetch.sources, n.any.computeGet);
  },
  aggregate(g, n) {
    g.subscribe(n.any.aggregateSave);
    g.consume("AGGREGATE", n.consumers.aggregate, n.task.aggregateAll);
    // A stateful type's partitions: each owner makes its consumer afresh (delete, create) per session.
    g.consume("AGGREGATE", "*", n.any.aggregatePartitions);
    g.publish(jsApi.consumerDelete(n.streams.AGGREGATE, "*"));
    // Routing to partitions, and the output to STORE.
    g.publish(n.any.aggregatePartitions, n.any.store);
  },
  data(g, n) {
    g.subscribe(`${n.serviceRoot("data")}.>`);
    g.consume("STORE", n.consumers.store, n.streamSubjects.STORE);
    g.publish(n.any.dataChanged);
  },
  compute(g, n) {
    g.subscribe(`${n.serviceRoot("compute")}.>`);
    g.publish(n.any.dataStore("readone", "clean"), n.any.dataKeys, n.any.dataSchema, n.any.dataSeries);
    // Cache invalidation: data's change events, and drops broadcast between compute replicas.
    g.subscribe(n.any.dataChanged, n.cacheInvalidate);
    g.publish(n.cacheInvalidate);
  },
  vertex(g, n) {
    g.subscribe(`${n.serviceRoot("vertex")}.>`);
    const c = n.config;
    g.subscribe(c.head, c.get, c.patch, c.history, c.explain);
    // The config chain's only writer (BUCKETS); proposed patches are checked by every service first.
    g.publish(n.any.configValidate, n.any.configDefaults);
    // Dashboard and monitoring: micro stats of every instance, its own node list, fetch quotas,
    // consumer lag of every stream, and samples stored as clean records of its monitoring type.
    g.publish("$SRV.>", n.vertex.nodes, n.fetch.sources, n.fetch.quota);
    for (const k of PIPELINE) g.publish(jsApi.consumerList(n.streams[k]), jsApi.consumerInfo(n.streams[k], "*"));
    g.publish(n.any.dataStore("create", "clean"), n.any.dataStore("delete", "clean"), n.any.dataSeries, n.any.dataKeys);
    // The dead-letter desk: scan (ordered consumer), show, delete, purge, and replay to the stream
    // a letter came from.
    const dlq = n.streams.DLQ;
    g.publish(
      jsApi.streamMsgGet(dlq),
      jsApi.streamMsgDelete(dlq),
      jsApi.streamPurge(dlq),
      jsApi.consumerCreateAny(dlq),
      jsApi.consumerDelete(dlq, "*"),
      jsApi.msgNext(dlq, "*"),
    );
    g.publish(n.streamSubjects.FETCH, n.streamSubjects.FETCHED, n.streamSubjects.AGGREGATE, n.streamSubjects.STORE);
  },
};

/** The least-privilege permissions of one service's NATS user in the mesh of `names`. */
export function servicePermissions(names: MeshNames, service: ServiceName): NatsPermissions {
  const g = base(names, service);
  SERVICE_GRANTS[service](g, names);
  return { publish: [...g.pub].sort(), subscribe: [...g.sub].sort() };
}

/** Every service's permissions in the mesh of `names`. */
export function meshPermissions(names: MeshNames): Record<ServiceName, NatsPermissions> {
  return Object.fromEntries(SERVICES.map((s) => [s, servicePermissions(names, s)])) as Record<
    ServiceName,
    NatsPermissions
  >;
}
