import type { StoreName } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import {
  cleanTableName,
  dayOf,
  entityKeyJson,
  isField,
  keyValues,
  quoteId,
  toCql,
  windowStartOf,
  type CqlValue,
  type TypeDef,
} from "../schema";
import {
  CLEAN_ORDER,
  clearOverrides,
  entityDayWrites,
  mapLimit,
  markDirty,
  pages,
  pendingEntity,
  pendingView,
  prepareDumpRows,
  resolveType,
  storeDumps,
  tableRef,
  valueFieldsOf,
  writeEntityDays,
  writeOverrides,
  type DataContext,
  type DumpRow,
  type EntityDay,
  type PendingView,
  type PlainRow,
  type QueuedWrite,
  type WriteDumpResult,
} from "../store";
import { atItem, checkList, itemError } from "./bulk-items";
import { checkStore, keyOf } from "./criteria";
import { entityHorizon, newestRow, partitionParams, partitionWhere, storeTable } from "./entity-scan";
import { readOneRecord } from "./read";

/** Outcome of a delete. */
export interface DeleteResult {
  deleted: number;
}

/** Source name stamped on dump rows created through CRUD. */
export const MANUAL_SOURCE = "manual";

// Meta columns a dump create may carry in a record; they are not declared fields.
const DUMP_CREATE_META = new Set(["fetched_at", "query", "task_id"]);

/** Upserts records: dump rows via the dump store with source "manual"; clean rows into their window (given or current). */
export async function createRecords(
  ctx: DataContext,
  store: StoreName,
  type: string,
  records: readonly Record<string, unknown>[],
  nowMs = Date.now(),
): Promise<WriteDumpResult> {
  const def = resolveType(ctx, type);
  checkStore(store);
  if (!Array.isArray(records)) {
    throw new MachinaError("BAD_REQUEST", `type ${type}: expected a list of records`, { details: { type } });
  }
  checkList(def, "records", records);
  if (store === "dump") {
    const rows: DumpRow[] = records.map((r, i) =>
      atItem(def, "records", i, () => {
        const fetched =
          r.fetched_at === undefined ? null : toCql("timestamp", r.fetched_at, { type, field: "fetched_at" });
        return {
          fetchedAt: fetched instanceof Date ? fetched.getTime() : nowMs,
          source: MANUAL_SOURCE,
          query: typeof r.query === "string" ? r.query : MANUAL_SOURCE,
          taskId: typeof r.task_id === "string" ? r.task_id : "",
          record: Object.fromEntries(Object.entries(r).filter(([k]) => !DUMP_CREATE_META.has(k))),
        };
      }),
    );
    // Every row is checked before any is written, so a bad record leaves nothing behind.
    const { prepared, refused } = prepareDumpRows(ctx, type, rows);
    if (refused.length > 0) throw itemError(def, "records", refused[0].index, refused[0].error);
    await storeDumps(ctx, [prepared]);
    return { written: prepared.written, ignoredFields: prepared.ignoredFields };
  }
  const writes: QueuedWrite[] = [];
  const days: EntityDay[] = [];
  let ignoredFields = 0;
  records.forEach((r, i) =>
    atItem(def, "records", i, () => {
      const key = keyValues(def, r, MANUAL_SOURCE);
      const ws =
        r.window_start === undefined
          ? windowStartOf(nowMs, def.cleanWindowSeconds)
          : (toCql("timestamp", r.window_start, { type, field: "window_start" }) as Date).getTime();
      const alterations: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(r)) {
        if (isField(def, k) && !def.key.includes(k)) alterations[k] = v;
        else if (!isField(def, k) && k !== "window_start") ignoredFields++;
      }
      writes.push(upsertClean(ctx, def, key, dayOf(ws), new Date(ws), alterations, nowMs));
      days.push({ key, keyJson: entityKeyJson(def, key), day: dayOf(ws) });
    }),
  );
  await Promise.all([
    ctx.queue.write(writes, `writing clean rows of ${type}`),
    writeEntityDays(ctx, entityDayWrites(ctx, def, "clean", days, nowMs)),
  ]);
  return { written: records.length, ignoredFields };
}

