import { loadComponents } from "@machina/config";
import { defineEndpoint, defineWorker, recordBatchesPublisher } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import type { RecordBatch } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { compileAggregators } from "./aggregators";

// AGGREGATE messages handled at once: enough that their output forms large STORE messages.
const AGGREGATE_LANES = 32;

/** The aggregate service (layer 2): one aggregator per entity type between FETCHED and STORE. */
export const aggregateService: ServiceSpec<Record<string, never>> = {
  name: "aggregate",
  version: "0.1.0",
  description: "Aggregates records per entity type before they are stored",
  httpPort: 9303,
  async setup(ctx: ServiceContext<Record<string, never>>) {
    const table = compileAggregators(loadComponents("aggregate/aggregators", ctx.configSource));
    const { names } = ctx;

    // Output batches of one type from messages handled together leave as one STORE message.
    const toStore = recordBatchesPublisher(ctx.client, ctx.node.id);
    const aggregatorOf = (batch: RecordBatch) => {
      if (!batch.type)
        throw new MachinaError("BAD_REQUEST", "record batch has no type; set `type` to the entity type of its records");
      return table.forType(batch.type);
    };
    const forward = async (batch: RecordBatch, timing?: string): Promise<number> => {
      const out = await aggregatorOf(batch)(batch);
      await Promise.all(out.map((b) => toStore.publish(names.task.store(b.type), b, timing)));
      return out.length;
    };

    return {
      endpoints: [
        defineEndpoint({
          name: "save",
          subject: names.any.aggregateSave,
          request: "RecordBatch",
          reply: "Ack",
          description: "Aggregate and store a batch of records of the type named by the last subject token",
          async handler(batch, { subject }) {
            const [type] = names.tail(subject, 1);
            if (batch.type && batch.type !== type) {
              throw new MachinaError("BAD_REQUEST", `batch type "${batch.type}" does not match subject type "${type}"`);
            }
            const id = batch.id || `manual-${type}-${Date.now()}`;
            await forward({
              ...batch,
              type,
              id,
              fetchedAt: batch.fetchedAt || Date.now(),
              source: batch.source || "manual",
            });
            return { ok: true, id };
          },
        }),
      ],
      workers: [
        defineWorker({
          name: "aggregate",
          stream: "AGGREGATE",
          durable: names.consumers.aggregate,
          filter: names.streamSubjects.AGGREGATE,
          message: "RecordBatches",
          concurrency: AGGREGATE_LANES,
          async handle(msg, { timing }) {
            const stamp = timing();
            // Every batch is checked before any is forwarded, so a bad one fails its message whole.
            for (const b of msg.batches) aggregatorOf(b);
            await Promise.all(msg.batches.map((b) => forward(b, stamp)));
          },
        }),
      ],
    };
  },
};
