// Rows a pipeline flow stored, counted in Cassandra: how many per entity, so a test or demo can
// say that every expected row is there exactly once.
import type cassandra from "cassandra-driver";

/** Rows of a table grouped by an entity label. */
export interface RowTally {
  /** Every row read. */
  rows: number;
  /** Distinct entities with at least one row. */
  entities: number;
  /** Entities with more than one row, and how many rows each has (at most 10 listed). */
  duplicated: Array<{ entity: string; rows: number }>;
  /** How many expected entities have no row, and the first few of them. */
  missing: number;
  missingSample: string[];
}

/**
 * Pages through `SELECT <columns> FROM <table>` and tallies rows per entity (`entityOf(row)`),
 * against the entities expected to have exactly one row each.
 */
export async function tallyRows(
  cql: cassandra.Client,
  table: string,
  columns: readonly string[],
  entityOf: (row: cassandra.types.Row) => string,
  expected: Iterable<string>,
): Promise<RowTally> {
  const seen = new Map<string, number>();
  let rows = 0;
  let pageState: string | undefined;
  do {
    const rs = await cql.execute(`SELECT ${columns.join(", ")} FROM ${table}`, [], {
      prepare: true,
      fetchSize: 5000,
      pageState,
    });
    for (const r of rs.rows) {
      rows++;
      const e = entityOf(r);
      seen.set(e, (seen.get(e) ?? 0) + 1);
    }
    pageState = rs.pageState ?? undefined;
  } while (pageState);
  const duplicated = [...seen]
    .filter(([, n]) => n > 1)
    .map(([entity, n]) => ({ entity, rows: n }))
    .slice(0, 10);
  const missingAll = [...expected].filter((e) => !seen.has(e));
  return { rows, entities: seen.size, duplicated, missing: missingAll.length, missingSample: missingAll.slice(0, 5) };
}

/** True when every expected entity has exactly one row and no other rows exist. */
export function exactlyOnce(t: RowTally, expected: number): boolean {
  return t.missing === 0 && t.duplicated.length === 0 && t.rows === expected && t.entities === expected;
}

/** One line for a log or an assertion message. */
export function describeTally(t: RowTally): string {
  return (
    `${t.rows} rows, ${t.entities} entities` +
    (t.duplicated.length ? `, duplicated: ${t.duplicated.map((d) => `${d.entity}×${d.rows}`).join(" ")}` : "") +
    (t.missing ? `, ${t.missing} missing (e.g. ${t.missingSample.join(" ")})` : "")
  );
}
