import type { RecordBatch } from "@machina/protos";
import type { MachinaError } from "@machina/wire";
import type { StatefulAggregator } from "../config/aggregator-table";
import type { StatefulKind } from "../kinds/kind";
import { partitionOf, recordKey } from "./partition-key";

/** A record of a batch that cannot be aggregated, and the batch of it alone (for its dead letter). */
export interface Refused {
  index: number;
  error: MachinaError;
  alone: RecordBatch;
}

/** One batch split by partition. */
export interface Routed {
  /** Sub-batches by partition, each a run of consecutive records that keeps its rows (first_seq). */
  parts: { partition: number; batch: RecordBatch }[];
  refused: Refused[];
}

/**
 * Splits a batch of a stateful type by the partition of each record's key. Consecutive records
 * of one partition stay one sub-batch; a sub-batch holding the whole batch keeps its id, others
 * are `<id>@<index of their first record>`, so the split of a batch is the same every time.
 */
export function routeBatch(batch: RecordBatch, agg: StatefulAggregator, kind: StatefulKind<unknown>): Routed {
  const { records, ...meta } = batch;
  const parts: Routed["parts"] = [];
  const refused: Refused[] = [];
  let run: { partition: number; start: number; records: RecordBatch["records"] } | undefined;
  const close = () => {
    if (run === undefined) return;
    const whole = run.start === 0 && run.records.length === records.length;
    parts.push({
      partition: run.partition,
      batch: {
        ...meta,
        id: whole ? batch.id : `${batch.id}@${run.start}`,
        firstSeq: (batch.firstSeq || 0) + run.start,
        records: run.records,
      },
    });
    run = undefined;
  };
  for (const [i, record] of records.entries()) {
    const key = recordKey(record, agg.key, i);
    const problem = "keyId" in key ? kind.check(record, meta, i) : key;
    if (problem !== null) {
      close();
      // Its own id: replayed from the dead-letter stream, it must not pass for a copy of its batch.
      const alone = { ...meta, id: `${batch.id}#r${i}`, records: [record], firstSeq: (batch.firstSeq || 0) + i };
      refused.push({ index: i, error: problem, alone });
      continue;
    }
    const p = partitionOf((key as { hash: number }).hash, agg.partitions);
    if (run !== undefined && run.partition !== p) close();
    run ??= { partition: p, start: i, records: [] };
    run.records.push(record);
  }
  close();
  return { parts, refused };
}
