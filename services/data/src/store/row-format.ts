import type { StoreName } from "@machina/subjects";
import { quoteId, toPlain, type TypeDef } from "../schema";
import type { DataContext } from "./data-context";
import type { RowView } from "./pending-rows";

/** A stored row as plain JSON: ISO timestamps, bigint as number, json fields parsed, dates as `YYYY-MM-DD`. */
export type PlainRow = Record<string, unknown>;

const DUMP_META = ["day", "fetched_at", "source", "query", "task_id"] as const;
const CLEAN_META = ["bucket", "window_start", "merged_at", "sources", "provenance"] as const;

/** Declared fields that are not key fields, in declared order. */
export function valueFieldsOf(def: TypeDef): string[] {
  return Object.keys(def.fields).filter((f) => !def.key.includes(f));
}

/** Every column of a store's table, quoted for a select list; `seq` adds the dump's record position (absent from legacy dump tables). */
export function selectList(def: TypeDef, store: StoreName, options: { seq?: boolean } = {}): string {
  const meta: readonly string[] =
    store === "dump" ? [...DUMP_META, ...(options.seq === true ? ["seq"] : [])] : CLEAN_META;
  return [...def.key, ...meta, ...valueFieldsOf(def)].map(quoteId).join(", ");
}

/** Whether a type's dump table has the `seq` column (tables made before it keep the legacy layout). */
export function dumpHasSeq(ctx: Pick<DataContext, "legacyDump">, def: TypeDef): boolean {
  return !ctx.legacyDump.has(def.name);
}

/** Meta columns of a store a read may filter on, besides declared fields. */
export function filterableMeta(store: StoreName): readonly string[] {
  return store === "dump" ? ["source", "query", "task_id", "seq"] : [];
}

/** Converts a driver row of a store's table into a plain JSON object. */
export function rowToPlain(def: TypeDef, store: StoreName, row: RowView): PlainRow {
  const out: PlainRow = {};
  for (const field of Object.keys(def.fields)) out[field] = toPlain(def.fields[field], row.get(field));
  if (store === "dump") {
    out.day = dateText(row.get("day"));
    out.fetched_at = toPlain("timestamp", row.get("fetched_at"));
    out.source = row.get("source");
    out.query = row.get("query");
    out.task_id = row.get("task_id") ?? null;
    const seq: unknown = row.get("seq");
    if (seq !== undefined) out.seq = seq;
  } else {
    out.bucket = dateText(row.get("bucket"));
    out.window_start = toPlain("timestamp", row.get("window_start"));
    out.merged_at = toPlain("timestamp", row.get("merged_at"));
    out.sources = row.get("sources") ?? null;
    out.provenance = { ...((row.get("provenance") as Record<string, string> | null) ?? {}) };
  }
  return out;
}

function dateText(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}
