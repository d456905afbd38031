import { randomBytes } from "node:crypto";
import cassandra from "cassandra-driver";
import { DIRTY_CURSOR_TABLE, DIRTY_MARKS_TABLE } from "../schema";
import { execute, pages } from "./cql-exec";
import { mapLimit } from "./concurrency";
import { tableRef, type DataContext } from "./data-context";
import type { QueuedWrite } from "./write-queue";
import { cachedQuery } from "./statement-cache";
import { keyHash } from "./key-hash";

/** Partitions per type and slot in the dirty table; fixed forever, since marks are only looked for in shards 0..N-1. */
export const DIRTY_SHARDS = 16;

/** Width of a mark slot: marks land in the slot of their writer's clock. */
export const DIRTY_SLOT_MS = 30_000;

/**
 * How long after its end a slot is still read before it is closed and dropped whole: the clock
 * skew between a writer and the clean job that no mark can be lost to.
 */
export const DIRTY_CLOSE_AFTER_MS = 60_000;

/** One entity window waiting for the clean job. */
export interface DirtyMark {
  readonly type: string;
  /** Stable JSON of the entity's key fields. */
  readonly key: string;
  /** Epoch ms start of the clean window. */
  readonly windowStart: number;
  /** Written by a manual edit: its merge reads the entity's overrides whatever the replica remembers. */
  readonly manual?: boolean;
}

/** A mark as stored: the window and the id of the write that made it. */
export interface StoredMark extends DirtyMark {
  readonly id: string;
}

/** Shard of a key: a hash of its JSON, so every writer and the clean job agree without coordination. */
export function dirtyShardOf(keyJson: string): number {
  return keyHash(keyJson) % DIRTY_SHARDS;
}

/** Slot of an epoch ms time. */
export function dirtySlotOf(ms: number): number {
  return Math.floor(ms / DIRTY_SLOT_MS);
}

/** Whether a slot can no longer receive marks from a writer within the tolerated skew of `nowMs`. */
export function slotClosed(slot: number, nowMs: number): boolean {
  return (slot + 1) * DIRTY_SLOT_MS + DIRTY_CLOSE_AFTER_MS <= nowMs;
}

/**
 * Marks entity windows dirty through the operation queue, which batches them by dirty partition. Every write is a new row
 * (its own id), so a mark is never shadowed by a delete, whatever the clocks of writer and job.
 */
export async function markDirty(ctx: DataContext, marks: readonly DirtyMark[]): Promise<void> {
  const now = ctx.clock();
  const slot = dirtySlotOf(now);
  const insert = cachedQuery(
    ctx,
    ctx,
    "mark-dirty",
    () =>
      `INSERT INTO ${tableRef(ctx, DIRTY_MARKS_TABLE)} (type, shard, slot, key, window_start, id, manual) ` +
      `VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const writes: QueuedWrite[] = [];
  const seen = new Set<string>();
  const units = new Set<string>();
  for (const m of marks) {
    const id = `${m.type}\u0000${m.key}\u0000${m.windowStart}\u0000${m.manual === true}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const shard = dirtyShardOf(m.key);
    const part = `${m.type}\u0000${shard}`;
    units.add(part);
    const uuid = randomId();
    writes.push({
      partition: `${DIRTY_MARKS_TABLE}\u0000${part}\u0000${slot}`,
      statement: {
        query: insert,
        params: [m.type, shard, slot, m.key, new Date(m.windowStart), uuid, m.manual === true ? true : undefined],
      },
    });
  }
  await ensureCursors(ctx, units, slot);
  await ctx.queue.write(writes, "marking entities dirty");
}

// Random (v4) mark ids cut from a pooled buffer: a random read of 16 bytes for every mark was 1 %
// of the store path.
let idPool = Buffer.alloc(0);
let idAt = 0;
function randomId(): cassandra.types.Uuid {
  if (idAt + 16 > idPool.length) {
    idPool = randomBytes(16 * 256);
    idAt = 0;
  }
  const b = Buffer.from(idPool.subarray(idAt, (idAt += 16)));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return new cassandra.types.Uuid(b);
}

