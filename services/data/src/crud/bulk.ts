// Bulk forms of read, readOne, count, update and delete. Every item of a list is checked before the
// first statement runs, so a bad item fails the request whole (naming the item) and nothing is
// written; then items run at most ctx.concurrency at a time.
import type { StoreName } from "@machina/subjects";
import { isMachinaError } from "@machina/wire";
import { entityKeyJson, toCql, toPlain, type CqlValue, type TypeDef } from "../schema";
import { mapLimit, resolveType, rowToPlain, type DataContext, type PlainRow } from "../store";
import { atItem, checkList } from "./bulk-items";
import { checkStore, compileCriteria, keyOf } from "./criteria";
import { findNewestRow } from "./entity-scan";
import { countEntity, pageOf, readEntity } from "./read";
import { MANUAL_SOURCE, checkAlterations, checkUpdatable, deleteEntity, updateRecord } from "./write";

/** Rows found for a list of keys, in list order, and the keys that had none. */
export interface BulkRecords {
  records: PlainRow[];
  /** Keys (their key fields only) with no row to answer with. */
  missing: Record<string, unknown>[];
}

/** A count per criteria, in list order, and their sum. */
export interface BulkCount {
  counts: number[];
  count: number;
}

/** One entity of a bulk update: its key and the fields to alter. */
export interface UpdateItem {
  key: Record<string, unknown>;
  alterations: Record<string, unknown>;
}

/** Rows of every listed entity (each newest first, offset and limit applied per entity), concatenated in list order. */
export async function readRecordsBulk(
  ctx: DataContext,
  store: StoreName,
  type: string,
  criteriaList: readonly Record<string, unknown>[],
  options: { offset?: number; limit?: number } = {},
  nowMs = Date.now(),
): Promise<PlainRow[]> {
  const def = resolveType(ctx, type);
  checkStore(store);
  const page = pageOf(def, options);
  checkList(def, "criteriaList", criteriaList);
  const compiled = criteriaList.map((c, i) => atItem(def, "criteriaList", i, () => compileCriteria(def, store, c)));
  const rows = await mapLimit(compiled, ctx.concurrency, (c) => readEntity(ctx, def, store, c, page, nowMs));
  return rows.flat();
}

/** The newest row of each listed entity, in list order; keys without one are listed in `missing`. */
export async function readOneRecordsBulk(
  ctx: DataContext,
  store: StoreName,
  type: string,
  keys: readonly Record<string, unknown>[],
  nowMs = Date.now(),
): Promise<BulkRecords> {
  const def = resolveType(ctx, type);
  checkStore(store);
  const ks = checkedKeys(def, keys);
  const found = await mapLimit(ks, ctx.concurrency, (k) => findNewestRow(ctx, def, store, k, nowMs));
  const out: BulkRecords = { records: [], missing: [] };
  found.forEach((row, i) => {
    if (row === null) out.missing.push(plainKey(def, ks[i]));
    else out.records.push(rowToPlain(def, store, row));
  });
  return out;
}

/** Rows matching each criteria, in list order, and their sum (a row matched by two criteria counts twice). */
export async function countRecordsBulk(
  ctx: DataContext,
  store: StoreName,
  type: string,
  criteriaList: readonly Record<string, unknown>[],
  nowMs = Date.now(),
): Promise<BulkCount> {
  const def = resolveType(ctx, type);
  checkStore(store);
  checkList(def, "criteriaList", criteriaList);
  const compiled = criteriaList.map((c, i) => atItem(def, "criteriaList", i, () => compileCriteria(def, store, c)));
  const lanes = innerLanes(ctx, compiled.length);
  const counts = await mapLimit(compiled, ctx.concurrency, (c) => countEntity(ctx, def, store, c, nowMs, lanes));
  return { counts, count: counts.reduce((a, b) => a + b, 0) };
}

/**
 * Applies each item's alterations to its entity's newest clean row ({@link updateRecord}); the
 * updated rows in item order, and the keys with no clean row in `missing`.
 */
