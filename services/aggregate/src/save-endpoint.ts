import { defineEndpoint } from "@machina/runtime";
import type { EndpointDef } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import type { AggregatorTable } from "./config/aggregator-table";
import type { Routing } from "./routing";

/**
 * `aggregate.save.<type>`: a batch typed in by hand (the `nats req` way of saving an EntitySet),
 * aggregated like a fetched one. It answers once every record is durably queued (on STORE for
 * passthrough, on the type's partitions for the stateful kinds); an undeclared type is 404 naming
 * the declared ones, and a record a stateful kind cannot take (no key, a mistyped field) is 400
 * naming it, with nothing queued.
 */
export function saveEndpoint(names: MeshNames, table: AggregatorTable, routing: Routing): EndpointDef {
  return defineEndpoint({
    name: "save",
    subject: names.any.aggregateSave,
    request: "RecordBatch",
    reply: "Ack",
    description: "Aggregate and store a batch of records of the type named by the last subject token",
    async handler(batch, { subject }) {
      const [type] = names.tail(subject, 1);
      table.forType(type);
      if (batch.type && batch.type !== type) {
        throw new MachinaError("BAD_REQUEST", `batch type "${batch.type}" does not match subject type "${type}"`, {
          retryable: false,
          details: { type: batch.type, subject: type },
        });
      }
      const id = batch.id || `manual-${type}-${Date.now()}`;
      const full = { ...batch, type, id, fetchedAt: batch.fetchedAt || Date.now(), source: batch.source || "manual" };
      const refused = routing.check([full]);
      if (refused.length > 0) {
        const e = refused[0].error;
        throw new MachinaError("BAD_REQUEST", `type ${type}: ${e.message}; nothing was queued`, {
          retryable: false,
          details: { ...e.details, refused: refused.length },
        });
      }
      await routing.send([full], id, undefined, async () => undefined);
      return { ok: true, id };
    },
  });
}