/** The marks of one slot partition. */
export async function readSlot(ctx: DataContext, type: string, shard: number, slot: number): Promise<StoredMark[]> {
  const select = `SELECT key, window_start, id, manual FROM ${tableRef(ctx, DIRTY_MARKS_TABLE)} WHERE type = ? AND shard = ? AND slot = ?`;
  const out: StoredMark[] = [];
  for await (const page of pages(ctx.client, select, [type, shard, slot], `reading dirty marks of ${type}`)) {
    for (const r of page) {
      out.push({
        type,
        key: r.get("key") as string,
        windowStart: (r.get("window_start") as Date).getTime(),
        id: String(r.get("id")),
        manual: r.get("manual") === true,
      });
    }
  }
  return out;
}

/** Drops a closed slot partition whole: one partition tombstone, never read again once the cursor is past it. */
export async function dropSlot(ctx: DataContext, type: string, shard: number, slot: number): Promise<void> {
  await execute(
    ctx.client,
    `DELETE FROM ${tableRef(ctx, DIRTY_MARKS_TABLE)} WHERE type = ? AND shard = ? AND slot = ?`,
    [type, shard, slot],
    `dropping merged dirty marks of ${type}`,
  );
}

/** The first slot of a (type, shard) the clean job has not closed yet, or null when no writer has marked it. */
export async function readCursor(ctx: DataContext, type: string, shard: number): Promise<number | null> {
  const rs = await execute(
    ctx.client,
    `SELECT slot FROM ${tableRef(ctx, DIRTY_CURSOR_TABLE)} WHERE type = ? AND shard = ?`,
    [type, shard],
    `reading the dirty cursor of ${type}`,
  );
  const v: unknown = rs.first()?.get("slot");
  return v === undefined || v === null ? null : Number(v);
}

/** Moves the cursor of a (type, shard) past closed slots. */
export async function writeCursor(ctx: DataContext, type: string, shard: number, slot: number): Promise<void> {
  await execute(
    ctx.client,
    `UPDATE ${tableRef(ctx, DIRTY_CURSOR_TABLE)} SET slot = ? WHERE type = ? AND shard = ?`,
    [slot, type, shard],
    `moving the dirty cursor of ${type}`,
  );
}

// Cursor starts in flight per replica: concurrent first writers of a unit share one LWT instead
// of racing compare-and-sets on one partition (which time out under contention).
const starting = new WeakMap<DataContext, Map<string, Promise<void>>>();

// The first mark a replica writes into a (type, shard) starts its cursor, a skew allowance back,
// unless one exists: the clean job then never starts after a mark it has to see.
async function ensureCursors(ctx: DataContext, units: ReadonlySet<string>, slot: number): Promise<void> {
  const missing = [...units].filter((u) => !ctx.cursorsKnown.has(u));
  if (missing.length === 0) return;
  let inFlight = starting.get(ctx);
  if (inFlight === undefined) starting.set(ctx, (inFlight = new Map()));
  const start = slot - Math.ceil(DIRTY_CLOSE_AFTER_MS / DIRTY_SLOT_MS) - 1;
  const flights = inFlight;
  await mapLimit(missing, ctx.concurrency, async (unit) => {
    let p = flights.get(unit);
    if (p === undefined) {
      const [type, shard] = unit.split("\u0000");
      p = execute(
        ctx.client,
        `INSERT INTO ${tableRef(ctx, DIRTY_CURSOR_TABLE)} (type, shard, slot) VALUES (?, ?, ?) IF NOT EXISTS`,
        [type, Number(shard), start],
        `starting the dirty cursor of ${type}`,
      )
        .then(() => {
          ctx.cursorsKnown.add(unit);
        })
        .finally(() => flights.delete(unit));
      flights.set(unit, p);
    }
    await p;
  });
}
