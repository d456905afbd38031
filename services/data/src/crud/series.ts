// data.series.<type>: one numeric field of one entity over a time range, as float64 columns.
//
// Each day partition of the range is read with `WHERE <key> = ? AND <day> = ? AND <time> >= ?
// AND <time> < ? ORDER BY <time> ASC` (one partition, so ASC on the DESC clustering column is a
// reversed read, which Cassandra and ScyllaDB both serve), selecting only the time column and the
// field. Rows go straight from the driver's pages into two Float64Arrays. Only the days the entity
// index names are read (plus, like every read, the whole horizon while the index may miss rows),
// several at once: the day being consumed keeps its next page in flight, the next days have their
// first page in flight, and output stays in day order. Days with writes still in this replica's
// operation queue are read whole and merged with them (read-your-writes), as data.read does.
import { createHash } from "node:crypto";
import { endianness } from "node:os";
import { closestWord } from "@machina/config";
import type { StoreName } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { DAY_MS, dayOf, entityKeyJson, isField, quoteId, type CqlValue, type FieldType, type TypeDef } from "../schema";
import {
  CLEAN_ORDER,
  DUMP_ORDER,
  dumpHasSeq,
  entityDays,
  execute,
  mergePending,
  pages,
  resolveType,
  valueFieldsOf,
  type CqlRow,
  type DataContext,
  type PendingView,
} from "../store";
import { keyOf } from "./criteria";
import { horizon, partitionParams, partitionWhere, queuedWrites, storeTable } from "./entity-scan";

/** A series request, as `SeriesRequest` carries it. */
export interface SeriesOptions {
  /** Every key field of the type, and nothing else. */
  key: Record<string, unknown> | null;
  /** A declared non-key field of type int, bigint, double, boolean (0/1) or timestamp (epoch ms). */
  field: string;
  /** Epoch ms, inclusive; 0 or absent: the store's horizon (the oldest day a read of the store walks). */
  from?: number;
  /** Epoch ms, exclusive; 0 or absent: now (pinned by the first page for the pages after it). */
  to?: number;
  /** "clean" (default, also "") or "dump". */
  store?: string;
  /** Points per page, 1–50,000; 0 or absent: 50,000. */
  limit?: number;
  /** "" for the first page, else the `next` of the previous page. */
  page?: string;
}

/** One page of a series, oldest point first. */
export interface SeriesPage {
  /** Epoch ms, ascending (clean: window start; dump: fetched_at; ties in clustering order). */
  readonly times: Float64Array;
  /** The field's value at each time; NaN where it is null. */
  readonly values: Float64Array;
  /** Token of the following page; "" on the last. */
  readonly next: string;
}

/** Most points one page holds (two float64 columns: 800 kB, under the NATS payload limit). */
export const MAX_SERIES_LIMIT = 50_000;

/** Field types a series reads, and how each becomes a float64. */
export const SERIES_FIELD_TYPES: readonly FieldType[] = ["int", "bigint", "double", "boolean", "timestamp"];

// Rows per page of the day being consumed. Measured against Cassandra 5 on 2 cores it shares with
// the server, 100,000–200,000 points: pages of 5,000 to 50,000 rows, 1 to 8 days in flight and
// eachRow instead of execute all read alike, 0.25–0.45 M points/s, bound by the server; the driver
// spends ~1 µs a row building its Row (filling the columns is ~0.2 µs). Larger pages only cost memory.
const FETCH_SIZE = 10_000;
// Rows of the first page of a day read ahead of the one being consumed: enough to hide the round
// trip at a day boundary, little to throw away when the reply fills up before that day is reached.
const PREFETCH_SIZE = 1_000;
// Smallest page asked for, so a page that needs a handful more rows is not one round trip per row.
const MIN_FETCH = 100;
// Day partitions with a read in flight at once (the one consumed keeps one page ahead): on a
// cluster the partitions live on several nodes and cores, which a single stream would leave idle.
const LANES = 4;
// Latest time a series may name: year 10000, past which day partitions have no `YYYY-MM-DD` name.
const MAX_TIME = 253_402_300_800_000;
const TOKEN_VERSION = 1;

const LITTLE_ENDIAN = endianness() === "LE";

/**
 * The bytes of a float64 column as SeriesReply carries them: little-endian. On a little-endian
 * host (every platform Node ships for x86 and arm) they are the array's own memory, not a copy.
 */
export function seriesBytes(column: Float64Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(column.buffer, column.byteOffset, column.length * 8);
  const out = new Uint8Array(column.length * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < column.length; i++) view.setFloat64(i * 8, column[i], true);
  return out;
}