/** Applies alterations to the entity's newest clean row (provenance "manual"); NOT_FOUND if there is none. Dump rows are immutable. */
export async function updateRecord(
  ctx: DataContext,
  store: StoreName,
  type: string,
  key: Record<string, unknown>,
  alterations: Record<string, unknown>,
  nowMs = Date.now(),
  clear: readonly string[] = [],
): Promise<PlainRow> {
  const def = resolveType(ctx, type);
  checkStore(store);
  checkUpdatable(def, store);
  checkClear(def, clear);
  if (clear.length === 0 || (alterations !== null && Object.keys(alterations ?? {}).length > 0)) {
    checkAlterations(def, alterations);
  }
  const k = keyOf(def, key);
  const row = await newestRow(ctx, def, "clean", k, nowMs);
  const windowStart = row.get("window_start") as Date;
  const altered = alterations ?? {};
  // The override goes first: from then on every merge of the entity applies it, whatever runs meanwhile.
  if (Object.keys(altered).length > 0) {
    await writeOverrides(ctx, def, k, altered);
    await ctx.queue.write(
      [upsertClean(ctx, def, k, String(row.get("bucket")), windowStart, altered, nowMs)],
      `updating a clean row of ${type}`,
    );
  }
  if (clear.length > 0) await clearOverrides(ctx, def, k, clear);
  // Merged again with the overrides read for certain: undoes a merge that raced this edit, and
  // takes cleared fields from the sources again.
  await markDirty(ctx, [
    { type: def.name, key: entityKeyJson(def, k), windowStart: windowStart.getTime(), manual: true },
  ]);
  return readOneRecord(ctx, "clean", type, key, nowMs);
}

/** BAD_REQUEST unless every field to clear is a declared value field. */
export function checkClear(def: TypeDef, clear: readonly string[]): void {
  if (!Array.isArray(clear)) {
    throw new MachinaError("BAD_REQUEST", `type ${def.name}: clear must be a list of field names`, {
      details: { type: def.name },
    });
  }
  for (const [i, field] of clear.entries()) {
    if (typeof field !== "string" || !isField(def, field) || def.key.includes(field)) {
      throw new MachinaError(
        "BAD_REQUEST",
        `type ${def.name}: clear[${i}]: "${String(field)}" is not a value field (fields: ${valueFieldsOf(def).join(", ")})`,
        { details: { type: def.name, field: `clear[${i}]` } },
      );
    }
  }
}

