import { LEGACY_DIRTY_TABLE } from "../schema";
import { executeUnloggedBatch, pages, tableRef, type DataContext, type DirtyMark } from "../store";

/**
 * The marks left in the dirty table of before slots, for one (type, shard), with the time (µs)
 * taken before they were read; empty once drained. Only a keyspace written by an older
 * version has that table, and nothing writes to it any more.
 */
export async function readLegacyMarks(
  ctx: DataContext,
  type: string,
  shard: number,
): Promise<{ marks: DirtyMark[]; readMicros: bigint }> {
  const readMicros = BigInt(ctx.clock()) * 1000n;
  const select = `SELECT key, window_start FROM ${tableRef(ctx, LEGACY_DIRTY_TABLE)} WHERE type = ? AND shard = ?`;
  const marks: DirtyMark[] = [];
  for await (const page of pages(ctx.client, select, [type, shard], `reading legacy dirty marks of ${type}`)) {
    for (const r of page) {
      marks.push({ type, key: r.get("key") as string, windowStart: (r.get("window_start") as Date).getTime() });
    }
  }
  return { marks, readMicros };
}

/** Deletes merged legacy marks, unless an older writer re-marked them after the read. */
export async function clearLegacyMarks(
  ctx: DataContext,
  shard: number,
  marks: readonly DirtyMark[],
  readMicros: bigint,
): Promise<void> {
  if (marks.length === 0) return;
  const del =
    `DELETE FROM ${tableRef(ctx, LEGACY_DIRTY_TABLE)} USING TIMESTAMP ? ` +
    `WHERE type = ? AND shard = ? AND key = ? AND window_start = ?`;
  const statements = marks.map((m) => ({
    query: del,
    params: [readMicros, m.type, shard, m.key, new Date(m.windowStart)],
  }));
  for (let i = 0; i < statements.length; i += 100) {
    await executeUnloggedBatch(ctx.client, statements.slice(i, i + 100), "clearing legacy dirty marks");
  }
}
