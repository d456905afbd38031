import type { ComponentDoc } from "@machina/config";
import type { FetchTask, QuerySet } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { configError, onlyKeys } from "./doc-check";
import { ledgerOf } from "./ledgers";
import type { LedgerTable } from "./ledgers";

/** Compiled query sets by name. */
export type QuerySetTable = Map<string, QuerySet>;

/** Validates `invoke/query_sets/*.yaml`: `{ source, queries: [..], ledger }`; the ledger must exist. */
export function compileQuerySets(docs: ComponentDoc[], ledgers: LedgerTable): QuerySetTable {
  const out: QuerySetTable = new Map();
  for (const c of docs) {
    const origin = c.origins.join(" + ");
    onlyKeys(origin, c.doc, ["source", "queries", "ledger"]);
    const { source, queries, ledger } = c.doc as { source?: unknown; queries?: unknown; ledger?: unknown };
    if (typeof source !== "string" || !/^[A-Za-z0-9_-]+$/.test(source)) throw configError(origin, "source", "expected a source name");
    // Query names are tokens (as in fetch source files); a '/' would also make task ids ambiguous.
    if (!Array.isArray(queries) || queries.length === 0 || !queries.every((q) => typeof q === "string" && /^[A-Za-z0-9_-]+$/.test(q))) {
      throw configError(origin, "queries", "expected a non-empty list of query names");
    }
    const dup = queries.find((q, i) => queries.indexOf(q) !== i);
    if (dup !== undefined) throw configError(origin, "queries", `query "${dup}" is listed twice`);
    if (typeof ledger !== "string" || !ledgers.has(ledger)) {
      throw configError(origin, "ledger", `unknown ledger ${JSON.stringify(ledger)} (known: ${[...ledgers.keys()].join(", ") || "none"})`);
    }
    out.set(c.name, { name: c.name, source, queries: queries as string[], ledger });
  }
  return out;
}

/** The query set called `name`, or NOT_FOUND listing the known ones. */
export function querySetOf(table: QuerySetTable, name: string): QuerySet {
  const q = table.get(name);
  if (!q) throw new MachinaError("NOT_FOUND", `unknown query set "${name}" (known: ${[...table.keys()].join(", ") || "none"})`);
  return q;
}

/**
 * leads × queries → FetchTasks. Ids are deterministic in (trigger, tick, query set, lead, query)
 * so replicas firing the same tick publish the same ids and the stream drops the copies.
 */
export function buildTasks(qs: QuerySet, ledgers: LedgerTable, tick: { trigger: string; time: number }, now = Date.now()): FetchTask[] {
  const ledger = ledgerOf(ledgers, qs.ledger);
  const tasks: FetchTask[] = [];
  for (const lead of ledger.leads) {
    for (const query of qs.queries) {
      tasks.push({
        id: `${tick.trigger}@${tick.time}/${qs.name}/${lead.id}/${query}`,
        source: qs.source,
        query,
        lead,
        trigger: tick.trigger,
        tick: tick.time,
        createdAt: now,
        querySet: qs.name,
      });
    }
  }
  return tasks;
}
