import type { StoreName } from "@machina/subjects";
import {
  ENTITY_BUCKETS,
  entitiesTableName,
  entityKeyJson,
  localDateOf,
  quoteId,
  toPlain,
  type CqlValue,
  type TypeDef,
} from "../schema";
import { execute, type CqlStatement } from "./cql-exec";
import { tableRef, type DataContext } from "./data-context";
import { pageOptions } from "./paging";
import { keyHash } from "./key-hash";
import { cachedQuery } from "./statement-cache";

/** One (entity, UTC day) that now has rows in a store. */
export interface EntityDay {
  /** Key fields as driver values. */
  readonly key: Record<string, CqlValue>;
  /** Stable JSON of the key fields (what dirty marks carry). */
  readonly keyJson: string;
  /** `YYYY-MM-DD`. */
  readonly day: string;
}

/** A page of entity keys and the token of the next page ("" when this is the last). */
export interface KeyPage {
  readonly keys: Record<string, unknown>[];
  readonly next: string;
}

/** A statement recording entity days, with the ids this replica remembers them by once written. */
export interface EntityDayWrite {
  readonly statement: CqlStatement;
  /** The queue partition it goes in: its bucket's, so a bucket's writes share a batch (one mutation). */
  readonly partition: string;
  /** Group (type, store, day) of the entity days the statement records ({@link RecordedDays}). */
  readonly group: string;
  /** Key JSON of each entity it records on that day. */
  readonly keys: readonly string[];
  /** Epoch ms the write's TTL counts from. */
  readonly at: number;
  /** What it counts against a batch's size limit: Cassandra counts each partition's cells. */
  readonly bytes: number;
}

// A day's dump element lives this much longer than the dump TTL: a row written late on the day
// it was first recorded still expires before the element naming its day.
const DAY_SECONDS = 86_400;
// Entities one statement records, for a one-field key: `WHERE k IN ?` sets the same day on each
// row, so the client encodes one statement where it would encode this many (the index update per
// entity was a third of the data service's statements on a first sight).
const KEYS_PER_STATEMENT = 50;
// Bytes Cassandra counts per row an index statement writes, beyond its key: a set element with
// its timestamp, TTL and expiry.
const CELL_BYTES = 48;

/** Index bucket of an entity (its partition in `entity_index_<type>`). */
export function entityBucketOf(keyJson: string): number {
  return keyHash(keyJson) % ENTITY_BUCKETS;
}

// Entities of one bucket and day not yet recorded, gathered into one `IN` statement.
interface DayGroup {
  readonly bucket: number;
  readonly day: string;
  readonly keyJsons: string[];
  readonly keys: CqlValue[];
  bytes: number;
}

/**
 * Writes recording that entities have rows on these days. A day this replica already recorded is
 * skipped: its dump element's TTL outlives every row written that day. Entities of one bucket and
 * day share a statement when the key is one field; with several key fields, an IN per field would
 * name their cross product, so each entity gets its own (the queue still batches a bucket's
 * statements into one mutation).
 */
