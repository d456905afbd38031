import type { StoreName } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import {
  DAY_MS,
  cleanTableName,
  dayOf,
  daysBack,
  dumpTableName,
  entityKeyJson,
  isField,
  keyValues,
  quoteId,
  toCql,
  toPlain,
  windowStartOf,
  type CqlValue,
  type TypeDef,
} from "../schema";
import {
  chunk,
  entityDayWrites,
  entityDays,
  execute,
  executeUnloggedBatch,
  filterableMeta,
  mapLimit,
  pages,
  resolveType,
  rowToPlain,
  selectList,
  tableRef,
  valueFieldsOf,
  writeDump,
  writeEntityDays,
  type CqlRow,
  type CqlStatement,
  type DataContext,
  type DumpRow,
  type EntityDay,
  type PlainRow,
  type WriteDumpResult,
} from "../store";

/** Options of a read: `criteria` names every key field, and may add equality filters on fields (and dump meta columns). */
export interface ReadOptions {
  criteria: Record<string, unknown>;
  /** Rows to skip, newest first. Default 0. */
  offset?: number;
  /** Rows to return, 1–1000. Default 100. */
  limit?: number;
}

/** Outcome of a delete. */
export interface DeleteResult {
  deleted: number;
}

/** Source name stamped on dump rows created through CRUD. */
export const MANUAL_SOURCE = "manual";

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
// Meta columns a dump create may carry in a record; they are not declared fields.
const DUMP_CREATE_META = new Set(["fetched_at", "query", "task_id"]);

/** Upserts records: dump rows via writeDump with source "manual"; clean rows into their window (given or current). */
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
  if (store === "dump") {
    const rows: DumpRow[] = records.map((r) => {
      const fetched =
        r.fetched_at === undefined ? null : toCql("timestamp", r.fetched_at, { type, field: "fetched_at" });
      return {
        fetchedAt: fetched instanceof Date ? fetched.getTime() : nowMs,
        source: MANUAL_SOURCE,
        query: typeof r.query === "string" ? r.query : MANUAL_SOURCE,
        taskId: typeof r.task_id === "string" ? r.task_id : "",
        record: Object.fromEntries(Object.entries(r).filter(([k]) => !DUMP_CREATE_META.has(k))),
      };
    });
    return writeDump(ctx, type, rows);
  }
  const partitions = new Map<string, CqlStatement[]>();
  const days: EntityDay[] = [];
  let ignoredFields = 0;
  for (const r of records) {
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
    const stmt = upsertClean(ctx, def, key, dayOf(ws), new Date(ws), alterations, nowMs);
    const keyJson = entityKeyJson(def, key);
    const part = `${keyJson}\u0000${dayOf(ws)}`;
    partitions.set(part, [...(partitions.get(part) ?? []), stmt]);
    days.push({ key, keyJson, day: dayOf(ws) });
  }
  const batches = [...partitions.values()].flatMap((list) => chunk(list, 100));
  await mapLimit(batches, ctx.concurrency, (b) => executeUnloggedBatch(ctx.client, b, `writing clean rows of ${type}`));
  await writeEntityDays(ctx, entityDayWrites(ctx, def, "clean", days, nowMs));
  return { written: records.length, ignoredFields };
}

/** Reads an entity's rows newest first (dump: within its TTL; clean: within lookbackDays), filtered, skipped and limited. */
export async function readRecords(
  ctx: DataContext,
  store: StoreName,
  type: string,
  options: ReadOptions,
  nowMs = Date.now(),
): Promise<PlainRow[]> {
  const def = resolveType(ctx, type);
  checkStore(store);
  const offset = intOption(options.offset, "offset", 0, 0, Number.MAX_SAFE_INTEGER, type);
  const limit = intOption(options.limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, type);
  const { key, matches } = compileCriteria(def, store, options.criteria);
  const out: PlainRow[] = [];
  let skipped = 0;
  for await (const row of scanEntity(ctx, def, store, key, nowMs)) {
    const plain = rowToPlain(def, store, row);
    if (!matches(plain)) continue;
    if (skipped < offset) {
      skipped++;
      continue;
    }
    out.push(plain);
    if (out.length >= limit) break;
  }
  return out;
}

/** The entity's newest row (dump: newest fetch; clean: newest window), or NOT_FOUND. */
export async function readOneRecord(
  ctx: DataContext,
  store: StoreName,
  type: string,
  key: Record<string, unknown>,
  nowMs = Date.now(),
): Promise<PlainRow> {
  const def = resolveType(ctx, type);
  checkStore(store);
  const row = await newestRow(ctx, def, store, keyOf(def, key), nowMs);
  return rowToPlain(def, store, row);
}