/** Reads one page of a series; NOT_FOUND for an unknown type, BAD_REQUEST naming the request field at fault. */
export async function readSeries(
  ctx: DataContext,
  type: string,
  options: SeriesOptions,
  nowMs = Date.now(),
): Promise<SeriesPage> {
  const def = resolveType(ctx, type);
  const plan = planSeries(ctx, def, options, nowMs);
  // Queued writes are taken before anything is read: one stored meanwhile is then read as stored,
  // or shown from the queue over its stored row, never missed.
  const queued = queuedWrites(ctx, def, plan.store, plan.key);
  if (plan.start >= plan.to) return emptyPage();
  const days = await seriesDays(ctx, plan, queued, nowMs);
  if (days.length === 0) return emptyPage();
  return collect(ctx, plan, days, queued);
}

// ---- the request ----

/** Where a page resumes: after `k` points at time `t` (ties included), with `to` pinned by the first page. */
interface Resume {
  readonly t: number;
  readonly k: number;
  readonly to: number;
}

interface Plan {
  readonly def: TypeDef;
  readonly store: StoreName;
  readonly key: Record<string, CqlValue>;
  readonly field: string;
  readonly timeColumn: "window_start" | "fetched_at";
  readonly value: (v: unknown) => number;
  /** Start of the range, inclusive (the request's from, or the horizon). */
  readonly from: number;
  /** Where this page starts reading: from, or the resumed point's time. */
  readonly start: number;
  readonly to: number;
  readonly limit: number;
  readonly resume: Resume | null;
  /** Hash of what a token is valid for (type, key, field, store, from and to as asked). */
  readonly identity: string;
}

function planSeries(ctx: DataContext, def: TypeDef, options: SeriesOptions, nowMs: number): Plan {
  const bad = (field: string, message: string, details: Record<string, unknown> = {}): never => {
    throw new MachinaError("BAD_REQUEST", `type ${def.name}: ${field}: ${message}`, {
      details: { type: def.name, field, ...details },
    });
  };
  const store = seriesStore(def, options.store);
  const key = seriesKey(def, options.key);
  const field = seriesField(def, options.field);
  const timeOption = (name: "from" | "to", v: unknown): number => {
    if (v === undefined || v === null) return 0;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > MAX_TIME) {
      bad(
        name,
        `expected epoch milliseconds from 0 to ${MAX_TIME} (0: ${name === "from" ? "the horizon" : "now"}), got ${show(v)}`,
      );
    }
    return v as number;
  };
  const askedFrom = timeOption("from", options.from);
  const askedTo = timeOption("to", options.to);
  if (askedFrom > 0 && askedTo > 0 && askedTo <= askedFrom) {
    bad("to", `${askedTo} is not after from ${askedFrom}; the range is [from, to)`, { from: askedFrom, to: askedTo });
  }
  const limit =
    options.limit === undefined || options.limit === null || options.limit === 0 ? MAX_SERIES_LIMIT : options.limit;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > MAX_SERIES_LIMIT) {
    bad("limit", `expected an integer from 1 to ${MAX_SERIES_LIMIT} (0: ${MAX_SERIES_LIMIT}), got ${show(limit)}`);
  }
  const keyJson = entityKeyJson(def, key);
  const identity = createHash("sha256")
    .update(JSON.stringify([def.name, keyJson, field, store, askedFrom, askedTo]))
    .digest("base64url")
    .slice(0, 11);
  const resume = parseToken(def, options.page, identity);
  const oldest = horizon(ctx, def, store, nowMs).at(-1) as string;
  const from = askedFrom > 0 ? askedFrom : Date.parse(`${oldest}T00:00:00Z`);
  const to = resume !== null ? resume.to : askedTo > 0 ? askedTo : Math.min(nowMs, MAX_TIME);
  return {
    def,
    store,
    key,
    field,
    timeColumn: store === "dump" ? "fetched_at" : "window_start",
    value: converter(def.fields[field]),
    from,
    start: resume === null ? from : Math.max(from, resume.t),
    to,
    limit: limit as number,
    resume,
    identity,
  };
}

function seriesStore(def: TypeDef, store: unknown): StoreName {
  if (store === undefined || store === null || store === "" || store === "clean") return "clean";
  if (store === "dump") return "dump";
  throw new MachinaError(
    "BAD_REQUEST",
    `type ${def.name}: store: unknown store ${show(store)}; expected "clean" (merged windows, the default) or "dump" (raw records)`,
    { details: { type: def.name, field: "store", known: ["clean", "dump"] } },
  );
}

