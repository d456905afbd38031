import type cassandra from "cassandra-driver";
import { MachinaError } from "@machina/wire";
import {
  dayOf,
  dumpTableName,
  entityKeyJson,
  isField,
  keyValues,
  localDateOf,
  quoteId,
  toCql,
  windowStartOf,
  type CqlValue,
  type TypeDef,
} from "../schema";
import { resolveType, tableRef, type DataContext } from "./data-context";
import { BoundColumns, DUMP_ORDER, pendingView } from "./pending-rows";
import { pendingEntity, type QueuedWrite } from "./write-queue";
import { dumpHasSeq } from "./row-format";
import { markDirty, type DirtyMark } from "./dirty-marks";
import { entityDayWrites, writeEntityDays, type EntityDay } from "./entities";
import { jsonTypeOf, recordDrift } from "./drift";

/** One raw answer to store. */
export interface DumpRow {
  /** Epoch milliseconds the answer was fetched. */
  fetchedAt: number;
  source: string;
  query: string;
  taskId: string;
  record: Record<string, unknown>;
  /** Position of the record in its answer; several records of one entity in one answer are kept apart by it. Default: its index in the rows given. */
  seq?: number;
}

/** Outcome of {@link writeDump}. */
export interface WriteDumpResult {
  written: number;
  /** Record fields the type does not declare, summed over rows; they are not stored. */
  ignoredFields: number;
}

/** Dump rows checked and turned into statements, ready to be stored with others ({@link storeDumps}). */
export interface PreparedDump {
  readonly type: string;
  /** Insert statements, each naming its partition (type, entity key, day) and what reads see while it is queued. */
  readonly writes: readonly QueuedWrite[];
  readonly marks: readonly DirtyMark[];
  /** Entity days the rows fall on, for the entity index. */
  readonly days: readonly EntityDay[];
  readonly written: number;
  /** Record fields the type does not declare, summed over rows; they are not stored. */
  readonly ignoredFields: number;
  /** Those fields by name: how many rows carried each, and the JSON type of a value of it. */
  readonly undeclared: ReadonlyMap<string, { count: number; exampleType: string }>;
}

// Undeclared field names kept per prepared dump; more is an upstream sending data as keys.
const MAX_UNDECLARED = 100;

/** Validates, coerces and stores dump rows (one unlogged batch per partition), then marks their entity windows dirty. */
export async function writeDump(ctx: DataContext, type: string, rows: readonly DumpRow[]): Promise<WriteDumpResult> {
  const prepared = prepareDump(ctx, type, rows);
  await storeDumps(ctx, [prepared]);
  return { written: prepared.written, ignoredFields: prepared.ignoredFields };
}

/** A row {@link prepareDumpRows} refused, by its index in the rows given. */
export interface RefusedRow {
  readonly index: number;
  /** BAD_REQUEST naming the row and the field. */
  readonly error: MachinaError;
}

/**
 * Validates and coerces dump rows into insert statements without writing anything, so a bad row
 * fails its own message before it joins a group written with others.
 */
export function prepareDump(ctx: DataContext, type: string, rows: readonly DumpRow[]): PreparedDump {
  const { prepared, refused } = prepareDumpRows(ctx, type, rows);
  if (refused.length > 0) throw refused[0].error;
  return prepared;
}

/**
 * Like {@link prepareDump}, but a bad row is refused on its own: the others are prepared, and
 * each refused row comes back with its error (a type the data layer does not know still throws,
 * since no row of it can be stored).
 */