/** Number of an entity's rows matching `criteria` within the same horizon as {@link readRecords}. */
export async function countRecords(
  ctx: DataContext,
  store: StoreName,
  type: string,
  criteria: Record<string, unknown>,
  nowMs = Date.now(),
): Promise<number> {
  const def = resolveType(ctx, type);
  checkStore(store);
  const { key, matches } = compileCriteria(def, store, criteria);
  // Order does not matter for a count, so the day partitions are read concurrently.
  const counts = await mapLimit(await entityHorizon(ctx, def, store, key, nowMs), ctx.concurrency, async (day) => {
    let n = 0;
    for await (const row of scanPartition(ctx, def, store, key, day)) if (matches(rowToPlain(def, store, row))) n++;
    return n;
  });
  return counts.reduce((a, b) => a + b, 0);
}

/** Applies alterations to the entity's newest clean row (provenance "manual"); NOT_FOUND if there is none. Dump rows are immutable. */
export async function updateRecord(
  ctx: DataContext,
  store: StoreName,
  type: string,
  key: Record<string, unknown>,
  alterations: Record<string, unknown>,
  nowMs = Date.now(),
): Promise<PlainRow> {
  const def = resolveType(ctx, type);
  checkStore(store);
  if (store === "dump") {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${type}: dump rows are raw answers and cannot be updated; update the clean store or create a dump row`,
      { details: { type, store } },
    );
  }
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
  const k = keyOf(def, key);
  const row = await newestRow(ctx, def, "clean", k, nowMs);
  const stmt = upsertClean(ctx, def, k, String(row.get("bucket")), row.get("window_start") as Date, alterations, nowMs);
  await execute(ctx.client, stmt.query, stmt.params, `updating a clean row of ${type}`);
  return readOneRecord(ctx, "clean", type, key, nowMs);
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
  const k = keyOf(def, key);
  const { table, dayColumn } = storeTable(ctx, def, store);
  const where = `${def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ")} AND ${dayColumn} = ?`;
  // The entity index keeps the deleted days listed (it only ever grows until days expire), so it
  // stays a superset of the days with rows for every replica, whatever they remember.
  const counts = await mapLimit(await entityHorizon(ctx, def, store, k, nowMs), ctx.concurrency, async (day) => {
    const params = [...def.key.map((f) => k[f]), day];
    let n = 0;
    // Only partitions that hold rows get a tombstone; empty days cost a read, not a delete.
    for await (const page of pages(
      ctx.client,
      `SELECT ${dayColumn} FROM ${table} WHERE ${where}`,
      params,
      `counting rows of ${type}`,
    )) {
      n += page.length;
    }
    if (n > 0) await execute(ctx.client, `DELETE FROM ${table} WHERE ${where}`, params, `deleting rows of ${type}`);
    return n;
  });
  return { deleted: counts.reduce((a, b) => a + b, 0) };
}

async function newestRow(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
  nowMs: number,
): Promise<CqlRow> {
  for await (const row of scanEntity(ctx, def, store, key, nowMs)) return row;
  const shown = entityKeyJson(def, key);
  const days = horizon(ctx, def, store, nowMs).length;
  throw new MachinaError("NOT_FOUND", `type ${def.name}: no ${store} row for key ${shown} in the last ${days} days`, {
    details: { type: def.name, store, key: JSON.parse(shown) as unknown },
  });
}

/** Yields an entity's rows newest first: day partitions newest first, each clustered newest first. */
async function* scanEntity(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
  nowMs: number,
): AsyncGenerator<CqlRow> {
  for (const day of await entityHorizon(ctx, def, store, key, nowMs)) yield* scanPartition(ctx, def, store, key, day);
}

/** Yields the rows of one entity partition (one day), newest first. */
async function* scanPartition(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
  day: string,
): AsyncGenerator<CqlRow> {
  const { table, dayColumn } = storeTable(ctx, def, store);
  const where = `${def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ")} AND ${dayColumn} = ?`;
  const select = `SELECT ${selectList(def, store)} FROM ${table} WHERE ${where}`;
  const params = [...def.key.map((f) => key[f]), day];
  for await (const page of pages(ctx.client, select, params, `reading ${store} rows of ${def.name}`)) yield* page;
}

/**
 * Day partitions an entity's rows may live in, newest first: the days the entity index names
 * within the horizon, or the whole horizon for an entity it does not know (stored before it existed).
 */
async function entityHorizon(
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
function horizon(ctx: DataContext, def: TypeDef, store: StoreName, nowMs: number): string[] {
  // Dump rows older than the TTL are gone, so its horizon is the TTL (plus the partly expired oldest day).
  const days = store === "dump" ? Math.ceil((def.dumpTtlSeconds * 1000) / DAY_MS) + 1 : ctx.lookbackDays;
  return daysBack(nowMs, days);
}

function storeTable(ctx: DataContext, def: TypeDef, store: StoreName): { table: string; dayColumn: string } {
  return store === "dump"
    ? { table: tableRef(ctx, dumpTableName(def)), dayColumn: "day" }
    : { table: tableRef(ctx, cleanTableName(def)), dayColumn: "bucket" };
}

function upsertClean(
  ctx: DataContext,
  def: TypeDef,
  key: Record<string, CqlValue>,
  bucket: string,
  windowStart: Date,
  alterations: Record<string, unknown>,
  nowMs: number,
): CqlStatement {
  const fields = valueFieldsOf(def);
  // One statement shape per type: unaltered fields are bound unset, so they keep their stored value.
  const query =
    `UPDATE ${tableRef(ctx, cleanTableName(def))} SET ${fields.map((f) => `${quoteId(f)} = ?`).join(", ")}, ` +
    `merged_at = ?, provenance = provenance + ? ` +
    `WHERE ${def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ")} AND bucket = ? AND window_start = ?`;
  const provenance: Record<string, string> = {};
  const values = fields.map((f) => {
    if (!Object.hasOwn(alterations, f)) return undefined;
    provenance[f] = MANUAL_SOURCE;
    return toCql(def.fields[f], alterations[f], { type: def.name, field: f, source: MANUAL_SOURCE });
  });
  return {
    query,
    params: [...values, new Date(nowMs), provenance, ...def.key.map((f) => key[f]), bucket, windowStart],
  };
}

function compileCriteria(
  def: TypeDef,
  store: StoreName,
  criteria: Record<string, unknown>,
): { key: Record<string, CqlValue>; matches: (row: PlainRow) => boolean } {
  if (typeof criteria !== "object" || criteria === null || Array.isArray(criteria)) {
    throw new MachinaError("BAD_REQUEST", `type ${def.name}: criteria must name the key (${def.key.join(", ")})`, {
      details: { type: def.name, key: def.key },
    });
  }
  const key = keyOf(def, criteria);
  const meta = filterableMeta(store);
  const filters: Array<[string, string]> = [];
  for (const [field, value] of Object.entries(criteria)) {
    if (def.key.includes(field)) continue;
    if (isField(def, field)) {
      const v = toCql(def.fields[field], value, { type: def.name, field });
      filters.push([field, JSON.stringify(toPlain(def.fields[field], v))]);
    } else if (meta.includes(field)) {
      filters.push([field, JSON.stringify(value)]);
    } else {
      throw new MachinaError(
        "BAD_REQUEST",
        `type ${def.name}: cannot filter ${store} rows on "${field}" (fields: ${[...Object.keys(def.fields), ...meta].join(", ")})`,
        { details: { type: def.name, field } },
      );
    }
  }
  return { key, matches: (row) => filters.every(([f, want]) => JSON.stringify(row[f] ?? null) === want) };
}

function keyOf(def: TypeDef, input: Record<string, unknown>): Record<string, CqlValue> {
  const given = (f: string) =>
    input !== null && typeof input === "object" && Object.hasOwn(input, f) ? input[f] : undefined;
  const missing = def.key.filter((f) => given(f) === undefined || given(f) === null);
  if (missing.length > 0) {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${def.name}: criteria must name the full key; missing ${missing.join(", ")}`,
      { details: { type: def.name, missing } },
    );
  }
  return keyValues(def, input);
}

function checkStore(store: string): void {
  if (store !== "dump" && store !== "clean") {
    throw new MachinaError("NOT_FOUND", `unknown store "${store}" (expected dump or clean)`, { details: { store } });
  }
}

function intOption(v: unknown, name: string, dflt: number, min: number, max: number, type: string): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${type}: ${name} must be an integer from ${min} to ${max}, got ${String(v)}`,
      {
        details: { type, [name]: v },
      },
    );
  }
  return v;
}
