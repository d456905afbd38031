import type { FieldMerge, TypeDef } from "../schema";

/** One dump row of an entity, as the merge sees it. */
export interface MergeRow {
  /** Epoch milliseconds the answer was fetched. */
  readonly fetchedAt: number;
  readonly source: string;
  readonly query?: string;
  /** Position of the record in its answer. */
  readonly seq?: number;
  /** Field values; null or missing means the source said nothing. */
  readonly values: Readonly<Record<string, unknown>>;
}

/** A merged record and, per field, the source that won (comma-joined sources for sum). */
export interface MergeResult {
  values: Record<string, unknown>;
  provenance: Record<string, string>;
}

type Pick1 = { value: unknown; source: string } | undefined;

/** Merges the dump rows of one entity and window by each field's policy; pure and independent of row order. */
export function mergeRows(def: Pick<TypeDef, "merge">, rows: readonly MergeRow[]): MergeResult {
  // Ties on fetchedAt are broken by source then query so that the result never depends on read order.
  const newestFirst = [...rows].sort(
    (a, b) =>
      b.fetchedAt - a.fetchedAt ||
      cmpText(b.source, a.source) ||
      cmpText(b.query ?? "", a.query ?? "") ||
      // Later in one answer counts as newer, so the last record of an entity wins a "latest" field.
      (b.seq ?? 0) - (a.seq ?? 0),
  );
  const values: Record<string, unknown> = {};
  const provenance: Record<string, string> = {};
  for (const [field, policy] of Object.entries(def.merge)) {
    const won = mergeField(field, policy, newestFirst);
    values[field] = won?.value ?? null;
    if (won !== undefined) provenance[field] = won.source;
  }
  return { values, provenance };
}

function mergeField(field: string, merge: FieldMerge, newestFirst: readonly MergeRow[]): Pick1 {
  const present = newestFirst.filter((r) => isPresent(r.values[field]));
  switch (merge.policy) {
    case "latest_non_null":
      return first(present, field);
    case "latest":
      return newestFirst.length === 0
        ? undefined
        : { value: newestFirst[0].values[field] ?? null, source: newestFirst[0].source };
    case "first_non_null":
      return first([...present].reverse(), field);
    case "source_priority":
      for (const source of merge.sources) {
        const won = first(
          present.filter((r) => r.source === source),
          field,
        );
        if (won !== undefined) return won;
      }
      return first(present, field);
    case "max":
    case "min": {
      const sign = merge.policy === "max" ? 1 : -1;
      let best: MergeRow | undefined;
      // Strictly better only, so among equal values the newest row wins.
      for (const r of present) {
        if (best === undefined || sign * compare(r.values[field], best.values[field]) > 0) best = r;
      }
      return best && { value: best.values[field], source: best.source };
    }
    case "sum": {
      if (present.length === 0) return undefined;
      const vals = present.map((r) => r.values[field]);
      const value = vals.every((v) => typeof v === "bigint")
        ? (vals as bigint[]).reduce((a, b) => a + b, 0n)
        : vals.reduce<number>((a, b) => a + Number(b), 0);
      const sources = [...new Set(present.map((r) => r.source))].sort(cmpText);
      return { value, source: sources.join(",") };
    }
  }
}

function first(rows: readonly MergeRow[], field: string): Pick1 {
  return rows.length === 0 ? undefined : { value: rows[0].values[field], source: rows[0].source };
}

function isPresent(v: unknown): boolean {
  return v !== null && v !== undefined;
}

function compare(a: unknown, b: unknown): number {
  const x = a instanceof Date ? a.getTime() : a;
  const y = b instanceof Date ? b.getTime() : b;
  if (typeof x === "string" && typeof y === "string") return cmpText(x, y);
  const xn = x as number | bigint;
  const yn = y as number | bigint;
  return xn < yn ? -1 : xn > yn ? 1 : 0;
}

function cmpText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
