import type { StoreName } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import {
  DAY_MS,
  cleanTableName,
  daysBack,
  dumpTableName,
  entityKeyJson,
  quoteId,
  type CqlValue,
  type TypeDef,
} from "../schema";
import {
  CLEAN_ORDER,
  DUMP_ORDER,
  dumpHasSeq,
  entityDays,
  mergePending,
  pages,
  pendingEntity,
  selectList,
  tableRef,
  type CqlRow,
  type DataContext,
  type PendingView,
  type RowView,
} from "../store";

/** The entity's newest row (dump: newest fetch; clean: newest window), or NOT_FOUND naming the key and horizon. */
export async function newestRow(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
  nowMs: number,
): Promise<RowView> {
  const row = await findNewestRow(ctx, def, store, key, nowMs);
  if (row !== null) return row;
  const shown = entityKeyJson(def, key);
  const days = horizon(ctx, def, store, nowMs).length;
  throw new MachinaError("NOT_FOUND", `type ${def.name}: no ${store} row for key ${shown} in the last ${days} days`, {
    details: { type: def.name, store, key: JSON.parse(shown) as unknown },
  });
}

/** The entity's newest row, or null when it has none within the horizon. */
export async function findNewestRow(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
  nowMs: number,
): Promise<RowView | null> {
  for await (const row of scanEntity(ctx, def, store, key, nowMs)) return row;
  return null;
}

/**
 * Yields an entity's rows newest first: day partitions newest first, each clustered newest first,
 * with this replica's queued writes of the entity merged in (read-your-writes).
 */
export async function* scanEntity(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
  nowMs: number,
): AsyncGenerator<RowView> {
  const days = await entityHorizon(ctx, def, store, key, nowMs);
  const queued = queuedWrites(ctx, def, store, key);
  const stored = async function* (): AsyncGenerator<CqlRow> {
    for (const day of days) yield* scanPartition(ctx, def, store, key, day);
  };
  if (queued.length === 0) yield* stored();
  else
    yield* mergePending(
      stored(),
      queued,
      new Set(horizon(ctx, def, store, nowMs)),
      store === "dump" ? DUMP_ORDER : CLEAN_ORDER,
    );
}

/** This replica's queued writes of one entity's rows in a store, oldest first. */
export function queuedWrites(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
): PendingView[] {
  return ctx.queue.pending(pendingEntity(storeTable(ctx, def, store).table, entityKeyJson(def, key)));
}

/** Yields the rows of one entity partition (one day), newest first. */
export async function* scanPartition(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
  day: string,
): AsyncGenerator<CqlRow> {
  const { table, dayColumn } = storeTable(ctx, def, store);
  const select = `SELECT ${selectList(def, store, { seq: store === "dump" && dumpHasSeq(ctx, def) })} FROM ${table} WHERE ${partitionWhere(def, dayColumn)}`;
  for await (const page of pages(
    ctx.client,
    select,
    partitionParams(def, key, day),
    `reading ${store} rows of ${def.name}`,
  ))
    yield* page;
}

/**
 * Day partitions an entity's rows may live in, newest first: the days the entity index names
 * within the horizon, or the whole horizon for an entity it does not know (stored before it existed).
 */
export async function entityHorizon(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
  nowMs: number,
): Promise<string[]> {
  const all = horizon(ctx, def, store, nowMs);
  // Rows stored before the index existed are only found by walking every day, until they are
  // past the horizon themselves.
  const since = ctx.indexSince.get(def.name) ?? nowMs;
  if (nowMs - since < all.length * DAY_MS) return all;
  const known = await entityDays(ctx, def, store, key);
  if (known === null) return all;
  const oldest = all[all.length - 1];
  return known.filter((d) => d >= oldest && d <= all[0]);
}

/** Day partitions an entity's rows may live in, newest first. */
export function horizon(ctx: DataContext, def: TypeDef, store: StoreName, nowMs: number): string[] {
  // Dump rows older than the TTL are gone, so its horizon is the TTL (plus the partly expired oldest day).
  const days = store === "dump" ? Math.ceil((def.dumpTtlSeconds * 1000) / DAY_MS) + 1 : ctx.lookbackDays;
  return daysBack(nowMs, days);
}

/** A store's table of a type and the column holding its day partition. */
export function storeTable(ctx: DataContext, def: TypeDef, store: StoreName): { table: string; dayColumn: string } {
  return store === "dump"
    ? { table: tableRef(ctx, dumpTableName(def)), dayColumn: "day" }
    : { table: tableRef(ctx, cleanTableName(def)), dayColumn: "bucket" };
}

/** `WHERE` body selecting one (entity, day) partition: every key field and the day, all bound. */
export function partitionWhere(def: TypeDef, dayColumn: string): string {
  return `${def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ")} AND ${dayColumn} = ?`;
}

/** Bind values of {@link partitionWhere}. */
export function partitionParams(def: TypeDef, key: Record<string, CqlValue>, day: string): CqlValue[] {
  return [...def.key.map((f) => key[f]), day];
}
