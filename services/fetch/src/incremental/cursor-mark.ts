// What the answers of an incremental query tell the data service, which alone moves cursors and
// only once the records are stored. Every answer (or page) with records of the cursor's type
// carries a mark on QueryResponse.cursor, which invoke copies onto the record batch of that type
// (RecordBatch.cursor): which task's window the records belong to and how many there are. The
// mark that says where the cursor moves ("expect": every page's record count and the greatest
// value) rides on the answer itself for a one-request task; a paginated task sends it in a
// message of its own once its last page is handed on, since only then is the set of pages known
// (and that last page may hold no records to carry it). Data moves the cursor when it has stored
// every record the expect names, in whatever order they arrive. A task that never finishes
// (superseded, dead-lettered) never moves it, so the next task asks for the same window again.
import type { JsonObject } from "@machina/protos";
import { greatestCursor, type CursorOrder, type CursorValue } from "./cursor-order";
import { cursorKey } from "./cursor-store";
import type { IncrementalSpec } from "./incremental-spec";

/** A cursor value with its comparable form. */
export interface RankedCursor {
  readonly value: CursorValue;
  readonly order: CursorOrder;
}

/** What an incremental fetch (or one page of it) did with its cursor. */
export interface IncrementalOutcome {
  /** The value `{{incremental.value}}` rendered. */
  readonly since: CursorValue;
  /** The entity type whose records carry the cursor field. */
  readonly type: string;
  /** Records of `type` it yielded; all of them must be stored before the cursor moves. */
  readonly total: number;
  /** The greatest cursor value among them; null when none had one. */
  readonly best: RankedCursor | null;
}

/** The outcome of records fetched with `since`. */
export function incrementalOutcome(
  spec: IncrementalSpec,
  since: CursorValue,
  records: Readonly<Record<string, readonly Record<string, unknown>[]>>,
): IncrementalOutcome {
  const list = Object.hasOwn(records, spec.type) ? records[spec.type] : [];
  const values = list.map((r) => (Object.hasOwn(r, spec.field) ? r[spec.field] : undefined));
  return { since, type: spec.type, total: list.length, best: greatestCursor(spec.kind, values) };
}

/** A paginated task's cursor progress over its pages, kept with its page progress across redeliveries. */
export interface CursorTally {
  /** The value every page renders (the first page's). */
  readonly since: CursorValue;
  readonly type: string;
  /** Records of the type by page number; pages without any are left out. */
  readonly counts: Readonly<Record<string, number>>;
  readonly best: RankedCursor | null;
}

/** `t` with page `page` counted (counting a page again changes nothing). */
export function tallyPage(t: CursorTally | null, page: number, o: IncrementalOutcome): CursorTally {
  const counts = { ...(t?.counts ?? {}) };
  if (o.total > 0) counts[String(page)] = o.total;
  else delete counts[String(page)];
  const prev = t?.best ?? null;
  const best = prev === null || (o.best !== null && o.best.order > prev.order) ? (o.best ?? prev) : prev;
  return { since: t?.since ?? o.since, type: o.type, counts, best };
}

/** A tally decoded from stored progress; null when it is not one. */
export function tallyOf(v: unknown): CursorTally | null {
  if (v === null || typeof v !== "object") return null;
  const t = v as Record<string, unknown>;
  if (!isScalar(t.since) || typeof t.type !== "string") return null;
  if (t.counts === null || typeof t.counts !== "object") return null;
  const counts = Object.entries(t.counts as Record<string, unknown>);
  if (!counts.every(([p, n]) => /^\d+$/.test(p) && Number.isSafeInteger(n) && (n as number) > 0)) return null;
  let best: RankedCursor | null = null;
  if (t.best !== null && t.best !== undefined) {
    const b = t.best as Record<string, unknown>;
    if (!isScalar(b.value) || !isScalar(b.order)) return null;
    best = { value: b.value as CursorValue, order: b.order as CursorOrder };
  }
  return { since: t.since as CursorValue, type: t.type, counts: Object.fromEntries(counts) as never, best };
}

/** Who a mark belongs to: the cursor it may move, and the task whose window it is. */
export interface MarkScope {
  readonly source: string;
  readonly query: string;
  readonly lead: string;
  /** The FetchTask's id: every page of it is one window. */
  readonly task: string;
}

/**
 * The mark of a task fetched in one request: its records and where they move the cursor once
 * stored. Null when it has no records of the type, or none with a cursor value (nothing to move to).
 */
export function answerMark(o: IncrementalOutcome, scope: MarkScope): JsonObject | null {
  if (o.total === 0 || o.best === null) return null;
  return { ...base(o.type, o.since, scope), page: 1, total: o.total, expect: expect({ "1": o.total }, o.best) };
}

/** The mark of one page of a paginated task: which of the task's records it carries. Null when it has none. */
export function pageMark(o: IncrementalOutcome, page: number, scope: MarkScope): JsonObject | null {
  if (o.total === 0) return null;
  return { ...base(o.type, o.since, scope), page, total: o.total };
}

/**
 * The mark that closes a paginated task (on a batch without records): every page's count and the
 * greatest value. Null when no page had a cursor value.
 */
export function expectMark(t: CursorTally, scope: MarkScope): JsonObject | null {
  if (t.best === null) return null;
  return { ...base(t.type, t.since, scope), page: 0, total: 0, expect: expect(t.counts, t.best) };
}

function base(type: string, since: CursorValue, scope: MarkScope): JsonObject {
  return {
    key: cursorKey(scope.source, scope.query, scope.lead),
    source: scope.source,
    query: scope.query,
    lead: scope.lead,
    type,
    task: scope.task,
    since,
  };
}

function expect(pages: Readonly<Record<string, number>>, best: RankedCursor): JsonObject {
  return { pages: { ...pages }, value: best.value, order: best.order };
}

function isScalar(x: unknown): boolean {
  return typeof x === "string" || (typeof x === "number" && Number.isFinite(x));
}
