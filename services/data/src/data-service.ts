import type { JsonObject } from "@machina/protos";
import { GroupCommit, addCounter, defineEndpoint, defineWorker, observeGauge } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import type { DataOp, MeshNames, StoreName } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { cassandraSslOptions } from "./cassandra-tls";
import type { CassandraTls } from "./cassandra-tls";
import { changeAnnouncer } from "./change-events";
import { CursorAdvance } from "./cursor-advance";
import { CleanLeases } from "./clean";
import { DataLayer, seriesBytes } from "./crud";
import { DIRTY_SHARDS, type PreparedDump } from "./store";
import { TYPE_KIND } from "./schema";
import type { TypeDef } from "./schema";
import { applyLiveTypes, checkLiveTypes, compileTypes } from "./live-types";

/** Data settings. */
export interface DataConfig {
  cassandra: {
    contactPoints: string;
    port: number;
    localDataCenter: string;
    keyspace: string;
    replication: string;
    username: string;
    password: string;
    tls: CassandraTls;
  };
  clean: { intervalMs: number; lookbackDays: number; maxAttempts: number };
  queue: { maxRows: number; maxInFlight: number; maxWaitMs: number };
}

/** `dc1:3,dc2:3` → `{ dc1: 3, dc2: 3 }`; BAD_REQUEST naming the setting when malformed. */
export function parseReplication(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9_-]+):(\d+)$/.exec(part);
    if (!m || Number(m[2]) < 1) {
      throw new MachinaError(
        "BAD_REQUEST",
        `cassandra.replication: expected "<datacenter>:<factor>[,…]" such as "datacenter1:1", got "${text}"`,
      );
    }
    out[m[1]] = Number(m[2]);
  }
  if (Object.keys(out).length === 0)
    throw new MachinaError("BAD_REQUEST", "cassandra.replication: name at least one datacenter, e.g. datacenter1:1");
  return out;
}

/** Store and type named by the last two tokens of a `data.<op>.<store>.<type>` subject; NOT_FOUND for an unknown store. */
export function storeOf(names: MeshNames, subject: string): { store: StoreName; type: string } {
  const [store, type] = names.tail(subject, 2);
  if (store !== "dump" && store !== "clean") {
    throw new MachinaError(
      "NOT_FOUND",
      `unknown store "${store}" in ${subject}; known stores: dump (raw answers), clean (merged records)`,
      {
        retryable: false,
        details: { store, known: ["dump", "clean"] },
      },
    );
  }
  return { store, type };
}

const asJson = (row: unknown) => row as JsonObject;

// STORE messages handled at once: enough that their rows form large groups of writes.
const STORE_LANES = 32;

