import type { CursorValue } from "./cursor-order";
import type { IncrementalSpec } from "./incremental-spec";

/** Where a fetch reads the current cursor of (source, query, lead); CursorStore is one. */
export interface CursorReader {
  read(source: string, query: string, leadId: string): Promise<{ readonly value: CursorValue } | null>;
}

/**
 * The value `{{incremental.value}}` renders for one fetch: `pinned` when the caller holds one (a
 * paginated task keeps the value its first page used), else the stored cursor, else the initial
 * value. Without a reader (a fetcher built for a test) the initial value applies.
 */
export async function cursorValue(
  spec: IncrementalSpec,
  at: { readonly source: string; readonly query: string; readonly lead: string },
  pinned: CursorValue | undefined,
  reader: CursorReader | undefined,
): Promise<CursorValue> {
  if (pinned !== undefined) return pinned;
  const stored = reader === undefined ? null : await reader.read(at.source, at.query, at.lead);
  return stored?.value ?? spec.initial;
}