function seriesKey(def: TypeDef, input: unknown): Record<string, CqlValue> {
  const given = typeof input === "object" && input !== null && !Array.isArray(input) ? input : {};
  for (const f of Object.keys(given)) {
    if (!def.key.includes(f)) {
      throw new MachinaError(
        "BAD_REQUEST",
        `type ${def.name}: key: ${show(f)} is not a key field; a series names one entity by its key (${def.key.join(", ")}) and nothing else`,
        { details: { type: def.name, field: "key", key: def.key } },
      );
    }
  }
  return keyOf(def, given as Record<string, unknown>);
}

/** Declared non-key fields a series can read, in declared order. */
export function numericFields(def: TypeDef): string[] {
  return valueFieldsOf(def).filter((f) => SERIES_FIELD_TYPES.includes(def.fields[f]));
}

function seriesField(def: TypeDef, field: unknown): string {
  const numeric = numericFields(def);
  const refuse = (problem: string): never => {
    const listed =
      numeric.length > 0
        ? `numeric fields of ${def.name}: ${numeric.join(", ")}`
        : `type ${def.name} has no numeric field (${SERIES_FIELD_TYPES.join(", ")})`;
    throw new MachinaError("BAD_REQUEST", `type ${def.name}: field: ${problem}; ${listed}`, {
      details: { type: def.name, field: "field", numeric },
    });
  };
  if (typeof field !== "string" || field === "") return refuse("name the numeric field to read");
  if (!isField(def, field)) {
    const near = closestWord(field, numeric);
    return refuse(`type ${def.name} has no field ${show(field)}${near === null ? "" : ` (did you mean "${near}"?)`}`);
  }
  if (def.key.includes(field)) return refuse(`"${field}" is a key field, the same in every row`);
  if (!SERIES_FIELD_TYPES.includes(def.fields[field])) {
    return refuse(
      `"${field}" is ${def.fields[field]}; a series reads int, bigint, double, boolean (as 0/1) or timestamp (as epoch ms)`,
    );
  }
  return field;
}

// Driver value → float64; null (or unset) → NaN. A bigint past 2^53 rounds, as any float64 does.
function converter(type: FieldType): (v: unknown) => number {
  switch (type) {
    case "bigint":
      return (v) => (v === null || v === undefined ? NaN : Number(v as bigint));
    case "boolean":
      return (v) => (v === null || v === undefined ? NaN : v === true ? 1 : 0);
    case "timestamp":
      return (v) => (v === null || v === undefined ? NaN : (v as Date).getTime());
    default:
      return (v) => (v === null || v === undefined ? NaN : (v as number));
  }
}

// ---- page tokens: base64url of JSON [version, t, k, to, identity] ----

function makeToken(plan: Plan, t: number, k: number): string {
  return Buffer.from(JSON.stringify([TOKEN_VERSION, t, k, plan.to, plan.identity])).toString("base64url");
}

function parseToken(def: TypeDef, page: unknown, identity: string): Resume | null {
  if (page === undefined || page === null || page === "") return null;
  const refuse = (why: string): never => {
    throw new MachinaError(
      "BAD_REQUEST",
      `type ${def.name}: page: ${show(page)} ${why}; pass the "next" of the previous reply with the same key, field, store, from and to, or "" for the first page`,
      { details: { type: def.name, field: "page" } },
    );
  };
  if (typeof page !== "string" || page.length > 200 || !/^[A-Za-z0-9_-]+$/.test(page))
    return refuse("is not a page token of a series");
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(page, "base64url").toString("utf8"));
  } catch {
    return refuse("is not a page token of a series");
  }
  const isTime = (v: unknown): v is number =>
    typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= MAX_TIME;
  if (!Array.isArray(parsed) || parsed.length !== 5 || parsed[0] !== TOKEN_VERSION)
    return refuse("is not a page token of a series");
  const [, t, k, to, id] = parsed as unknown[];
  if (!isTime(t) || !isTime(to) || t >= to || typeof k !== "number" || !Number.isSafeInteger(k) || k < 1)
    return refuse("is not a page token of a series");
  if (id !== identity) return refuse("is a page token of another series");
  return { t, k, to };
}

// ---- which day partitions ----