export function prepareDumpRows(
  ctx: DataContext,
  type: string,
  rows: readonly DumpRow[],
): { prepared: PreparedDump; refused: RefusedRow[] } {
  const def = resolveType(ctx, type);
  if (!Array.isArray(rows)) {
    throw new MachinaError("BAD_REQUEST", `type ${type}: expected a list of dump rows`, { details: { type } });
  }
  const withSeq = dumpHasSeq(ctx, def);
  const { query: insert, positions, table, valueFields } = insertCql(ctx, def, withSeq);
  const writes: QueuedWrite[] = [];
  const marks: DirtyMark[] = [];
  const days: EntityDay[] = [];
  const undeclared = new Map<string, { count: number; exampleType: string }>();
  let ignoredFields = 0;
  const refused: RefusedRow[] = [];

  rows.forEach((row, i) => {
    try {
      prepareRow(row, i);
    } catch (err) {
      if (!(err instanceof MachinaError)) throw err;
      refused.push({ index: i, error: err });
    }
  });
  const written = rows.length - refused.length;
  return { prepared: { type: def.name, writes, marks, days, written, ignoredFields, undeclared }, refused };

  // Everything a row needs is computed before any of it is kept, so a refused row leaves nothing behind.
  function prepareRow(row: DumpRow, i: number): void {
    checkRowMeta(def, row, i);
    const fetchedAt = Math.trunc(row.fetchedAt);
    const key = keyValues(def, row.record, row.source);
    const keyJson = entityKeyJson(def, key);
    const day = dayOf(fetchedAt);
    // One origin per row, named for each field in turn: it is read only when a value is refused.
    const origin = { type: def.name, field: "", source: row.source };
    const values: (CqlValue | undefined)[] = [];
    for (const field of valueFields) {
      const given = Object.hasOwn(row.record, field) ? row.record[field] : undefined;
      origin.field = field;
      const v = toCql(def.fields[field], given, origin);
      // Unset rather than null: a null would write a tombstone for every absent field of every raw row.
      values.push(v === null ? undefined : v);
    }
    const params: (CqlValue | cassandra.types.LocalDate | undefined)[] = [
      ...def.key.map((f) => key[f]),
      localDateOf(day),
      new Date(fetchedAt),
      row.source,
      row.query,
      ...(withSeq ? [row.seq ?? i] : []),
      row.taskId,
      ...values,
    ];
    const view = pendingView(pendingEntity(table, keyJson), DUMP_ORDER, new BoundColumns(positions, params));
    writes.push({ partition: `${table}\u0000${keyJson}\u0000${day}`, statement: { query: insert, params }, view });
    marks.push({ type: def.name, key: keyJson, windowStart: windowStartOf(fetchedAt, def.cleanWindowSeconds) });
    days.push({ key, keyJson, day });
    for (const field of Object.keys(row.record)) {
      if (isField(def, field)) continue;
      ignoredFields++;
      const u = undeclared.get(field);
      if (u !== undefined) u.count++;
      else if (undeclared.size < MAX_UNDECLARED)
        undeclared.set(field, { count: 1, exampleType: jsonTypeOf(row.record[field]) });
    }
  }
}

/**
 * Stores prepared dumps through the operation queue, rows of one partition batched together
 * whichever dump they came from, then marks every entity window they touch dirty once.
 */
export async function storeDumps(ctx: DataContext, dumps: readonly PreparedDump[]): Promise<void> {
  const types = [...new Set(dumps.map((d) => d.type))].join(", ");
  const now = Date.now();
  // The entity index may name a day before its rows land (a read then finds nothing there), never
  // after: rows and index go together, and reads through this replica see both while queued.
  await Promise.all([
    ctx.queue.write(
      dumps.flatMap((d) => d.writes),
      `writing dump rows of ${types}`,
    ),
    writeEntityDays(
      ctx,
      [...daysByType(dumps)].flatMap(([type, days]) => entityDayWrites(ctx, resolveType(ctx, type), "dump", days, now)),
    ),
  ]);
  for (const [type, seen] of undeclaredByType(dumps)) await recordDrift(ctx, type, seen, now);
  // Marks go after the rows are durable: a clean job that sees a mark is then sure to see its rows.
  await markDirty(
    ctx,
    dumps.flatMap((d) => d.marks),
  );
}