export function entityDayWrites(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  days: readonly EntityDay[],
  nowMs: number,
): EntityDayWrite[] {
  const table = tableRef(ctx, entitiesTableName(def));
  const grouped = def.key.length === 1;
  const query = cachedQuery(def, ctx, `entity-days-${store}-${grouped ? "in" : "eq"}`, () => {
    const where = grouped ? `${quoteId(def.key[0])} IN ?` : def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ");
    return store === "dump"
      ? `UPDATE ${table} USING TTL ? SET dump_days = dump_days + ? WHERE bucket = ? AND ${where}`
      : `UPDATE ${table} SET clean_days = clean_days + ? WHERE bucket = ? AND ${where}`;
  });
  const head = (day: string): unknown[] =>
    store === "dump" ? [def.dumpTtlSeconds + DAY_SECONDS, [localDateOf(day)]] : [[localDateOf(day)]];
  const partition = (bucket: number) => `${table}\u0000${bucket}`;
  const out: EntityDayWrite[] = [];
  // Per bucket and day, the entities not yet recorded: their ids and key values.
  const groups = new Map<string, DayGroup>();
  // Entities already planned in this call, by group.
  const seen = new Map<string, Set<string>>();
  const prefix = `${def.name}\u0000${store}\u0000`;
  for (const d of days) {
    const group = `${prefix}${d.day}`;
    // A write remembered for less than the TTL margin is still covered by the element it made;
    // an older one may have expired (a row written now for a day long past), so it is written again.
    if (ctx.recordedDays.has(group, d.keyJson, nowMs)) continue;
    let planned = seen.get(group);
    if (planned === undefined) seen.set(group, (planned = new Set()));
    else if (planned.has(d.keyJson)) continue;
    planned.add(d.keyJson);
    const bucket = entityBucketOf(d.keyJson);
    if (!grouped) {
      out.push({
        statement: { query, params: [...head(d.day), bucket, ...def.key.map((f) => d.key[f])] },
        partition: partition(bucket),
        group,
        keys: [d.keyJson],
        at: nowMs,
        bytes: d.keyJson.length + CELL_BYTES,
      });
      continue;
    }
    const groupId = `${bucket}\u0000${d.day}`;
    let dayGroup = groups.get(groupId);
    if (dayGroup === undefined)
      groups.set(groupId, (dayGroup = { bucket, day: d.day, keyJsons: [], keys: [], bytes: 0 }));
    dayGroup.keyJsons.push(d.keyJson);
    dayGroup.keys.push(d.key[def.key[0]]);
    dayGroup.bytes += d.keyJson.length + CELL_BYTES;
    if (dayGroup.keys.length >= KEYS_PER_STATEMENT) {
      out.push(groupWrite(dayGroup));
      groups.delete(groupId);
    }
  }
  for (const group of groups.values()) out.push(groupWrite(group));
  return out;

  function groupWrite(group: DayGroup): EntityDayWrite {
    return {
      statement: { query, params: [...head(group.day), group.bucket, group.keys] },
      partition: partition(group.bucket),
      group: `${prefix}${group.day}`,
      keys: group.keyJsons,
      at: nowMs,
      bytes: group.bytes,
    };
  }
}

/** Queues entity-day writes and, once stored, remembers them. */
export async function writeEntityDays(ctx: DataContext, writes: readonly EntityDayWrite[]): Promise<void> {
  await ctx.queue.write(
    writes.map((w) => ({ partition: w.partition, statement: w.statement, bytes: w.bytes })),
    "recording entity days",
  );
  for (const w of writes) for (const key of w.keys) ctx.recordedDays.add(w.group, key, w.at);
}

/**
 * The days on which an entity has rows in `store`, newest first, or null when the entity index
 * does not know it (an entity stored before the index existed: callers then walk every day).
 */
export async function entityDays(
  ctx: DataContext,
  def: TypeDef,
  store: StoreName,
  key: Record<string, CqlValue>,
): Promise<string[] | null> {
  const where = def.key.map((f) => `${quoteId(f)} = ?`).join(" AND ");
  const column = store === "dump" ? "dump_days" : "clean_days";
  const rs = await execute(
    ctx.client,
    `SELECT ${column} FROM ${tableRef(ctx, entitiesTableName(def))} WHERE bucket = ? AND ${where}`,
    [entityBucketOf(entityKeyJson(def, key)), ...def.key.map((f) => key[f])],
    `reading the days of an entity of ${def.name}`,
  );
  const days = rs.rows[0]?.get(column) as unknown[] | null | undefined;
  if (days === undefined || days === null || days.length === 0) return null;
  return days.map(String).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
}

/** Pages through every entity key of a type; `page` is the token a previous page returned. */
export async function listKeys(
  ctx: DataContext,
  def: TypeDef,
  options: { limit?: number; page?: string },
): Promise<KeyPage> {
  const { limit, page } = pageOptions(options);
  const columns = def.key.map(quoteId).join(", ");
  // A whole-table scan is what a listing is: paged by the driver along the token ring, each bucket
  // in key order, no filtering.
  const rs = await execute(
    ctx.client,
    `SELECT ${columns} FROM ${tableRef(ctx, entitiesTableName(def))}`,
    [],
    `listing entities of ${def.name}`,
    { fetchSize: limit, autoPage: false, ...(page === "" ? {} : { pageState: page }) },
  );
  const keys = rs.rows.map((r) => Object.fromEntries(def.key.map((f) => [f, toPlain(def.fields[f], r.get(f))])));
  return { keys, next: rs.pageState ?? "" };
}
