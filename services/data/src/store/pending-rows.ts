import type { PendingView } from "./write-queue";

/** A row as reads use it: a stored driver row, or a queued one merged over it. */
export interface RowView {
  get(column: string): unknown;
}

/** How rows of one store are told apart and ordered. */
export interface RowOrder {
  /** Identity of a row within its entity: day partition and clustering values. */
  id(row: RowView): string;
  /** Day partition of a row. */
  day(row: RowView): string;
  /** Negative when `a` comes before `b` in the store's read order (newest first). */
  compare(a: RowView, b: RowView): number;
  /** Map columns a write adds entries to instead of replacing (clean provenance). */
  readonly appendColumns: ReadonlySet<string>;
}

interface Overlay {
  readonly day: string;
  readonly columns: Map<string, unknown>;
  /** The stored row was deleted by a queued delete before this write: nothing of it shows. */
  readonly hidesStored: boolean;
  used: boolean;
}

/**
 * Yields an entity's stored rows with its queued writes applied, in the store's order: a queued
 * upsert shows over (or instead of) the stored row it writes, a queued delete of a day partition
 * hides that day's stored rows and earlier queued ones. Only rows on `days` are shown, as a read
 * of the stored rows would.
 */
export async function* mergePending(
  stored: AsyncIterable<RowView>,
  pending: readonly PendingView[],
  days: ReadonlySet<string>,
  order: RowOrder,
): AsyncGenerator<RowView> {
  const overlays = new Map<string, Overlay>();
  const cleared = new Set<string>();
  for (const v of pending) {
    if (!days.has(v.day)) continue;
    if (v.columns === null) {
      cleared.add(v.day);
      for (const [id, o] of overlays) if (o.day === v.day) overlays.delete(id);
      continue;
    }
    const o = overlays.get(v.id);
    if (v.full === true) {
      overlays.set(v.id, { day: v.day, columns: defined(v.columns), hidesStored: true, used: false });
    } else if (o === undefined) {
      overlays.set(v.id, { day: v.day, columns: defined(v.columns), hidesStored: cleared.has(v.day), used: false });
    } else {
      for (const [c, value] of v.columns) {
        if (value === undefined) continue;
        o.columns.set(c, order.appendColumns.has(c) ? appended(o.columns.get(c), value) : value);
      }
    }
  }
  const queuedOnly = [...overlays.values()]
    .map((o) => ({ o, row: viewOf(o, null, order) }))
    .sort((a, b) => order.compare(a.row, b.row));
  let next = 0;
  for await (const row of stored) {
    const id = order.id(row);
    while (next < queuedOnly.length && order.compare(queuedOnly[next].row, row) < 0) {
      const q = queuedOnly[next++];
      if (!q.o.used) yield q.row;
    }
    const o = overlays.get(id);
    if (o !== undefined) {
      o.used = true;
      yield viewOf(o, o.hidesStored ? null : row, order);
    } else if (!cleared.has(order.day(row))) {
      yield row;
    }
  }
  for (; next < queuedOnly.length; next++) if (!queuedOnly[next].o.used) yield queuedOnly[next].row;
}

function defined(columns: ReadonlyMap<string, unknown>): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [c, v] of columns) if (v !== undefined) out.set(c, v);
  return out;
}

function appended(base: unknown, add: unknown): unknown {
  if (!isMap(base) || !isMap(add)) return add;
  return { ...base, ...add };
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

// A queued row over its stored base (null: none, or deleted): queued columns win, map columns add up.
function viewOf(o: Overlay, base: RowView | null, order: RowOrder): RowView {
  return {
    get(column: string): unknown {
      const stored: unknown = base?.get(column) ?? null;
      if (!o.columns.has(column)) return stored;
      const value = o.columns.get(column);
      return order.appendColumns.has(column) ? appended(stored, value) : value;
    },
  };
}

const ms = (v: unknown): number => (v instanceof Date ? v.getTime() : Number(v));
const text = (v: unknown): string => (v === null || v === undefined ? "" : String(v));
const byText = (a: unknown, b: unknown): number => {
  const x = text(a);
  const y = text(b);
  return x < y ? -1 : x > y ? 1 : 0;
};

/** Dump rows: one per (day, fetched_at, source, query, seq), newest fetch first. */
export const DUMP_ORDER: RowOrder = {
  id: (r) =>
    [text(r.get("day")), ms(r.get("fetched_at")), text(r.get("source")), text(r.get("query")), text(r.get("seq"))].join(
      "\u0000",
    ),
  day: (r) => text(r.get("day")),
  compare: (a, b) =>
    ms(b.get("fetched_at")) - ms(a.get("fetched_at")) ||
    byText(a.get("source"), b.get("source")) ||
    byText(a.get("query"), b.get("query")) ||
    Number(a.get("seq") ?? 0) - Number(b.get("seq") ?? 0),
  appendColumns: new Set(),
};

/** Clean rows: one per (bucket, window_start), newest window first. */
export const CLEAN_ORDER: RowOrder = {
  id: (r) => `${text(r.get("bucket"))}\u0000${ms(r.get("window_start"))}`,
  day: (r) => text(r.get("bucket")),
  compare: (a, b) => ms(b.get("window_start")) - ms(a.get("window_start")),
  appendColumns: new Set(["provenance"]),
};

/** The view of a queued write of `columns` (column → driver value) into the entity's rows. */
export function pendingView(
  entity: string,
  order: RowOrder,
  columns: ReadonlyMap<string, unknown>,
  full = false,
): PendingView {
  const row: RowView = { get: (c) => columns.get(c) };
  return { entity, id: order.id(row), day: order.day(row), columns, full };
}

/**
 * The columns of a statement's bound values as a read-only map, sharing the statement's column
 * positions: a Map of its own for every queued row was a tenth of the store path's garbage.
 */
export class BoundColumns implements ReadonlyMap<string, unknown> {
  constructor(
    private readonly positions: ReadonlyMap<string, number>,
    private readonly params: readonly unknown[],
  ) {}

  get size(): number {
    return this.positions.size;
  }

  get(column: string): unknown {
    const i = this.positions.get(column);
    return i === undefined ? undefined : this.params[i];
  }

  has(column: string): boolean {
    return this.positions.has(column);
  }

  forEach(fn: (value: unknown, column: string, map: ReadonlyMap<string, unknown>) => void): void {
    for (const [c, i] of this.positions) fn(this.params[i], c, this);
  }

  *entries(): MapIterator<[string, unknown]> {
    for (const [c, i] of this.positions) yield [c, this.params[i]];
  }

  keys(): MapIterator<string> {
    return this.positions.keys();
  }

  *values(): MapIterator<unknown> {
    for (const i of this.positions.values()) yield this.params[i];
  }

  [Symbol.iterator](): MapIterator<[string, unknown]> {
    return this.entries();
  }
}