// Entity days of the dumps by type: the data service prepares a dump per record, and the index
// groups a type's entities of one bucket into one statement only when it sees them together.
function daysByType(dumps: readonly PreparedDump[]): Map<string, EntityDay[]> {
  const out = new Map<string, EntityDay[]>();
  for (const d of dumps) {
    const days = out.get(d.type);
    if (days === undefined) out.set(d.type, [...d.days]);
    else for (const day of d.days) days.push(day);
  }
  return out;
}

// Undeclared fields of the dumps by type: field → JSON type of a value.
function undeclaredByType(dumps: readonly PreparedDump[]): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const d of dumps) {
    if (d.undeclared.size === 0) continue;
    const seen = out.get(d.type) ?? new Map<string, string>();
    for (const [field, u] of d.undeclared) seen.set(field, u.exampleType);
    out.set(d.type, seen);
  }
  return out;
}

// Insert statements by type definition (a live change makes a new one), keyspace and layout:
// building and quoting them for every stored message was 2 % of the store path.
const insertCache = new WeakMap<TypeDef, Map<string, InsertCql>>();

interface InsertCql {
  readonly query: string;
  /** The dump table, keyspace-qualified. */
  readonly table: string;
  /** Fields that are not part of the key, in column order. */
  readonly valueFields: readonly string[];
  /** Column → position of its bound value. */
  readonly positions: ReadonlyMap<string, number>;
}

function insertCql(ctx: DataContext, def: TypeDef, withSeq: boolean): InsertCql {
  let byLayout = insertCache.get(def);
  if (byLayout === undefined) insertCache.set(def, (byLayout = new Map()));
  const layout = `${ctx.keyspace}\u0000${withSeq}`;
  let cql = byLayout.get(layout);
  if (cql === undefined) byLayout.set(layout, (cql = buildInsertCql(ctx, def, withSeq)));
  return cql;
}

function buildInsertCql(ctx: DataContext, def: TypeDef, withSeq: boolean): InsertCql {
  const valueFields = Object.keys(def.fields).filter((f) => !def.key.includes(f));
  const table = tableRef(ctx, dumpTableName(def));
  const columns = [
    ...def.key,
    "day",
    "fetched_at",
    "source",
    "query",
    ...(withSeq ? ["seq"] : []),
    "task_id",
    ...valueFields,
  ];
  return {
    table,
    valueFields,
    query:
      `INSERT INTO ${table} (${columns.map(quoteId).join(", ")}) ` + `VALUES (${columns.map(() => "?").join(", ")})`,
    positions: new Map(columns.map((c, i) => [c, i])),
  };
}

function badRow(def: TypeDef, i: number, path: string, problem: string): never {
  throw new MachinaError("BAD_REQUEST", `type ${def.name}: rows[${i}]${path === "" ? "" : `.${path}`}: ${problem}`, {
    details: { type: def.name, row: i, field: path },
  });
}

function checkRowMeta(def: TypeDef, row: DumpRow, i: number): void {
  if (typeof row !== "object" || row === null) badRow(def, i, "", "expected a dump row object");
  if (typeof row.fetchedAt !== "number" || !Number.isFinite(row.fetchedAt)) {
    badRow(def, i, "fetchedAt", "expected epoch milliseconds");
  }
  if (typeof row.source !== "string" || row.source === "") badRow(def, i, "source", "expected a non-empty source name");
  if (typeof row.query !== "string") badRow(def, i, "query", "expected the query name (text)");
  if (typeof row.taskId !== "string") badRow(def, i, "taskId", "expected the task id (text)");
  if (row.seq !== undefined && (!Number.isInteger(row.seq) || row.seq < 0 || row.seq > 0x7fffffff)) {
    badRow(def, i, "seq", "expected the record's position in its answer (an integer from 0)");
  }
  if (typeof row.record !== "object" || row.record === null || Array.isArray(row.record)) {
    badRow(def, i, "record", "expected an object of field values");
  }
}
