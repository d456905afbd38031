import type { StoreName } from "@machina/subjects";
import type { TypeDef } from "../schema";
import { mapLimit, resolveType, rowToPlain, type DataContext, type PlainRow } from "../store";
import { checkStore, compileCriteria, intOption, keyOf, type CompiledCriteria } from "./criteria";
import { entityHorizon, newestRow, queuedWrites, scanEntity, scanPartition } from "./entity-scan";

/** Options of a read: `criteria` names every key field, and may add equality filters on fields (and dump meta columns). */
export interface ReadOptions {
  criteria: Record<string, unknown>;
  /** Rows to skip, newest first. Default 0. */
  offset?: number;
  /** Rows to return, 1–1000. Default 100. */
  limit?: number;
}

/** Offset and limit of a read, checked. */
export interface Page {
  readonly offset: number;
  readonly limit: number;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

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
  const page = pageOf(def, options);
  return readEntity(ctx, def, store, compileCriteria(def, store, options.criteria), page, nowMs);
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
  return countEntity(ctx, def, store, compileCriteria(def, store, criteria), nowMs, ctx.concurrency);
}

/** Offset and limit of read options, defaulted and range-checked. */
export function pageOf(def: TypeDef, options: { offset?: number; limit?: number }): Page {
  return {
    offset: intOption(options.offset, "offset", 0, 0, Number.MAX_SAFE_INTEGER, def.name),
    limit: intOption(options.limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, def.name),
  };
}

/** One entity's rows matching compiled criteria, newest first, after `offset`, at most `limit`. */
export async function readEntity(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  criteria: CompiledCriteria,
  page: Page,
  nowMs: number,
): Promise<PlainRow[]> {
  const out: PlainRow[] = [];
  let skipped = 0;
  for await (const row of scanEntity(ctx, def, store, criteria.key, nowMs)) {
    const plain = rowToPlain(def, store, row);
    if (!criteria.matches(plain)) continue;
    if (skipped < page.offset) {
      skipped++;
      continue;
    }
    out.push(plain);
    if (out.length >= page.limit) break;
  }
  return out;
}

/** One entity's rows matching compiled criteria, its day partitions read `lanes` at a time. */
export async function countEntity(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  criteria: CompiledCriteria,
  nowMs: number,
  lanes: number,
): Promise<number> {
  // Queued writes change which rows exist: count the merged view, newest first.
  if (queuedWrites(ctx, def, store, criteria.key).length > 0) {
    let n = 0;
    for await (const row of scanEntity(ctx, def, store, criteria.key, nowMs))
      if (criteria.matches(rowToPlain(def, store, row))) n++;
    return n;
  }
  // Order does not matter for a count, so the day partitions are read concurrently.
  const days = await entityHorizon(ctx, def, store, criteria.key, nowMs);
  const counts = await mapLimit(days, lanes, async (day) => {
    let n = 0;
    for await (const row of scanPartition(ctx, def, store, criteria.key, day))
      if (criteria.matches(rowToPlain(def, store, row))) n++;
    return n;
  });
  return counts.reduce((a, b) => a + b, 0);
}