/** BAD_REQUEST for the dump store: its rows are raw answers, never altered. */
export function checkUpdatable(def: TypeDef, store: StoreName): void {
  if (store === "dump") {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${def.name}: dump rows are raw answers and cannot be updated; update the clean store or create a dump row`,
      { details: { type: def.name, store } },
    );
  }
}

/** BAD_REQUEST unless alterations name at least one declared value field (key fields cannot change). */
export function checkAlterations(def: TypeDef, alterations: Record<string, unknown>): void {
  const type = def.name;
  if (typeof alterations !== "object" || alterations === null || Object.keys(alterations).length === 0) {
    throw new MachinaError("BAD_REQUEST", `type ${type}: alterations must name at least one field`, {
      details: { type },
    });
  }
  for (const field of Object.keys(alterations)) {
    if (def.key.includes(field)) {
      throw new MachinaError(
        "BAD_REQUEST",
        `type ${type}: key field "${field}" cannot be altered; delete and create instead`,
        {
          details: { type, field },
        },
      );
    }
    if (!isField(def, field)) {
      throw new MachinaError(
        "BAD_REQUEST",
        `type ${type}: "${field}" is not a field (fields: ${valueFieldsOf(def).join(", ")})`,
        { details: { type, field } },
      );
    }
  }
}

/** Deletes the entity's partitions that hold rows (dump: within its TTL; clean: within lookbackDays). */
export async function deleteRecords(
  ctx: DataContext,
  store: StoreName,
  type: string,
  key: Record<string, unknown>,
  nowMs = Date.now(),
): Promise<DeleteResult> {
  const def = resolveType(ctx, type);
  checkStore(store);
  return { deleted: await deleteEntity(ctx, def, store, keyOf(def, key), nowMs, ctx.concurrency) };
}

/** Deletes one entity's rows from a store, its day partitions `lanes` at a time; the number of rows deleted. */
export async function deleteEntity(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  k: Record<string, CqlValue>,
  nowMs: number,
  lanes: number,
): Promise<number> {
  const { table, dayColumn } = storeTable(ctx, def, store);
  const where = partitionWhere(def, dayColumn);
  // The entity index keeps the deleted days listed (it only ever grows until days expire), so it
  // stays a superset of the days with rows for every replica, whatever they remember.
  const entity = pendingEntity(table, entityKeyJson(def, k));
  // Days with queued rows are deleted too, even before the index or any stored row names them.
  const queuedDays = new Set(ctx.queue.pending(entity).map((v) => v.day));
  const days = [...new Set([...(await entityHorizon(ctx, def, store, k, nowMs)), ...queuedDays])];
  const counts = await mapLimit(days, lanes, async (day) => {
    const params = partitionParams(def, k, day);
    let n = 0;
    // Only partitions that hold rows get a tombstone; empty days cost a read, not a delete.
    for await (const page of pages(
      ctx.client,
      `SELECT ${dayColumn} FROM ${table} WHERE ${where}`,
      params,
      `counting rows of ${def.name}`,
    )) {
      n += page.length;
    }
    if (n > 0 || queuedDays.has(day)) {
      // Queued behind the partition's earlier writes, so a row queued before the delete stays deleted.
      const view: PendingView = { entity, id: "", day, columns: null };
      const statement = { query: `DELETE FROM ${table} WHERE ${where}`, params };
      await ctx.queue.write(
        [{ partition: `${table}\u0000${entityKeyJson(def, k)}\u0000${day}`, statement, view }],
        `deleting rows of ${def.name}`,
      );
    }
    return n;
  });
  return counts.reduce((a, b) => a + b, 0);
}

/** The queued write of `alterations` into one clean row, stamping their provenance "manual"; reads see it while queued. */
export function upsertClean(
  ctx: DataContext,
  def: TypeDef,
  key: Record<string, CqlValue>,
  bucket: string,
  windowStart: Date,
  alterations: Record<string, unknown>,
  nowMs: number,
): QueuedWrite {
  const fields = valueFieldsOf(def);
  const table = tableRef(ctx, cleanTableName(def));
  // One statement shape per type: unaltered fields are bound unset, so they keep their stored value.
  const query =
    `UPDATE ${table} SET ${fields.map((f) => `${quoteId(f)} = ?`).join(", ")}, ` +
    `merged_at = ?, provenance = provenance + ? ` +
    `WHERE ${def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ")} AND bucket = ? AND window_start = ?`;
  const provenance: Record<string, string> = {};
  const values = fields.map((f) => {
    if (!Object.hasOwn(alterations, f)) return undefined;
    provenance[f] = MANUAL_SOURCE;
    return toCql(def.fields[f], alterations[f], { type: def.name, field: f, source: MANUAL_SOURCE });
  });
  const keyParams = def.key.map((f) => key[f]);
  const params = [...values, new Date(nowMs), provenance, ...keyParams, bucket, windowStart];
  const keyJson = entityKeyJson(def, key);
  const columns = new Map<string, unknown>([
    ...fields.map((f, i): [string, unknown] => [f, values[i]]),
    ["merged_at", new Date(nowMs)],
    ["provenance", provenance],
    ...def.key.map((f, i): [string, unknown] => [f, keyParams[i]]),
    ["bucket", bucket],
    ["window_start", windowStart],
  ]);
  return {
    partition: `${table}\u0000${keyJson}\u0000${bucket}`,
    statement: { query, params },
    view: pendingView(pendingEntity(table, keyJson), CLEAN_ORDER, columns),
  };
}