export async function updateRecordsBulk(
  ctx: DataContext,
  store: StoreName,
  type: string,
  items: readonly UpdateItem[],
  nowMs = Date.now(),
): Promise<BulkRecords> {
  const def = resolveType(ctx, type);
  checkStore(store);
  checkUpdatable(def, store);
  checkList(def, "items", items);
  const keys = items.map((item, i) =>
    atItem(def, "items", i, () => {
      const { key, alterations } = itemFields(item);
      checkAlterations(def, alterations);
      // Values are coerced when each row is written; coercing them here too means a bad value
      // fails the list before the items ahead of it are written.
      for (const [field, value] of Object.entries(alterations))
        toCql(def.fields[field], value, { type: def.name, field, source: MANUAL_SOURCE });
      return keyOf(def, key);
    }),
  );
  // Items of one entity run in list order, so the last alteration of a field is the one kept.
  const results = new Array<PlainRow | null>(items.length);
  await mapLimit(groupByEntity(def, keys), ctx.concurrency, async (indexes) => {
    for (const i of indexes) {
      try {
        results[i] = await updateRecord(ctx, store, type, items[i].key, items[i].alterations, nowMs);
      } catch (err) {
        // Every item was checked above, so NOT_FOUND here is the entity having no clean row.
        if (!isMachinaError(err, "NOT_FOUND")) throw err;
        results[i] = null;
      }
    }
  });
  const out: BulkRecords = { records: [], missing: [] };
  results.forEach((row, i) => {
    if (row === null) out.missing.push(plainKey(def, keys[i]));
    else out.records.push(row);
  });
  return out;
}

/** Deletes every listed entity's rows from a store; the total deleted (an entity listed twice is deleted once). */
export async function deleteRecordsBulk(
  ctx: DataContext,
  store: StoreName,
  type: string,
  keys: readonly Record<string, unknown>[],
  nowMs = Date.now(),
): Promise<{ deleted: number }> {
  const def = resolveType(ctx, type);
  checkStore(store);
  const ks = checkedKeys(def, keys);
  const entities = groupByEntity(def, ks).map((indexes) => ks[indexes[0]]);
  const lanes = innerLanes(ctx, entities.length);
  const counts = await mapLimit(entities, ctx.concurrency, (k) => deleteEntity(ctx, def, store, k, nowMs, lanes));
  return { deleted: counts.reduce((a, b) => a + b, 0) };
}

function checkedKeys(def: TypeDef, keys: readonly Record<string, unknown>[]): Record<string, CqlValue>[] {
  checkList(def, "keys", keys);
  return keys.map((k, i) => atItem(def, "keys", i, () => keyOf(def, k)));
}

// An update item as the wire gives it: both fields may be null when the caller left them out.
function itemFields(item: unknown): { key: Record<string, unknown>; alterations: Record<string, unknown> } {
  const it = (typeof item === "object" && item !== null ? item : {}) as Partial<UpdateItem>;
  return { key: it.key ?? ({} as Record<string, unknown>), alterations: it.alterations ?? {} };
}

// Indexes of the keys naming each entity, entities in order of first appearance.
function groupByEntity(def: TypeDef, keys: readonly Record<string, CqlValue>[]): number[][] {
  const groups = new Map<string, number[]>();
  keys.forEach((k, i) => {
    const id = entityKeyJson(def, k);
    const g = groups.get(id);
    if (g === undefined) groups.set(id, [i]);
    else g.push(i);
  });
  return [...groups.values()];
}

// Items already run ctx.concurrency at a time; their day partitions share what is left, so the
// statements in flight stay near ctx.concurrency whatever the list's length.
function innerLanes(ctx: DataContext, items: number): number {
  return Math.max(1, Math.floor(ctx.concurrency / Math.max(1, Math.min(items, ctx.concurrency))));
}

function plainKey(def: TypeDef, key: Record<string, CqlValue>): Record<string, unknown> {
  return Object.fromEntries(def.key.map((f) => [f, toPlain(def.fields[f], key[f])]));
}