/** The data service (layer 3): schema registry, dump and clean stores, CRUD and the clean job. */
export const dataService: ServiceSpec<DataConfig> = {
  name: "data",
  version: "0.1.0",
  description: "Stores raw (dump) and merged (clean) records in ScyllaDB/Cassandra",
  httpPort: 9304,
  components: {
    kinds: ["data/types"],
    schemas: [TYPE_KIND],
    validate(set) {
      compileTypes(set);
    },
  },
  schema: {
    cassandra: {
      contactPoints: { doc: "Comma-separated hosts of the cluster.", format: String, default: "127.0.0.1" },
      port: { doc: "CQL native port.", format: "port", default: 9042 },
      localDataCenter: { doc: "Datacenter of this replica.", format: String, default: "datacenter1" },
      keyspace: { doc: "Keyspace holding every Machina table.", format: String, default: "machina" },
      replication: {
        doc: "NetworkTopologyStrategy factors, `<dc>:<n>[,…]`.",
        format: String,
        default: "datacenter1:1",
      },
      username: { doc: "CQL user, when the cluster requires auth.", format: String, default: "" },
      password: { doc: "CQL password (env only).", format: String, default: "", sensitive: true },
      tls: {
        enabled: {
          doc: "Connect with TLS; setting any other cassandra.tls key turns it on too. false (and no key set): plain CQL.",
          format: Boolean,
          default: false,
        },
        ca: {
          doc: 'PEM file of the CA(s) the nodes\' certificates must chain to; "" trusts the system CAs.',
          format: String,
          default: "",
        },
        cert: {
          doc: 'PEM client certificate, for clusters that verify clients; "" none.',
          format: String,
          default: "",
        },
        key: { doc: 'PEM private key of cassandra.tls.cert; "" none.', format: String, default: "" },
        serverName: {
          doc: "Name the nodes' certificates must carry (and SNI); \"\" is each contact point's host.",
          format: String,
          default: "",
        },
        verify: {
          doc: "Verify the nodes' certificates (the driver alone would not); false accepts any (testing only).",
          format: Boolean,
          default: true,
        },
      },
    },
    clean: {
      intervalMs: {
        doc: "How often the clean job merges dirty entities, ms, at most 86400000 (one day); 0 disables it in this replica.",
        format: "nat",
        default: 10_000,
      },
      lookbackDays: {
        doc: "Day buckets (at least 1) a clean read walks back to find an entity's newest row.",
        format: "nat",
        default: 7,
      },
      maxAttempts: {
        doc: "Failed merges of one entity window (errors a retry cannot fix) before it is parked in data.clean.failed.<type>.",
        format: "nat",
        default: 5,
      },
    },
    queue: {
      maxRows: {
        doc: "Row writes the operation queue holds (queued or being written) before new writes wait for room.",
        format: "nat",
        default: 20_000,
      },
      maxInFlight: {
        doc: "Single-partition batches the operation queue writes at once.",
        format: "nat",
        default: 32,
      },
      maxWaitMs: {
        doc: "How long a write waits for room in a full queue before it fails as retryable (a durable message then comes back later), ms.",
        format: "nat",
        default: 10_000,
      },
    },
  },
  async setup(ctx: ServiceContext<DataConfig>) {
    const { names, log } = ctx;
    const c = ctx.config.cassandra;
    // setInterval caps at ~24.8 days and past it fires back to back; a day is the useful limit.
    if (ctx.config.clean.intervalMs > 86_400_000) {
      throw new MachinaError(
        "BAD_REQUEST",
        `clean.intervalMs: ${ctx.config.clean.intervalMs} is more than one day (86400000 ms); the clean job must run at least daily`,
        { retryable: false },
      );
    }
    for (const k of ["maxRows", "maxInFlight"] as const) {
      if (ctx.config.queue[k] < 1)
        throw new MachinaError("BAD_REQUEST", `queue.${k}: must be at least 1`, { retryable: false });
    }
    if (ctx.config.clean.maxAttempts < 1) {
      throw new MachinaError("BAD_REQUEST", "clean.maxAttempts: must be at least 1", { retryable: false });
    }
    const types = compileTypes(ctx.components);
    const data = await DataLayer.open({
      contactPoints: c.contactPoints.split(",").map((h) => `${h.trim()}:${c.port}`),
      localDataCenter: c.localDataCenter,
      keyspace: c.keyspace,
      replication: parseReplication(c.replication),
      types,
      lookbackDays: ctx.config.clean.lookbackDays,
      credentials: c.username ? { username: c.username, password: c.password } : undefined,
      sslOptions: cassandraSslOptions(c.tls),
      queue: ctx.config.queue,
    });
    log.info({ types: types.map((t) => t.name), keyspace: c.keyspace }, "schema ready");
    const announcer = (served: readonly TypeDef[]) =>
      changeAnnouncer((subject, bytes) => ctx.nc.publish(subject, bytes), names, served);
    // Replaced when a live head changes the types (as are the clean units below).
    let announce = announcer(types);
    for (const type of data.schema.legacyDump) {
      log.warn(
        { type },
        "dump table predates seq: several records of one entity in one answer share one row there; " +
          "move the type to a new name (e.g. <name>_v2) to keep every record",
      );
    }
    observeGauge(
      ctx.metrics,
      "machina_data_queue_rows",
      "Row writes in this replica's operation queue (queued or being written); reads through this replica see them.",
      () => data.queueStats().rows,
    );
    observeGauge(
      ctx.metrics,
      "machina_data_queue_waiting",
      "Writes waiting for room in a full operation queue: the database is slower than the writes arriving.",
      () => data.queueStats().waiting,
    );
    const parkedCount = addCounter(
      ctx.metrics,
      "machina_clean_failed_total",
      "Entity windows the clean job parked in data.clean.failed.<type> after repeated merge failures, by type.",
      ["type"],
    );

    const undeclared = addCounter(
      ctx.metrics,
      "machina_data_undeclared_fields_total",
      "Record fields their type does not declare (not stored), by type and field: an upstream's schema drift.",
      ["type", "field"],
    );
    // Dumps of messages handled together are written as one group, rows grouped by partition.
    const dumpWrites = new GroupCommit<PreparedDump>({ flush: (dumps) => data.storeDumps(dumps) });
    // Cursors of incremental queries move only once an answer's records are stored (cursor-advance.ts).
    const cursors = await CursorAdvance.open(ctx.kvm, {
      cursors: names.buckets.fetchCursors,
      parts: names.buckets.fetchCursorParts,
      replicas: ctx.config.nats.replicas,
      onMalformed: (problem, batch) => log.warn({ batch, problem }, "cursor mark ignored: its answer moves no cursor"),
    });

    // One replica at a time cleans a (type, shard); replicas share the shards through leases.
    const unitsOf = (served: readonly TypeDef[]) =>
      served.flatMap((t) => Array.from({ length: DIRTY_SHARDS }, (_, i) => `${t.name}.${i}`));
    let units = unitsOf(types);
    const leases =
      ctx.config.clean.intervalMs > 0
        ? await CleanLeases.open(
            ctx.kvm,
            names.buckets.cleanLeases,
            ctx.node.id,
            Math.max(15_000, 3 * ctx.config.clean.intervalMs),
            ctx.config.nats.replicas,
          )
        : undefined;
    let oldestDirty: number | null = null;
    observeGauge(
      ctx.metrics,
      "machina_clean_lag_seconds",
      "Age of the oldest dirty window this replica's clean job saw in its last run (0 when none): how far merging lags.",
      () => (oldestDirty === null ? 0 : Math.max(0, (Date.now() - oldestDirty) / 1000)),
    );
    let cleaning = false;
    const cleanOnce = async (l: CleanLeases) => {
      const held = await l.claim(units);
      const r = await data.runClean({
        owns: (type, shard) => held.has(`${type}.${shard}`),
        maxAttempts: ctx.config.clean.maxAttempts,
        onParked: (type) => parkedCount.inc({ type }),
        onMerged: (m) => announce("clean", m.type, [m.key], "merged"),
      });
      oldestDirty = r.oldestWindowStart;
      if (r.entities > 0)
        log.info({ entities: r.entities, rows: r.rows, shards: held.size }, "clean job merged dirty entities");
      for (const f of r.errors.slice(0, 5))
        log.warn(
          { failure: f },
          f.parked
            ? "clean job parked an entity window after repeated failures (data.clean.failed)"
            : "clean job could not merge an entity window; it is retried next run",
        );
    };
    const cleanTimer =
      leases !== undefined
        ? setInterval(() => {
            if (cleaning) return;
            cleaning = true;
            cleanOnce(leases)
              .catch((err: unknown) => log.error({ err }, "clean job failed; dirty marks stay for the next run"))
              .finally(() => (cleaning = false));
          }, ctx.config.clean.intervalMs)
        : undefined;

    const at = (op: DataOp) => ({ name: op, subject: names.any.data(op) });

    return {
      endpoints: [
        defineEndpoint({
          ...at("create"),
          request: "CreateRequest",
          reply: "WriteReply",
          description: "Upsert records (at most 1000) into data.create.<dump|clean>.<type>",
          async handler(req, { subject }) {
            const { store, type } = storeOf(names, subject);
            const res = await data.create(store, type, req.records);
            announce(store, type, req.records, "created");
            return { affected: res.written };
          },
        }),
        defineEndpoint({
          ...at("read"),
          request: "ReadRequest",
          reply: "RecordsReply",
          description:
            "Records of one entity (criteria = its full key) or of each of criteriaList, newest first, offset and limit per entity",
          async handler(req, { subject }) {
            const { store, type } = storeOf(names, subject);
            const page = { offset: req.offset, limit: req.limit || undefined };
            const form = data.formOf(
              type,
              { names: ["criteria"], given: req.criteria !== null },
              { name: "criteriaList", items: req.criteriaList },
            );
            const rows =
              form === "bulk"
                ? await data.readBulk(store, type, req.criteriaList, page)
                : await data.read(store, type, { criteria: req.criteria, ...page });
            return { records: rows.map(asJson) };
          },
        }),
        defineEndpoint({
          ...at("readone"),
          request: "KeyRequest",
          reply: "RecordReply",
          description: "The newest record of one entity (key), or of each of keys with the ones missing",
          async handler(req, { subject }) {
            const { store, type } = storeOf(names, subject);
            const form = data.formOf(
              type,
              { names: ["key"], given: req.key !== null },
              { name: "keys", items: req.keys },
            );
            if (form === "single") return { record: asJson(await data.readOne(store, type, req.key)) };
            const res = await data.readOneBulk(store, type, req.keys);
            return { records: res.records.map(asJson), missing: res.missing.map(asJson) };
          },
        }),
        defineEndpoint({
          ...at("update"),
          request: "UpdateRequest",
          reply: "RecordReply",
          description: "Alter fields of the newest clean record of one entity, or of each of items",
          async handler(req, { subject }) {
            const { store, type } = storeOf(names, subject);
            const form = data.formOf(
              type,
              {
                names: ["key", "alterations", "clear"],
                given: req.key !== null || req.alterations !== null || req.clear.length > 0,
              },
              { name: "items", items: req.items },
            );
            if (form === "single") {
              const record = await data.update(store, type, req.key, req.alterations, req.clear);
              announce(store, type, [record], "updated");
              return { record: asJson(record) };
            }
            const res = await data.updateBulk(store, type, req.items);
            announce(store, type, res.records, "updated");
            return { records: res.records.map(asJson), missing: res.missing.map(asJson) };
          },
        }),
        defineEndpoint({
          ...at("delete"),
          request: "KeyRequest",
          reply: "WriteReply",
          description: "Delete every record of one entity (key), or of each of keys, from a store",
          async handler(req, { subject }) {
            const { store, type } = storeOf(names, subject);
            const form = data.formOf(
              type,
              { names: ["key"], given: req.key !== null },
              { name: "keys", items: req.keys },
            );
            const res =
              form === "single"
                ? await data.delete(store, type, req.key)
                : await data.deleteBulk(store, type, req.keys);
            if (res.deleted > 0) announce(store, type, form === "single" ? [req.key] : req.keys, "deleted");
            return { affected: res.deleted };
          },
        }),
        defineEndpoint({
          ...at("count"),
          request: "CountRequest",
          reply: "CountReply",
          description: "Number of records of one entity, or per criteria of criteriaList with their sum",
          async handler(req, { subject }) {
            const { store, type } = storeOf(names, subject);
            const form = data.formOf(
              type,
              { names: ["criteria"], given: req.criteria !== null },
              { name: "criteriaList", items: req.criteriaList },
            );
            if (form === "single") return { count: await data.count(store, type, req.criteria) };
            return await data.countBulk(store, type, req.criteriaList);
          },
        }),
        defineEndpoint({
          name: "schema",
          subject: names.any.dataSchema,
          request: "Empty",
          reply: "SchemaReply",
          description: "The registered schema of the type named by the last subject token, with every version",
          async handler(_req, { subject }) {
            const [type] = names.tail(subject, 1);
            const history = await data.schemaHistory(type);
            return {
              type,
              version: history[0]?.version ?? 0,
              history: history.map((h) => ({ ...h, definition: (h.definition ?? {}) as JsonObject })),
            };
          },
        }),
        defineEndpoint({
          name: "drift",
          subject: names.any.dataDrift,
          request: "Empty",
          reply: "DriftReply",
          description: "Fields records of the type carry that it does not declare: first and last seen, JSON type",
          async handler(_req, { subject }) {
            const [type] = names.tail(subject, 1);
            return { fields: await data.drift(type) };
          },
        }),
        defineEndpoint({
          name: "clean-failed",
          subject: names.any.dataClean("failed"),
          request: "KeysRequest",
          reply: "CleanFailedReply",
          description: "Entity windows the clean job parked after repeated failures, with their last error; paged",
          async handler(req, { subject }) {
            const [type] = names.tail(subject, 1);
            const page = await data.cleanFailed(type, { limit: req.limit || undefined, page: req.page });
            return { failed: page.failed.map((f) => ({ ...f, key: f.key as JsonObject })), next: page.next };
          },
        }),
        defineEndpoint({
          name: "clean-retry",
          subject: names.any.dataClean("retry"),
          request: "CleanRetryRequest",
          reply: "WriteReply",
          description: "Puts parked windows (of the keys given, or all) back to be merged by the next clean run",
          async handler(req, { subject }) {
            const [type] = names.tail(subject, 1);
            return { affected: await data.retryCleanFailed(type, req.keys) };
          },
        }),
        defineEndpoint({
          name: "keys",
          subject: names.any.dataKeys,
          request: "KeysRequest",
          reply: "KeysReply",
          description: "Pages through every entity key of the type named by the last subject token",
          async handler(req, { subject }) {
            const [type] = names.tail(subject, 1);
            const page = await data.keys(type, { limit: req.limit || undefined, page: req.page });
            return { keys: page.keys as JsonObject[], next: page.next };
          },
        }),
        defineEndpoint({
          name: "series",
          subject: names.any.dataSeries,
          request: "SeriesRequest",
          reply: "SeriesReply",
          description:
            "One numeric field of one entity over [from, to) as little-endian float64 columns (times, values), oldest first; paged",
          async handler(req, { subject }) {
            const [type] = names.tail(subject, 1);
            const page = await data.series(type, {
              key: req.key,
              field: req.field,
              from: req.from,
              to: req.to,
              store: req.store,
              limit: req.limit,
              page: req.page,
            });
            return {
              times: seriesBytes(page.times),
              values: seriesBytes(page.values),
              count: page.times.length,
              next: page.next,
            };
          },
        }),
      ],
      workers: [
        defineWorker({
          name: "store",
          stream: "STORE",
          durable: names.consumers.store,
          filter: names.streamSubjects.STORE,
          message: "RecordBatches",
          concurrency: STORE_LANES,
          async handle(msg, { deadLetter }) {
            // Checked before it joins a group, so a bad record fails alone: it is parked on the
            // dead-letter stream by itself (replayable as a batch of one) and the rest is stored.
            // A batch of no type or an unknown one throws first, failing the message whole before any part is parked.
            const prepared = msg.batches.map((batch) => {
              if (!batch.type) throw new MachinaError("BAD_REQUEST", "record batch has no type");
              return data.prepareDumpRows(
                batch.type,
                batch.records.map((record, i) => ({
                  fetchedAt: batch.fetchedAt || Date.now(),
                  source: batch.source || "unknown",
                  query: batch.query || "",
                  taskId: batch.taskId || batch.id,
                  seq: (batch.firstSeq || 0) + i,
                  record,
                })),
              );
            });
            for (const { prepared: p } of prepared)
              for (const [field, u] of p.undeclared) undeclared.inc({ type: p.type, field }, u.count);
            for (const [b, { refused }] of prepared.entries()) {
              for (const r of refused) {
                const batch = msg.batches[b];
                // Its own position goes with it, so a replay lands on the row it would have had.
                const alone = {
                  ...batch,
                  records: [batch.records[r.index]],
                  firstSeq: (batch.firstSeq || 0) + r.index,
                };
                await deadLetter(`b${b}r${r.index}`, "RecordBatches", { batches: [alone] }, r.error);
              }
            }
            await Promise.all(prepared.map((p) => dumpWrites.add(p.prepared)));
            // Only now, with the rows stored, may incremental answers move their cursors.
            await cursors.stored(
              msg.batches,
              prepared.map((p) => p.refused.map((r) => r.index)),
            );
          },
        }),
      ],
      // Live: new types and new fields get their tables and columns as at start; a change that
      // cannot apply in place is refused before it is stored (checkConfig).
      checkConfig: (set) => checkLiveTypes(data, set),
      async applyConfig(set) {
        const served = await applyLiveTypes(data, set, log);
        announce = announcer(served);
        units = unitsOf(served);
      },
      async onStop() {
        if (cleanTimer) clearInterval(cleanTimer);
        await leases?.release().catch(() => undefined);
        await data.close();
      },
    };
  },
};
