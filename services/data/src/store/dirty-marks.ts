import { DIRTY_TABLE } from "../schema";
import { execute, executeUnloggedBatch, type CqlStatement } from "./cql-exec";
import { chunk, mapLimit } from "./concurrency";
import { tableRef, type DataContext } from "./data-context";

/** Partitions per type in the dirty table; fixed forever, since marks are only looked for in shards 0..N-1. */
export const DIRTY_SHARDS = 16;

/** One entity window waiting for the clean job. */
export interface DirtyMark {
  readonly type: string;
  /** Stable JSON of the entity's key fields. */
  readonly key: string;
  /** Epoch ms start of the clean window. */
  readonly windowStart: number;
}

/** A page of dirty marks and the time (µs since epoch) taken just before it was read. */
export interface DirtyPage {
  readonly marks: DirtyMark[];
  readonly readMicros: bigint;
}

/** Shard of a key: FNV-1a of its JSON, so every writer and the clean job agree without coordination. */
export function dirtyShardOf(keyJson: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < keyJson.length; i++) {
    h ^= keyJson.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % DIRTY_SHARDS;
}

/** Marks entity windows dirty, one unlogged batch per dirty partition. */
export async function markDirty(ctx: DataContext, marks: readonly DirtyMark[]): Promise<void> {
  const insert = `INSERT INTO ${tableRef(ctx, DIRTY_TABLE)} (type, shard, key, window_start) VALUES (?, ?, ?, ?)`;
  const byPartition = new Map<string, CqlStatement[]>();
  const seen = new Set<string>();
  for (const m of marks) {
    const id = `${m.type}\u0000${m.key}\u0000${m.windowStart}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const shard = dirtyShardOf(m.key);
    const part = `${m.type}\u0000${shard}`;
    const list = byPartition.get(part) ?? [];
    list.push({ query: insert, params: [m.type, shard, m.key, new Date(m.windowStart)] });
    byPartition.set(part, list);
  }
  const batches = [...byPartition.values()].flatMap((list) => chunk(list, 100));
  await mapLimit(batches, ctx.concurrency, (b) => executeUnloggedBatch(ctx.client, b, "marking entities dirty"));
}

/** Pages through one dirty partition; `nowMs` fixes the read time instead of the clock. */
export async function* readDirty(
  ctx: DataContext,
  type: string,
  shard: number,
  nowMs?: number,
  fetchSize = 500,
): AsyncGenerator<DirtyPage> {
  const select = `SELECT key, window_start FROM ${tableRef(ctx, DIRTY_TABLE)} WHERE type = ? AND shard = ?`;
  let pageState: string | undefined;
  do {
    // Taken before the read: a mark stamped later was written after this read began and must survive the delete.
    const readMicros = BigInt(Math.floor(nowMs ?? Date.now())) * 1000n;
    const rs = await execute(ctx.client, select, [type, shard], `reading dirty marks of ${type}`, {
      fetchSize,
      pageState,
      autoPage: false,
    });
    const marks = rs.rows.map((r) => ({
      type,
      key: r.get("key") as string,
      windowStart: (r.get("window_start") as Date).getTime(),
    }));
    if (marks.length > 0) yield { marks, readMicros };
    pageState = rs.pageState ?? undefined;
  } while (pageState);
}

/** Deletes marks unless they were re-marked after `readMicros`; one unlogged batch per dirty partition. */
export async function clearDirty(ctx: DataContext, marks: readonly DirtyMark[], readMicros: bigint): Promise<void> {
  const del = `DELETE FROM ${tableRef(ctx, DIRTY_TABLE)} USING TIMESTAMP ? WHERE type = ? AND shard = ? AND key = ? AND window_start = ?`;
  const byPartition = new Map<string, CqlStatement[]>();
  for (const m of marks) {
    const shard = dirtyShardOf(m.key);
    const part = `${m.type}\u0000${shard}`;
    const list = byPartition.get(part) ?? [];
    list.push({ query: del, params: [readMicros, m.type, shard, m.key, new Date(m.windowStart)] });
    byPartition.set(part, list);
  }
  const batches = [...byPartition.values()].flatMap((list) => chunk(list, 100));
  await mapLimit(batches, ctx.concurrency, (b) => executeUnloggedBatch(ctx.client, b, "clearing dirty marks"));
}