// The days of [start, to) that may hold the entity's rows, oldest first: those the entity index
// names; while the index may miss rows (entity unknown to it, or an index younger than the
// horizon) every day of the horizon in range too, as reads do; and days with queued writes.
async function seriesDays(
  ctx: DataContext,
  plan: Plan,
  queued: readonly PendingView[],
  nowMs: number,
): Promise<string[]> {
  const { def, store } = plan;
  const first = dayOf(plan.start);
  const last = dayOf(plan.to - 1);
  const inRange = (d: string) => d >= first && d <= last;
  const all = horizon(ctx, def, store, nowMs);
  const since = ctx.indexSince.get(def.name) ?? nowMs;
  const known = await entityDays(ctx, def, store, plan.key);
  const days = new Set<string>();
  for (const d of known ?? []) if (inRange(d)) days.add(d);
  if (known === null || nowMs - since < all.length * DAY_MS) for (const d of all) if (inRange(d)) days.add(d);
  for (const v of queued) if (inRange(v.day)) days.add(v.day);
  return [...days].sort();
}

// ---- reading ----

/** Points collected so far, ascending. */
class Columns {
  times: Float64Array;
  values: Float64Array;
  n = 0;

  constructor(capacity: number) {
    this.times = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
  }

  grow(): void {
    const times = new Float64Array(this.times.length * 2);
    const values = new Float64Array(this.values.length * 2);
    times.set(this.times);
    values.set(this.values);
    this.times = times;
    this.values = values;
  }
}

/** One page of a day partition: driver rows in ascending time, or a merged day as columns. */
type DayPage =
  | { readonly rows: readonly CqlRow[]; readonly pageState: string | null }
  | { readonly times: Float64Array; readonly values: Float64Array };

interface DayReader {
  readonly day: string;
  readonly lo: number;
  readonly hi: number;
  /** The page in flight, or null when the next one is not asked for yet. */
  next: Promise<DayPage> | null;
  pageState: string | null;
}

async function collect(
  ctx: DataContext,
  plan: Plan,
  days: readonly string[],
  queued: readonly PendingView[],
): Promise<SeriesPage> {
  const { limit, resume } = plan;
  const skipAt = resume?.t ?? NaN;
  const skipMax = resume?.k ?? 0;
  // Sized for a small series, doubling up to the page as rows come.
  const out = new Columns(Math.min(limit + skipMax + 1, 8_192));
  // Points at the resumed time seen first (the ones a previous page returned are among them).
  let head = 0;
  // Points this page returns, so far.
  const have = () => out.n - Math.min(skipMax, head);
  // Rows still wanted: the page, the points to skip, and one more to tell whether another page follows.
  const wanted = (coming: number) => limit + 1 + skipMax - out.n - coming;
  const lanes = Math.max(1, Math.min(LANES, ctx.concurrency));
  const queuedByDay = new Map<string, PendingView[]>();
  for (const v of queued) {
    const list = queuedByDay.get(v.day);
    if (list === undefined) queuedByDay.set(v.day, [v]);
    else list.push(v);
  }

  // Asks for a day's next page, of at most `size` rows, `coming` rows being read but not yet taken.
  const ask = (r: DayReader, size: number, coming = 0): Promise<DayPage> => {
    const p = fetchDayPage(ctx, plan, r, Math.max(MIN_FETCH, Math.min(size, wanted(coming))));
    p.catch(() => undefined); // read ahead and maybe never awaited: its failure must not go unhandled
    return p;
  };
  // Starts reading a day: a whole page for the one consumed first, a short one for those read ahead.
  const open = (day: string, size: number): DayReader => {
    const start = Date.parse(`${day}T00:00:00Z`);
    const r: DayReader = {
      day,
      lo: Math.max(plan.start, start),
      hi: Math.min(plan.to, start + DAY_MS),
      next: null,
      pageState: null,
    };
    const pending = queuedByDay.get(day);
    if (pending !== undefined) {
      r.next = mergedDay(ctx, plan, r, pending);
      r.next.catch(() => undefined);
    } else r.next = ask(r, size);
    return r;
  };

  const readers: DayReader[] = [];
  let opened = 0;
  while (readers.length < lanes && opened < days.length)
    readers.push(open(days[opened++], opened === 1 ? FETCH_SIZE : PREFETCH_SIZE));
  let more = false;
  let lastT = NaN;
  // Adds one point; false once the page is full and `t` starts a new time (runs of one time stay whole).
  const take = (t: number, v: number): boolean => {
    if (t !== lastT && have() >= limit) return false;
    if (out.n === out.times.length) out.grow();
    out.times[out.n] = t;
    out.values[out.n] = v;
    if (out.n === head && t === skipAt) head++;
    out.n++;
    lastT = t;
    return true;
  };
  const { timeColumn, field, value } = plan;
  reading: while (readers.length > 0) {
    const r = readers[0];
    const page = await (r.next ?? ask(r, FETCH_SIZE));
    r.next = null;
    if ("rows" in page) {
      r.pageState = page.pageState;
      // The next page goes out before this one is consumed, if this one may not fill the reply.
      if (page.pageState !== null && wanted(page.rows.length) > 0) r.next = ask(r, FETCH_SIZE, page.rows.length);
      const rows = page.rows;
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i] as unknown as Record<string, unknown>;
        if (!take((row[timeColumn] as Date).getTime(), value(row[field]))) {
          more = true;
          break reading;
        }
      }
      if (page.pageState !== null) continue;
    } else {
      for (let i = 0; i < page.times.length; i++) {
        if (!take(page.times[i], page.values[i])) {
          more = true;
          break reading;
        }
      }
    }
    readers.shift();
    if (opened < days.length) readers.push(open(days[opened++], PREFETCH_SIZE));
  }

  orderTies(out);
  const skip = Math.min(skipMax, head);
  const count = Math.min(limit, out.n - skip);
  const times = out.times.subarray(skip, skip + count);
  const values = out.values.subarray(skip, skip + count);
  more ||= out.n - skip > count;
  if (!more || count === 0) return { times, values, next: "" };
  const t = times[count - 1];
  let k = 0;
  while (k < count && times[count - 1 - k] === t) k++;
  if (t === skipAt) k += skip;
  return { times, values, next: makeToken(plan, t, k) };
}

