import type { RecordBatch } from "@machina/protos";
import { publishDurable, recordBatchesPublisher } from "@machina/runtime";
import type { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import type { AggregatorTable, StatefulAggregator } from "./config/aggregator-table";
import type { StatefulKind } from "./kinds/kind";
import { makeKind } from "./kinds/make-kind";
import { routeBatch } from "./partition/router";
import type { Refused } from "./partition/router";

/** A batch's records that were refused, with the batch's index in its message. */
export interface RefusedIn extends Refused {
  batch: number;
}

/**
 * Where batches go from aggregate's front door (the AGGREGATE worker and `aggregate.save`): a
 * passthrough batch straight to STORE, grouped with others of its type; a stateful one split by
 * key into its partitions, the parts of one incoming message for one partition in one message.
 * A batch that reaches aggregate twice in messages of different ids (an upstream redelivery,
 * regrouped) is queued twice, and skipped by the partition's owner (see RecentBatches).
 */
export class Routing {
  private readonly toStore;
  // Kinds here only check records (check is stateless); state lives with the partition owners.
  private readonly checkers = new Map<string, StatefulKind<unknown>>();

  constructor(
    private table: AggregatorTable,
    private readonly client: MeshClient,
    private readonly names: MeshNames,
    private readonly sender: string,
  ) {
    this.toStore = recordBatchesPublisher(client, sender);
    this.use(table);
  }

  /** Routes by `table` from now on (a config head changed the aggregators). */
  use(table: AggregatorTable): void {
    this.table = table;
    this.checkers.clear();
    for (const agg of table.stateful()) this.checkers.set(agg.type, makeKind(agg));
  }

  /** The refused records of `batches` (a stateful type's records without a key or with a mistyped field); nothing is sent. */
  check(batches: readonly RecordBatch[]): RefusedIn[] {
    const out: RefusedIn[] = [];
    for (const [b, batch] of batches.entries()) {
      const agg = this.table.forType(batch.type);
      if (agg.kind === "passthrough") continue;
      for (const r of routeBatch(batch, agg, this.checkers.get(agg.type)!).refused) out.push({ ...r, batch: b });
    }
    return out;
  }

  /**
   * Queues `batches` (each of a declared type: check with forType first); resolves once every
   * accepted record is stored on its stream. Refused records are handed to `refuse` (which must
   * store them somewhere, e.g. the dead-letter stream) before it resolves.
   */
  async send(
    batches: readonly RecordBatch[],
    msgId: string,
    timing: string | undefined,
    refuse: (r: RefusedIn) => Promise<void>,
  ): Promise<void> {
    const sends: Promise<unknown>[] = [];
    const byPartition = new Map<string, { agg: StatefulAggregator; partition: number; batches: RecordBatch[] }>();
    for (const [b, batch] of batches.entries()) {
      const agg = this.table.forType(batch.type);
      if (agg.kind === "passthrough") {
        sends.push(this.toStore.publish(this.names.task.store(batch.type), batch, timing));
        continue;
      }
      const routed = routeBatch(batch, agg, this.checkers.get(agg.type)!);
      for (const r of routed.refused) sends.push(refuse({ ...r, batch: b }));
      for (const part of routed.parts) {
        const k = `${agg.type}#p${part.partition}`;
        const group = byPartition.get(k);
        if (group === undefined) byPartition.set(k, { agg, partition: part.partition, batches: [part.batch] });
        else group.batches.push(part.batch);
      }
    }
    // One message per partition for what one message brought: a redelivery of it sends the same
    // messages under the same ids, which the stream drops.
    for (const [k, g] of byPartition)
      sends.push(
        publishDurable(
          this.client,
          this.names.task.aggregatePartition(g.agg.type, g.partition),
          "RecordBatches",
          { batches: g.batches },
          { msgID: `${msgId}#${k}`, timing, sender: this.sender },
        ),
      );
    await Promise.all(sends);
  }
}
