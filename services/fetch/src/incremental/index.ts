// Incremental fetching: a query's cursor (`{{incremental.value}}`), kept per (source, query, lead)
// in KV, the candidate each answer carries to the data service (which moves the cursor once the
// answer's records are stored), and the operator's fetch.cursors endpoints.
export { INCREMENTAL, INCREMENTAL_DOC } from "./incremental-schema";
export type { IncrementalInput } from "./incremental-schema";
export { incrementalOf } from "./incremental-spec";
export type { IncrementalSpec } from "./incremental-spec";
export { CURSOR_KINDS, cursorOrder, cursorProblem, greatestCursor } from "./cursor-order";
export type { CursorKind, CursorOrder, CursorValue } from "./cursor-order";
export { CursorStore, cursorKey, entryOf } from "./cursor-store";
export type { CursorEntry, CursorStoreOptions } from "./cursor-store";
export { answerMark, expectMark, incrementalOutcome, pageMark, tallyOf, tallyPage } from "./cursor-mark";
export type { CursorTally, IncrementalOutcome, MarkScope, RankedCursor } from "./cursor-mark";
export { cursorValue } from "./cursor-read";
export type { CursorReader } from "./cursor-read";
export { listCursors, resetCursors } from "./cursor-endpoints";
export type { CursorSources } from "./cursor-endpoints";
export { answerMarkOf, closingBatch, pageMarkOf } from "./task-marks";