// Rows of one time come from an ascending read in reverse clustering order (dump: source, query,
// seq descending); each run of equal times is turned around, so ties keep their stored order.
function orderTies(out: Columns): void {
  const { times, values, n } = out;
  let i = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && times[j] === times[i]) j++;
    if (j - i > 1) values.subarray(i, j).reverse();
    i = j;
  }
}

function fetchDayPage(ctx: DataContext, plan: Plan, r: DayReader, fetchSize: number): Promise<DayPage> {
  const { def, store, timeColumn } = plan;
  const { table, dayColumn } = storeTable(ctx, def, store);
  const query =
    `SELECT ${timeColumn}, ${quoteId(plan.field)} FROM ${table} WHERE ${partitionWhere(def, dayColumn)} ` +
    `AND ${timeColumn} >= ? AND ${timeColumn} < ? ORDER BY ${timeColumn} ASC`;
  const params = [...partitionParams(def, plan.key, r.day), new Date(r.lo), new Date(r.hi)];
  return execute(ctx.client, query, params, `reading a ${store} series of ${def.name}`, {
    fetchSize,
    autoPage: false,
    ...(r.pageState === null ? {} : { pageState: r.pageState }),
  }).then((rs) => ({ rows: rs.rows, pageState: rs.pageState ?? null }));
}

// A day with queued writes of the entity: its stored rows in range (newest first, as the queue's
// views merge) with the queued ones applied, as ascending columns.
async function mergedDay(
  ctx: DataContext,
  plan: Plan,
  r: DayReader,
  pending: readonly PendingView[],
): Promise<DayPage> {
  const { def, store, timeColumn, field, value } = plan;
  const { table, dayColumn } = storeTable(ctx, def, store);
  const ids =
    store === "dump"
      ? ["day", "fetched_at", "source", "query", ...(dumpHasSeq(ctx, def) ? ["seq"] : [])]
      : ["bucket", "window_start"];
  const query =
    `SELECT ${[...ids, field].map(quoteId).join(", ")} FROM ${table} WHERE ${partitionWhere(def, dayColumn)} ` +
    `AND ${timeColumn} >= ? AND ${timeColumn} < ?`;
  const params = [...partitionParams(def, plan.key, r.day), new Date(r.lo), new Date(r.hi)];
  const stored = async function* () {
    for await (const page of pages(ctx.client, query, params, `reading a ${store} series of ${def.name}`, FETCH_SIZE))
      yield* page;
  };
  const ts: number[] = [];
  const vs: number[] = [];
  const order = store === "dump" ? DUMP_ORDER : CLEAN_ORDER;
  for await (const row of mergePending(stored(), pending, new Set([r.day]), order)) {
    const at = row.get(timeColumn);
    const t = at instanceof Date ? at.getTime() : Number(at);
    if (t >= r.lo && t < r.hi) {
      ts.push(t);
      vs.push(value(row.get(field)));
    }
  }
  // Newest first, ties in clustering order → ascending, ties reversed, as an ascending read gives them.
  const n = ts.length;
  const times = new Float64Array(n);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    times[i] = ts[n - 1 - i];
    values[i] = vs[n - 1 - i];
  }
  return { times, values };
}

function emptyPage(): SeriesPage {
  return { times: new Float64Array(0), values: new Float64Array(0), next: "" };
}

function show(v: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
