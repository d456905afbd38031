// How the values of an incremental cursor are ordered. A value is kept as the upstream wrote it
// (the request templates send it back in the API's own format), next to an `order`: a number or
// text that compares the same way under `<` whatever the kind. Data advances cursors by `order`
// alone, so it never needs to know what kind a cursor is.

/** How cursor values compare: `timestamp` (ISO 8601 text, by instant), `number`, or `text` (code-unit order). */
export type CursorKind = "timestamp" | "number" | "text";

/** The kinds, in the order the docs list them. */
export const CURSOR_KINDS = ["timestamp", "number", "text"] as const satisfies readonly CursorKind[];

/** A cursor value as a record carries it and a template renders it. */
export type CursorValue = string | number;

/** The comparable form of a cursor value: epoch ms for timestamps, the number, or the text itself. */
export type CursorOrder = number | string;

// A calendar date with an optional time and zone: what ISO 8601 / RFC 3339 timestamps look like.
// Date.parse alone also takes "March 7" or "1", which as a cursor would be a silent mistake.
const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;
const DECIMAL = /^-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$/i;

/** Why `v` is not a cursor value of `kind`, or null when it is one. */
export function cursorProblem(kind: CursorKind, v: unknown): string | null {
  return orderOf(kind, v) === null ? expected(kind, v) : null;
}

/** The comparable form of `v` under `kind`, or null when `v` is not such a value. */
export function cursorOrder(kind: CursorKind, v: unknown): CursorOrder | null {
  return orderOf(kind, v);
}

/** The cursor value with the greatest order among `values` (ties keep the first), or null when none is one of `kind`. */
export function greatestCursor(
  kind: CursorKind,
  values: Iterable<unknown>,
): { value: CursorValue; order: CursorOrder } | null {
  let best: { value: CursorValue; order: CursorOrder } | null = null;
  for (const v of values) {
    const order = orderOf(kind, v);
    if (order === null) continue;
    if (best === null || order > best.order) best = { value: v as CursorValue, order };
  }
  return best;
}

function orderOf(kind: CursorKind, v: unknown): CursorOrder | null {
  switch (kind) {
    case "timestamp": {
      if (typeof v !== "string" || !ISO_TIMESTAMP.test(v.trim())) return null;
      const t = Date.parse(v.trim());
      return Number.isFinite(t) ? t : null;
    }
    case "number": {
      const n = typeof v === "number" ? v : typeof v === "string" && DECIMAL.test(v.trim()) ? Number(v) : NaN;
      return Number.isFinite(n) ? n : null;
    }
    case "text":
      return typeof v === "string" && v !== "" ? v : null;
  }
}

function expected(kind: CursorKind, v: unknown): string {
  const got = typeof v === "string" ? JSON.stringify(v) : v === null ? "null" : typeof v;
  switch (kind) {
    case "timestamp":
      return `expected an ISO 8601 timestamp such as 2024-01-01T00:00:00Z, got ${got}${typeof v === "number" ? " (for epoch numbers write compare: number)" : ""}`;
    case "number":
      return `expected a number, got ${got}`;
    case "text":
      return `expected non-empty text, got ${got}`;
  }
}
