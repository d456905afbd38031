import { toMachinaError } from "@machina/wire";
import {
  cleanTableName,
  dayOf,
  dumpTableName,
  parseEntityKeyJson,
  quoteId,
  toCql,
  toPlain,
  type TypeDef,
} from "../schema";
import {
  DIRTY_SHARDS,
  clearDirty,
  entityDayWrites,
  execute,
  mapLimit,
  pages,
  readDirty,
  resolveType,
  selectList,
  tableRef,
  valueFieldsOf,
  writeEntityDays,
  type CqlRow,
  type DataContext,
  type DirtyMark,
} from "../store";
import { mergeRows, type MergeRow } from "./merge";

/** Options of one clean run. */
export interface RunCleanOptions {
  /** The job's clock (epoch ms): stamps merged_at, and dirty marks written after it survive. Default: the wall clock. */
  now?: number;
  /** Only these types (default: every registered type). */
  types?: readonly string[];
  /** Whether this run merges a dirty shard of a type (default: every one); see CleanLeases. */
  owns?: (type: string, shard: number) => boolean;
  /** Called after an entity's clean row is written and before its dirty mark is cleared. */
  onMerged?: (entity: CleanedEntity) => void | Promise<void>;
}

/** One entity window the run merged. */
export interface CleanedEntity {
  readonly type: string;
  /** Key fields as plain JSON. */
  readonly key: Record<string, unknown>;
  /** Epoch ms start of the window. */
  readonly windowStart: number;
  /** Dump rows merged. */
  readonly rows: number;
}

/** An entity window the run could not merge; its dirty mark stays for the next run. */
export interface CleanFailure {
  readonly type: string;
  readonly key: string;
  readonly windowStart: number;
  readonly message: string;
}

/** Outcome of a clean run. */
export interface RunCleanResult {
  /** Entity windows merged into clean rows. */
  entities: number;
  /** Dump rows read and merged. */
  rows: number;
  /** Entity windows that failed (left dirty). */
  failed: number;
  /** The first few failures. */
  errors: CleanFailure[];
  /** Epoch ms start of the oldest dirty window the run saw; null when it saw none. */
  oldestWindowStart: number | null;
}

const MAX_REPORTED_ERRORS = 20;

/** Merges the dump rows of every dirty entity window into its clean row, then clears the mark unless it was re-marked meanwhile. */
export async function runClean(ctx: DataContext, options: RunCleanOptions = {}): Promise<RunCleanResult> {
  const defs = (options.types ?? [...ctx.types.keys()]).map((t) => resolveType(ctx, t));
  const result: RunCleanResult = { entities: 0, rows: 0, failed: 0, errors: [], oldestWindowStart: null };
  for (const def of defs) {
    for (let shard = 0; shard < DIRTY_SHARDS; shard++) {
      if (options.owns !== undefined && !options.owns(def.name, shard)) continue;
      for await (const page of readDirty(ctx, def.name, shard, options.now)) {
        for (const m of page.marks)
          if (result.oldestWindowStart === null || m.windowStart < result.oldestWindowStart)
            result.oldestWindowStart = m.windowStart;
        const done: DirtyMark[] = [];
        await mapLimit(page.marks, ctx.concurrency, async (mark) => {
          try {
            const merged = await cleanOne(ctx, def, mark, options.now ?? Date.now());
            if (merged !== undefined) {
              result.entities++;
              result.rows += merged.rows;
              await options.onMerged?.(merged);
            }
            done.push(mark);
          } catch (err) {
            // One bad entity must not stall the others; its mark stays so the next run retries it.
            result.failed++;
            if (result.errors.length < MAX_REPORTED_ERRORS) {
              const message = toMachinaError(err).message;
              result.errors.push({ type: def.name, key: mark.key, windowStart: mark.windowStart, message });
            }
          }
        });
        // A page lies in one dirty partition, so its marks clear in a few batches, not one write each.
        await clearDirty(ctx, done, page.readMicros);
      }
    }
  }
  return result;
}

/** Reads the dump rows of one entity window (paging through them). */
export async function readWindowRows(ctx: DataContext, def: TypeDef, mark: DirtyMark): Promise<MergeRow[]> {
  const key = parseEntityKeyJson(def, mark.key);
  const end = mark.windowStart + def.cleanWindowSeconds * 1000;
  const where = def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ");
  const select =
    `SELECT ${selectList(def, "dump")} FROM ${tableRef(ctx, dumpTableName(def))} ` +
    `WHERE ${where} AND day = ? AND fetched_at >= ? AND fetched_at < ?`;
  // A clean window divides a day, so it never spans two day partitions.
  const params = [...def.key.map((f) => key[f]), dayOf(mark.windowStart), new Date(mark.windowStart), new Date(end)];
  const rows: MergeRow[] = [];
  for await (const page of pages(ctx.client, select, params, `reading dump rows of ${def.name}`)) {
    for (const r of page) rows.push(dumpRowToMerge(def, r));
  }
  return rows;
}

async function cleanOne(
  ctx: DataContext,
  def: TypeDef,
  mark: DirtyMark,
  nowMs: number,
): Promise<CleanedEntity | undefined> {
  const rows = await readWindowRows(ctx, def, mark);
  // Rows gone (expired or deleted): keep the clean row, which outlives the dump by design.
  if (rows.length === 0) return undefined;
  const { values, provenance } = mergeRows(def, rows);
  const key = parseEntityKeyJson(def, mark.key);
  const fields = valueFieldsOf(def);
  const columns = [...def.key, "bucket", "window_start", ...fields, "merged_at", "sources", "provenance"];
  const insert =
    `INSERT INTO ${tableRef(ctx, cleanTableName(def))} (${columns.map(quoteId).join(", ")}) ` +
    `VALUES (${columns.map(() => "?").join(", ")})`;
  const params = [
    ...def.key.map((f) => key[f]),
    dayOf(mark.windowStart),
    new Date(mark.windowStart),
    // Explicit nulls: a re-merge must overwrite a value the window no longer supports.
    ...fields.map((f) => cleanParam(def, f, values[f], provenance[f])),
    new Date(nowMs),
    new Set(rows.map((r) => r.source)).size,
    provenance,
  ];
  await execute(ctx.client, insert, params, `writing clean row of ${def.name}`);
  await writeEntityDays(
    ctx,
    entityDayWrites(ctx, def, "clean", [{ key, keyJson: mark.key, day: dayOf(mark.windowStart) }], nowMs),
  );
  const plainKey = Object.fromEntries(def.key.map((f) => [f, toPlain(def.fields[f], key[f])]));
  return { type: def.name, key: plainKey, windowStart: mark.windowStart, rows: rows.length };
}

// Merged values are driver values already; json is its stored text and must not be encoded twice.
// Others go through toCql once more because a sum can leave an int's range.
function cleanParam(def: TypeDef, field: string, value: unknown, source: string | undefined): unknown {
  if (def.fields[field] === "json") return value ?? null;
  return toCql(def.fields[field], value, { type: def.name, field, source });
}

/** Turns a dump row into merge input, keeping driver values (bigint, Date) so sums and comparisons stay exact. */
function dumpRowToMerge(def: TypeDef, row: CqlRow): MergeRow {
  const values: Record<string, unknown> = {};
  for (const field of valueFieldsOf(def)) values[field] = row.get(field);
  return {
    fetchedAt: (row.get("fetched_at") as Date).getTime(),
    source: row.get("source") as string,
    query: row.get("query") as string,
    values,
  };
}
