import { KvLeases, defineWorker, ensureDurable, groupMsgId } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import { MachinaError } from "@machina/wire";
import { compileAggregators } from "./config";
import type { AggregatorTable } from "./config";
import { createAggregateMetrics } from "./metrics";
import { PartitionManager, StateStore, checkLayout } from "./partition";
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

      let manager: PartitionManager | undefined;
      const stateful = table.stateful();
      if (stateful.length > 0) {
        const store = await StateStore.open(
          ctx.nc,
          ctx.js,
          ctx.jsm,
          ctx.kvm,
          names.buckets.aggregateState,
          ctx.config.nats.replicas,
        );
        for (const agg of stateful) await checkLayout(store, ctx.jsm, names, agg);
        const leases = await KvLeases.open({
          kvm: ctx.kvm,
          bucket: names.buckets.aggregateLeases,
          node: ctx.node.id,
          ttlMs: ctx.config.aggregate.leaseTtlMs,
          replicas: ctx.config.nats.replicas,
        });
        manager = new PartitionManager(
          stateful,
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
        await manager.start();
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
        // Live: any passthrough change, and new specs of the stateful types running (a window's
        // size, lateness, fields; a fill's max_age). A new, removed or re-laid-out stateful type
        // (kind, key, partitions) needs its state moved or created: that takes a restart.
        async applyConfig(set) {
          const next = compileAggregators(set.docs("aggregate/aggregators"), set.docs("data/types"));
          const was = layoutOf(table);
          const now = layoutOf(next);
          if (was !== now)
            throw new MachinaError(
              "UNAVAILABLE",
              `stateful aggregators changed their types, kinds, keys or partitions (${was || "none"} → ${now || "none"}); restart aggregate to take head ${set.head}`,
              { retryable: false },
            );
          await manager?.update(next.stateful());
          table = next;
          routing.use(current);
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

// What state a table's stateful types keep, and where: what a live change must leave alone.
function layoutOf(t: AggregatorTable): string {
  return t
    .stateful()
    .map((a) => `${a.type}:${a.kind}×${a.partitions} by ${a.key.join(",")}`)
    .sort()
    .join("; ");
}
