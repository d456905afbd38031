import { KvLeases, defineWorker, ensureDurable, groupMsgId } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import { MachinaError } from "@machina/wire";
import { aggregatorKind, compileAggregators } from "./config";
import type { AggregatorTable, StatefulAggregator } from "./config";
import { createAggregateMetrics } from "./metrics";
import { PartitionManager, StateStore, checkLayout, checkRetire } from "./partition";
import { Routing } from "./routing";
import { saveEndpoint } from "./save-endpoint";

// AGGREGATE messages handled at once: enough that their output forms large STORE messages.
const AGGREGATE_LANES = 32;

/** Aggregate settings. */
export interface AggregateConfig {
  aggregate: { leaseTtlMs: number };
}

/** What tests may replace. */
export interface AggregateOptions {
  /** Wall clock, epoch ms: fires merge_partials timeouts while a partition is idle. Default Date.now. */
  clock?: () => number;
}

/** The aggregate service (layer 2), with an injectable clock. */
export function createAggregateService(opts: AggregateOptions = {}): ServiceSpec<AggregateConfig> {
  const clock = opts.clock ?? Date.now;
  return {
    name: "aggregate",
    version: "0.2.0",
    description: "Aggregates records per entity type before they are stored",
    httpPort: 9303,
    // Aggregators compile against the data types they feed, as at setup.
    components: {
      kinds: ["aggregate/aggregators"],
      schemas: [aggregatorKind],
      reads: ["data/types"],
      validate(set) {
        compileAggregators(set.docs("aggregate/aggregators"), set.docs("data/types"));
      },
    },
    schema: {
      aggregate: {
        leaseTtlMs: {
          doc: "Partition leases expire this long after their last renewal (renewed every quarter of it): a crashed replica's partitions move after at most this, plus a quarter.",
          format: "nat",
          default: 10_000,
        },
      },
    },
    async setup(ctx: ServiceContext<AggregateConfig>) {
      const { names } = ctx;
      // The aggregators running now; a config head that changes them swaps in a new table (applyConfig).
      let table = compileAggregators(ctx.components.docs("aggregate/aggregators"), ctx.components.docs("data/types"));
      const current: AggregatorTable = {
        forType: (type) => table.forType(type),
        kinds: () => table.kinds(),
        stateful: () => table.stateful(),
      };
      // Partition subjects have one token more than a type's own; the shared consumer must stop
      // at the type's (it captured both before partitions existed) or no partition consumer can exist.
      await ensureDurable(ctx.jsm, names.streams.AGGREGATE, names.consumers.aggregate, names.task.aggregateAll);
      const metrics = createAggregateMetrics(ctx.metrics);
      const routing = new Routing(current, ctx.client, names, ctx.node.id);

      // Opened with the first stateful type, at start or when a patch adds one.
      let manager: PartitionManager | undefined;
      let store: StateStore | undefined;
      const stateful = table.stateful();
      const openManager = async (types: readonly StatefulAggregator[]): Promise<PartitionManager> => {
        store = await StateStore.open(
          ctx.nc,
          ctx.js,
          ctx.jsm,
          ctx.kvm,
          names.buckets.aggregateState,
          ctx.config.nats.replicas,
        );
        for (const agg of types) await checkLayout(store, ctx.jsm, names, agg);
        const leases = await KvLeases.open({
          kvm: ctx.kvm,
          bucket: names.buckets.aggregateLeases,
          node: ctx.node.id,
          ttlMs: ctx.config.aggregate.leaseTtlMs,
          replicas: ctx.config.nats.replicas,
        });
        const m = new PartitionManager(
          types,
          leases,
          {
            js: ctx.js,
            jsm: ctx.jsm,
            client: ctx.client,
            names,
            log: ctx.log,
            store,
            metrics,
            sender: ctx.node.id,
            clock,
          },
          ctx.node,
          ctx.log,
        );
        await m.start();
        return m;
      };
      if (stateful.length > 0) {
        manager = await openManager(stateful);
        ctx.log.info(
          { types: stateful.map((a) => `${a.type}:${a.kind}×${a.partitions}`), owned: manager.owned() },
          "stateful aggregators ready",
        );
      }

      return {
        endpoints: [saveEndpoint(names, current, routing)],
        workers: [
          defineWorker({
            name: "aggregate",
            stream: "AGGREGATE",
            durable: names.consumers.aggregate,
            filter: names.task.aggregateAll,
            message: "RecordBatches",
            concurrency: AGGREGATE_LANES,
            async handle(msg, { timing, deadLetter, headers }) {
              const stamp = timing();
              // Every batch's type is checked before any is sent, so an unknown one fails its message whole.
              for (const b of msg.batches) {
                if (!b.type)
                  throw new MachinaError(
                    "BAD_REQUEST",
                    "record batch has no type; set `type` to the entity type of its records",
                  );
                table.forType(b.type);
              }
              const msgId = headers?.get("Nats-Msg-Id") || groupMsgId(msg.batches.map((b) => b.id));
              await routing.send(msg.batches, msgId, stamp, (r) =>
                deadLetter(`b${r.batch}r${r.index}`, "RecordBatches", { batches: [r.alone] }, r.error),
              );
            },
          }),
        ],
        // Live: any passthrough change and new specs of the stateful types (a window's size,
        // lateness, fields; a fill's max_age); a new stateful type; and, under the rules start-up
        // applies, a changed kind, key or partitions, or a type that stops being stateful: only
        // while it keeps no state and no queued records, since those would be misplaced or left
        // for no one. Otherwise CONFLICT, and aggregate stays on its old head (drift).
        async applyConfig(set) {
          const next = compileAggregators(set.docs("aggregate/aggregators"), set.docs("data/types"));
          const was = new Map(table.stateful().map((a) => [a.type, a]));
          const now = new Map(next.stateful().map((a) => [a.type, a]));
          const retired = [...was.values()].filter((a) => !now.has(a.type));
          const laidOut = [...now.values()].filter((a) => layoutOf(was.get(a.type)) !== layoutOf(a));
          if (store !== undefined) {
            for (const a of retired) await checkRetire(store, ctx.jsm, names, a.type, a.origin);
            for (const a of laidOut) await checkLayout(store, ctx.jsm, names, a);
          }
          if (manager !== undefined) await manager.update(next.stateful());
          else if (now.size > 0) manager = await openManager(next.stateful());
          table = next;
          routing.use(current);
          if (laidOut.length > 0 || retired.length > 0)
            ctx.log.info(
              {
                stateful: laidOut.map((a) => `${a.type}:${layoutOf(a)}`),
                retired: retired.map((a) => a.type),
              },
              "stateful types changed",
            );
          // Records another replica on the old head routed meanwhile would wait for no one: say so.
          if (store !== undefined)
            for (const a of retired)
              await checkRetire(store, ctx.jsm, names, a.type, a.origin).catch((err: unknown) =>
                ctx.log.warn(
                  { err, type: a.type },
                  "records reached a type's partitions after it stopped being stateful",
                ),
              );
          ctx.log.info({ types: [...next.kinds().keys()].sort(), head: set.head }, "aggregators reloaded");
        },
        async onStop() {
          await manager?.stop();
        },
      };
    },
  };
}

/** The aggregate service (layer 2): one aggregator per entity type between FETCHED and STORE. */
export const aggregateService: ServiceSpec<AggregateConfig> = createAggregateService();

// Where a stateful type keeps its state (kind, partitions, key); "" for a type that is not stateful.
function layoutOf(a: StatefulAggregator | undefined): string {
  return a === undefined ? "" : `${a.kind}×${a.partitions} by ${a.key.join(",")}`;
}
