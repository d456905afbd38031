import { componentError } from "@machina/config";
import { cursorOrder, type CursorKind, type CursorOrder, type CursorValue } from "./cursor-order";
import type { IncrementalInput } from "./incremental-schema";

/** A query's compiled `incremental`: which record field its cursor follows, and where it starts. */
export interface IncrementalSpec {
  /** The record field whose greatest stored value is the cursor. */
  readonly field: string;
  /** The entity type whose records carry it. */
  readonly type: string;
  readonly kind: CursorKind;
  /** The value before anything is stored. */
  readonly initial: CursorValue;
  readonly initialOrder: CursorOrder;
}

/**
 * Compiles a validated `incremental` of a query that extracts `types`; `where` is its config path
 * (`queries.q.incremental`). The type must be one the query extracts, else no answer would ever
 * move the cursor.
 */
export function incrementalOf(
  v: IncrementalInput,
  types: readonly string[],
  origin: string,
  where: string,
): IncrementalSpec {
  const distinct = [...new Set(types)];
  let type = v.type;
  if (type === undefined) {
    if (distinct.length !== 1)
      throw componentError(
        origin,
        `${where}.type`,
        distinct.length === 0
          ? "the query extracts no records, so no answer could move its cursor; add an extract entry"
          : `is required: the query extracts ${distinct.join(", ")}; name the one whose records carry ${v.field}`,
      );
    type = distinct[0];
  } else if (!distinct.includes(type))
    throw componentError(
      origin,
      `${where}.type`,
      `the query extracts no ${type} records (it extracts ${distinct.join(", ") || "none"}), so its cursor would never move`,
    );
  // The schema has checked `initial` against `compare`.
  const initialOrder = cursorOrder(v.compare, v.initial) as CursorOrder;
  return { field: v.field, type, kind: v.compare, initial: v.initial, initialOrder };
}
