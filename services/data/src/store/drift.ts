import { DRIFT_TABLE, type TypeDef } from "../schema";
import { execute } from "./cql-exec";
import { mapLimit } from "./concurrency";
import { tableRef, type DataContext } from "./data-context";

/** A field records carry that their type does not declare, as the drift table keeps it. */
export interface DriftField {
  readonly field: string;
  /** Epoch ms it was first seen, by any replica. */
  readonly firstSeen: number;
  /** Epoch ms it was last seen (refreshed at most every {@link DRIFT_REFRESH_MS} per replica). */
  readonly lastSeen: number;
  /** JSON type of a value seen last: string, number, boolean, object, array or null (never the value). */
  readonly exampleType: string;
}

// Undeclared (type, field) pairs one replica records at most.
const MAX_TRACKED_FIELDS = 10_000;

/** How often one replica refreshes a field's `last_seen`. */
export const DRIFT_REFRESH_MS = 60_000;

/** JSON type name of a value: what drift keeps instead of the value itself, which may be personal. */
export function jsonTypeOf(v: unknown): string {
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v === "bigint" ? "number" : typeof v;
}

/**
 * Records undeclared fields of a type (field → JSON type of a value) in the drift table: once per
 * field and replica with its first-seen time (a lightweight transaction, so the earliest replica
 * wins), then its last-seen time at most once a minute.
 */
export async function recordDrift(
  ctx: DataContext,
  type: string,
  seen: ReadonlyMap<string, string>,
  nowMs: number,
): Promise<void> {
  const table = tableRef(ctx, DRIFT_TABLE);
  const due = [...seen].filter(([field]) => {
    const last = ctx.driftWritten.get(`${type}\u0000${field}`);
    return last === undefined || nowMs - last >= DRIFT_REFRESH_MS;
  });
  await mapLimit(due, ctx.concurrency, async ([field, exampleType]) => {
    const id = `${type}\u0000${field}`;
    if (!ctx.driftWritten.has(id)) {
      // Past this many, an upstream is sending keys that are data, not a schema: stop recording them.
      if (ctx.driftWritten.size >= MAX_TRACKED_FIELDS) return;
      const rs = await execute(
        ctx.client,
        `INSERT INTO ${table} (type, field, first_seen, last_seen, example_type) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`,
        [type, field, new Date(nowMs), new Date(nowMs), exampleType],
        `recording a new field of ${type}`,
      );
      if (rs.rows[0]?.get("[applied]") === true) {
        ctx.driftWritten.set(id, nowMs);
        return;
      }
    }
    await execute(
      ctx.client,
      `UPDATE ${table} SET last_seen = ?, example_type = ? WHERE type = ? AND field = ?`,
      [new Date(nowMs), exampleType, type, field],
      `recording a field of ${type}`,
    );
    ctx.driftWritten.set(id, nowMs);
  });
}

/** Every undeclared field seen in records of a type, by name. */
export async function readDrift(ctx: DataContext, def: TypeDef): Promise<DriftField[]> {
  const rs = await execute(
    ctx.client,
    `SELECT field, first_seen, last_seen, example_type FROM ${tableRef(ctx, DRIFT_TABLE)} WHERE type = ?`,
    [def.name],
    `reading the undeclared fields of ${def.name}`,
  );
  return rs.rows.map((r) => ({
    field: r.get("field") as string,
    firstSeen: (r.get("first_seen") as Date).getTime(),
    lastSeen: (r.get("last_seen") as Date).getTime(),
    exampleType: r.get("example_type") as string,
  }));
}
