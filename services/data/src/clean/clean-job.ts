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
  CLEAN_ORDER,
  cachedQuery,
  DIRTY_SHARDS,
  dirtySlotOf,
  dropSlot,
  dumpHasSeq,
  entityDayWrites,
  mapLimit,
  pages,
  pendingEntity,
  pendingView,
  readCursor,
  readOverrides,
  readSlot,
  resolveType,
  selectList,
  slotClosed,
  tableRef,
  valueFieldsOf,
  writeCursor,
  writeEntityDays,
  type CqlRow,
  type DataContext,
  type DirtyMark,
} from "../store";
import { attemptId, parkFailed } from "./clean-failed";
import { clearLegacyMarks, readLegacyMarks } from "./legacy-dirty";
import { mergeRows, type MergeRow } from "./merge";

/** Options of one clean run. */
export interface RunCleanOptions {
  /** Only these types (default: every registered type). */
  types?: readonly string[];
  /** Whether this run merges a dirty shard of a type (default: every one); see CleanLeases. */
  owns?: (type: string, shard: number) => boolean;
  /** Failed merges of one entity window before it is parked in the failed list. Default 5. */
  maxAttempts?: number;
  /** Called after an entity's clean row is written. */
  onMerged?: (entity: CleanedEntity) => void | Promise<void>;
  /** Called when a window is parked in the failed list. */
  onParked?: (type: string, mark: DirtyMark) => void;
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

/** An entity window the run could not merge; it is retried, then parked. */
export interface CleanFailure {
  readonly type: string;
  readonly key: string;
  readonly windowStart: number;
  readonly message: string;
  /** Whether this failure parked it in the failed list. */
  readonly parked: boolean;
}

/** Outcome of a clean run. */
export interface RunCleanResult {
  /** Entity windows merged into clean rows. */
  entities: number;
  /** Dump rows read and merged. */
  rows: number;
  /** Entity windows that failed (retried next run, or parked). */
  failed: number;
  /** Of those, the windows parked in the failed list by this run. */
  parked: number;
  /** The first few failures. */
  errors: CleanFailure[];
  /** Epoch ms start of the oldest dirty window the run saw; null when it saw none. */
  oldestWindowStart: number | null;
}

const MAX_REPORTED_ERRORS = 20;
/** Provenance of a field whose clean value an operator set. */
export const MANUAL_PROVENANCE = "manual";
const DEFAULT_MAX_ATTEMPTS = 5;
// Slots one run reads per (type, shard): after a long stop the cursor catches up over a few runs.
const MAX_SLOTS_PER_RUN = 240;
// (type, shard) units one run cleans at once, each with up to ctx.concurrency merges in flight.
const UNITS_IN_FLIGHT = 4;

/**
 * Merges the dump rows of every dirty entity window into its clean row. Marks are read from the
 * open slots of each owned (type, shard); a slot past the skew allowance whose marks are all
 * merged (or parked) is dropped whole and the cursor moves past it.
 */
export async function runClean(ctx: DataContext, options: RunCleanOptions = {}): Promise<RunCleanResult> {
  const defs = (options.types ?? [...ctx.types.keys()]).map((t) => resolveType(ctx, t));
  const result: RunCleanResult = { entities: 0, rows: 0, failed: 0, parked: 0, errors: [], oldestWindowStart: null };
  const units = defs.flatMap((def) =>
    Array.from({ length: DIRTY_SHARDS }, (_, shard) => ({ def, shard })).filter(
      (u) => options.owns === undefined || options.owns(u.def.name, u.shard),
    ),
  );
  // A few units at a time: one unit's merges wait on reads, and the others fill that time.
  await mapLimit(units, UNITS_IN_FLIGHT, async ({ def, shard }) => {
    if (ctx.legacyDirty) await drainLegacy(ctx, def, shard, options, result);
    await cleanUnit(ctx, def, shard, options, result);
  });
  return result;
}

async function cleanUnit(
  ctx: DataContext,
  def: TypeDef,
  shard: number,
  options: RunCleanOptions,
  result: RunCleanResult,
): Promise<void> {
  const cursor = await readCursor(ctx, def.name, shard);
  if (cursor === null) return; // no replica has marked this shard yet
  // Taken before any read: a slot closed at this time holds every mark it will ever get.
  const now = ctx.clock();
  const last = Math.min(dirtySlotOf(now) + 1, cursor + MAX_SLOTS_PER_RUN - 1);
  const slots: number[] = [];
  for (let s = cursor; s <= last; s++) slots.push(s);
  const unit = `${def.name}\u0000${shard}`;
  const merged = ctx.clean.merged.get(unit) ?? new Map<number, Set<string>>();
  ctx.clean.merged.set(unit, merged);
  // Slots another holder closed while this replica did not own the unit are never read again.
  for (const slot of merged.keys()) if (slot < cursor) merged.delete(slot);
  const read = await mapLimit(slots, ctx.concurrency, (slot) => readSlot(ctx, def.name, shard, slot));

  // Every pending mark of a window, across slots, is settled by one merge.
  const windows = new Map<string, { mark: DirtyMark; ids: Array<[number, string]>; manual: boolean }>();
  read.forEach((marks, i) => {
    const done = merged.get(slots[i]);
    for (const m of marks) {
      if (done?.has(m.id)) continue;
      const id = attemptId(m);
      const w = windows.get(id) ?? { mark: m, ids: [], manual: false };
      w.ids.push([slots[i], m.id]);
      w.manual ||= m.manual === true;
      windows.set(id, w);
    }
  });
  const settle = (ids: Array<[number, string]>) => {
    for (const [slot, id] of ids) {
      const done = merged.get(slot) ?? new Set<string>();
      done.add(id);
      merged.set(slot, done);
    }
  };
  // Windows of one start are read together (one query for a group of entities), then merged each on its own.
  const groups = readGroups(def, [...windows.values()]);
  await mapLimit(groups, Math.max(1, Math.ceil(ctx.concurrency / 4)), async (group) => {
    const rows = await readWindowGroup(
      ctx,
      def,
      group.map((w) => w.mark),
    );
    await Promise.all(
      group.map(async ({ mark, ids, manual }) => {
        if (result.oldestWindowStart === null || mark.windowStart < result.oldestWindowStart)
          result.oldestWindowStart = mark.windowStart;
        if (await mergeWindow(ctx, def, { ...mark, manual }, options, result, rows?.get(mark.key))) settle(ids);
      }),
    );
  });

  let next = cursor;
  for (const [i, slot] of slots.entries()) {
    if (!slotClosed(slot, now)) break;
    const done = merged.get(slot);
    if (!read[i].every((m) => done?.has(m.id))) break; // a window still being retried holds its slot open
    if (read[i].length > 0) await dropSlot(ctx, def.name, shard, slot);
    merged.delete(slot);
    next = slot + 1;
  }
  if (next !== cursor) await writeCursor(ctx, def.name, shard, next);
}

// Merges one window; true once it is settled (merged, or parked after too many failures).
async function mergeWindow(
  ctx: DataContext,
  def: TypeDef,
  mark: DirtyMark,
  options: RunCleanOptions,
  result: RunCleanResult,
  /** The window's dump rows when a group read fetched them already. */
  rows?: MergeRow[],
): Promise<boolean> {
  const id = attemptId(mark);
  try {
    const merged = await cleanOne(ctx, def, mark, ctx.clock(), rows);
    ctx.clean.attempts.delete(id);
    if (merged !== undefined) {
      result.entities++;
      result.rows += merged.rows;
      await options.onMerged?.(merged);
    }
    return true;
  } catch (err) {
    // One bad entity must not stall the others: it is retried next run, then parked.
    result.failed++;
    const e = toMachinaError(err);
    const attempts = (ctx.clean.attempts.get(id) ?? 0) + 1;
    // An outage is not the window's fault: only failures that a retry cannot fix count.
    const parked = !e.retryable && attempts >= (options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    if (!e.retryable) ctx.clean.attempts.set(id, attempts);
    if (parked) {
      await parkFailed(ctx, mark, e, attempts);
      ctx.clean.attempts.delete(id);
      result.parked++;
      options.onParked?.(def.name, mark);
    }
    if (result.errors.length < MAX_REPORTED_ERRORS) {
      result.errors.push({ type: def.name, key: mark.key, windowStart: mark.windowStart, message: e.message, parked });
    }
    return parked;
  }
}

async function drainLegacy(
  ctx: DataContext,
  def: TypeDef,
  shard: number,
  options: RunCleanOptions,
  result: RunCleanResult,
): Promise<void> {
  const unit = `${def.name}\u0000${shard}`;
  if (ctx.clean.legacyDrained.has(unit)) return;
  const { marks, readMicros } = await readLegacyMarks(ctx, def.name, shard);
  if (marks.length === 0) {
    ctx.clean.legacyDrained.add(unit);
    return;
  }
  const settled: DirtyMark[] = [];
  await mapLimit(marks, ctx.concurrency, async (m) => {
    if (await mergeWindow(ctx, def, m, options, result)) settled.push(m);
  });
  await clearLegacyMarks(ctx, shard, settled, readMicros);
}

/** Reads the dump rows of one entity window (paging through them). */
export async function readWindowRows(ctx: DataContext, def: TypeDef, mark: DirtyMark): Promise<MergeRow[]> {
  const key = parseEntityKeyJson(def, mark.key);
  const end = mark.windowStart + def.cleanWindowSeconds * 1000;
  const where = def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ");
  const select =
    `SELECT ${selectList(def, "dump", { seq: dumpHasSeq(ctx, def) })} FROM ${tableRef(ctx, dumpTableName(def))} ` +
    `WHERE ${where} AND day = ? AND fetched_at >= ? AND fetched_at < ?`;
  // A clean window divides a day, so it never spans two day partitions.
  const params = [...def.key.map((f) => key[f]), dayOf(mark.windowStart), new Date(mark.windowStart), new Date(end)];
  const rows: MergeRow[] = [];
  for await (const page of pages(ctx.client, select, params, `reading dump rows of ${def.name}`)) {
    for (const r of page) rows.push(dumpRowToMerge(def, r));
  }
  return rows;
}

// Entity windows one query reads: a read of a small partition costs Cassandra mostly its request,
// and `key IN (…)` over 50 entities cost it a quarter of 50 reads (0.7 s against 2.9 s per 20,000
// windows, measured on this machine).
const READ_GROUP = 50;

interface WindowEntry {
  readonly mark: DirtyMark;
  readonly ids: Array<[number, string]>;
  readonly manual: boolean;
}

// Groups of windows read by one query: same window start, up to READ_GROUP entities. A key of
// several fields reads each window alone (an IN per field would read their cross product).
function readGroups(def: TypeDef, windows: readonly WindowEntry[]): WindowEntry[][] {
  if (def.key.length !== 1) return windows.map((w) => [w]);
  const byStart = new Map<number, WindowEntry[][]>();
  for (const w of windows) {
    const chunks = byStart.get(w.mark.windowStart) ?? [];
    if (chunks.length === 0 || chunks[chunks.length - 1].length >= READ_GROUP) chunks.push([]);
    chunks[chunks.length - 1].push(w);
    byStart.set(w.mark.windowStart, chunks);
  }
  return [...byStart.values()].flat();
}

// Text a key value is matched by, the same for the value a mark names and the one a row holds.
const keyText = (v: unknown): string => (v instanceof Date ? String(v.getTime()) : String(v));

/**
 * The dump rows of windows of one start, read by one query, by mark key (a window without rows
 * maps to none); undefined for a single window or when the read fails, so each window reads (and
 * fails, and is retried) on its own.
 */
async function readWindowGroup(
  ctx: DataContext,
  def: TypeDef,
  marks: readonly DirtyMark[],
): Promise<Map<string, MergeRow[]> | undefined> {
  if (marks.length < 2) return undefined;
  const [field] = def.key;
  const start = marks[0].windowStart;
  const end = start + def.cleanWindowSeconds * 1000;
  const byText = new Map<string, string>();
  const values = marks.map((m) => {
    const v = parseEntityKeyJson(def, m.key)[field];
    byText.set(keyText(v), m.key);
    return v;
  });
  const select =
    `SELECT ${selectList(def, "dump", { seq: dumpHasSeq(ctx, def) })} FROM ${tableRef(ctx, dumpTableName(def))} ` +
    `WHERE ${quoteId(field)} IN ? AND day = ? AND fetched_at >= ? AND fetched_at < ?`;
  const out = new Map<string, MergeRow[]>(marks.map((m) => [m.key, []]));
  try {
    const params = [values, dayOf(start), new Date(start), new Date(end)];
    for await (const page of pages(ctx.client, select, params, `reading dump rows of ${def.name}`)) {
      for (const r of page) {
        const key = byText.get(keyText(r.get(field)));
        if (key !== undefined) out.get(key)?.push(dumpRowToMerge(def, r));
      }
    }
  } catch {
    return undefined;
  }
  return out;
}

async function cleanOne(
  ctx: DataContext,
  def: TypeDef,
  mark: DirtyMark,
  nowMs: number,
  read?: MergeRow[],
): Promise<CleanedEntity | undefined> {
  const rows = read ?? (await readWindowRows(ctx, def, mark));
  // Rows gone (expired or deleted): keep the clean row, which outlives the dump by design.
  if (rows.length === 0) return undefined;
  const { values, provenance } = mergeRows(def, rows);
  const key = parseEntityKeyJson(def, mark.key);
  // An operator's values win over every source, field by field, until cleared.
  for (const [field, value] of Object.entries(await readOverrides(ctx, def, key, mark.manual === true))) {
    values[field] = value;
    provenance[field] = MANUAL_PROVENANCE;
  }
  const fields = valueFieldsOf(def);
  const columns = [...def.key, "bucket", "window_start", ...fields, "merged_at", "sources", "provenance"];
  const insert = cachedQuery(
    def,
    ctx,
    "clean-insert",
    () =>
      `INSERT INTO ${tableRef(ctx, cleanTableName(def))} (${columns.map(quoteId).join(", ")}) ` +
      `VALUES (${columns.map(() => "?").join(", ")})`,
  );
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
  const table = tableRef(ctx, cleanTableName(def));
  const view = pendingView(
    pendingEntity(table, mark.key),
    CLEAN_ORDER,
    new Map(columns.map((c, i) => [c, params[i]])),
    true,
  );
  await Promise.all([
    ctx.queue.write(
      [
        {
          partition: `${table}\u0000${mark.key}\u0000${dayOf(mark.windowStart)}`,
          statement: { query: insert, params },
          view,
        },
      ],
      `writing clean row of ${def.name}`,
    ),
    writeEntityDays(
      ctx,
      entityDayWrites(ctx, def, "clean", [{ key, keyJson: mark.key, day: dayOf(mark.windowStart) }], nowMs),
    ),
  ]);
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
    seq: (row.get("seq") as number | undefined) ?? 0,
    values,
  };
}
