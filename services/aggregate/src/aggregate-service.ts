import { loadComponents } from "@machina/config";
import { defineEndpoint, defineWorker, publishDurable } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import type { RecordBatch } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { compileAggregators } from "./aggregators";

/** The aggregate service (layer 2): one aggregator per entity type between FETCHED and STORE. */
export const aggregateService: ServiceSpec<Record<string, never>> = {
  name: "aggregate",
  version: "0.1.0",
  description: "Aggregates records per entity type before they are stored",
  httpPort: 9303,
  async setup(ctx: ServiceContext<Record<string, never>>) {
    const table = compileAggregators(loadComponents("aggregate/aggregators", ctx.configSource));
    const { names, js } = ctx;

    const forward = async (batch: RecordBatch, timing?: string): Promise<number> => {
      if (!batch.type)
        throw new MachinaError("BAD_REQUEST", "record batch has no type; set `type` to the entity type of its records");
      const out = await table.forType(batch.type)(batch);
      for (const b of out) {
        await publishDurable(js, names.task.store(b.type), "RecordBatch", b, {
          msgID: b.id,
          timing,
          sender: ctx.node.id,
        });
      }
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
          message: "RecordBatch",
          async handle(batch, { timing }) {
            await forward(batch, timing());
          },
        }),
      ],
    };
  },
};
