import * as z from "zod";
import { componentError, defineKind, field } from "@machina/config";
import { RESOURCE_KINDS, amountProblem, formatResources, parseAmount } from "@machina/runtime";
import type { ResourceKind, Resources } from "@machina/runtime";
import type { ComponentDoc } from "@machina/config";
import type { FetchTask, Lead, QuerySet } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { ledgerOf } from "./ledgers";
import type { LedgerTable } from "./ledgers";

/** The tick tasks are built for: its trigger, its time, and its id (default `<trigger>@<time>`). */
export interface TickRef {
  trigger: string;
  time: number;
  /** Forced ticks carry a suffix, so they never share task ids with a grid tick. */
  id?: string;
}

/** Compiled query sets by name. */
export type QuerySetTable = Map<string, QuerySet>;

/** Indexes of the items that repeat an earlier one, e.g. `["a", "b", "a"]` → `[2]`. */
export function duplicatesIn(items: readonly string[]): number[] {
  return items.flatMap((x, i) => (items.indexOf(x) === i ? [] : [i]));
}

// One amount of a resource: `2G`, `500m`, or a number (YAML turns `2` into one).
const amount = (kind: ResourceKind) =>
  field
    .scalarText()
    .superRefine((v, ctx) => {
      // The message names the kind already: the path names it too, so only the rest is kept.
      const problem = amountProblem(kind, v);
      if (problem !== null) ctx.addIssue({ code: "custom", message: problem.replace(/^\w+: /, ""), input: v });
    })
    .optional();

const resourcesField = z
  .strictObject({
    cpu: amount("cpu").describe('CPU cores (e.g. 1, 0.5 or "500m")'),
    ram: amount("ram").describe('RAM, e.g. "2G"'),
    gpu: amount("gpu").describe("GPUs, a whole number"),
    storage: amount("storage").describe('Disk, e.g. "10G"'),
    network: amount("network").describe('Network bandwidth per second, e.g. "50M"'),
  })
  .optional();

/** `config/<mode>/invoke/query_sets/<name>.yaml`: queries of one source to run for every lead of a ledger. */
export const querySetKind = defineKind({
  kind: "invoke/query_sets",
  doc: "A query set names queries of one fetch source and the ledger whose leads they run for; a trigger fires query sets, and each firing builds one fetch task per lead and query.",
  example: "source: sitestats\nqueries: [site]\nledger: websites\n",
  schema: field
    .object({
      source: field.name().describe("The fetch source (a file under fetch/sources) whose queries run"),
      // Query names are tokens of task ids and subjects, hence the name rule.
      queries: field
        .list(field.name(), { min: 1, emptyHint: "expected a non-empty list of query names" })
        .describe("Queries of that source to run for every lead, each listed once"),
      ledger: field.name().describe("The ledger (a file under invoke/ledgers) whose leads the queries run for"),
      resources: resourcesField.describe(
        "What running one of its tasks needs of a fetch replica (sent as Machina-Resources): a replica takes the task " +
          "only while its free resources cover it; default nothing, so any replica takes it",
      ),
    })
    .superRefine((d, ctx) => {
      for (const i of duplicatesIn(d.queries))
        ctx.addIssue({
          code: "custom",
          path: ["queries", i],
          message: `query "${d.queries[i]}" is listed twice`,
          input: d.queries[i],
        });
    }),
});

/** Validates `invoke/query_sets/*.yaml`: `{ source, queries: [..], ledger }`; the ledger must exist. */
export function compileQuerySets(docs: ComponentDoc[], ledgers: LedgerTable): QuerySetTable {
  const out: QuerySetTable = new Map();
  for (const c of docs) {
    const { name, origin, value } = querySetKind.parseDoc(c);
    if (!ledgers.has(value.ledger)) {
      throw componentError(
        origin,
        "ledger",
        `unknown ledger "${value.ledger}" (known: ${[...ledgers.keys()].join(", ") || "none"})`,
      );
    }
    const needs: Partial<Resources> = {};
    for (const k of RESOURCE_KINDS) {
      const v = value.resources?.[k];
      if (v !== undefined) needs[k] = parseAmount(k, v, `${origin}: resources.${k}`);
    }
    out.set(name, {
      name,
      source: value.source,
      queries: value.queries,
      ledger: value.ledger,
      resources: formatResources(needs),
    });
  }
  return out;
}

/** The query set called `name`, or NOT_FOUND listing the known ones. */
export function querySetOf(table: QuerySetTable, name: string): QuerySet {
  const q = table.get(name);
  if (!q)
    throw new MachinaError(
      "NOT_FOUND",
      `unknown query set "${name}" (known: ${[...table.keys()].join(", ") || "none"})`,
    );
  return q;
}

/** The tasks of one lead: one per query of the set, ids deterministic in (tick, query set, lead, query). */
export function leadTasks(qs: QuerySet, lead: Lead, tick: TickRef, now = Date.now()): FetchTask[] {
  const tickId = tick.id ?? `${tick.trigger}@${tick.time}`;
  return qs.queries.map((query) => ({
    id: `${tickId}/${qs.name}/${lead.id}/${query}`,
    source: qs.source,
    query,
    lead,
    trigger: tick.trigger,
    tick: tick.time,
    createdAt: now,
    querySet: qs.name,
  }));
}

/**
 * leads × queries → FetchTasks, leads in id order. Ids are deterministic in (trigger, tick,
 * query set, lead, query) so replicas firing the same tick publish the same ids and the stream
 * drops the copies. Holds every task: for previews; ticks stream them lead by lead.
 */
export function buildTasks(qs: QuerySet, ledgers: LedgerTable, tick: TickRef, now = Date.now()): FetchTask[] {
  const ledger = ledgerOf(ledgers, qs.ledger);
  const tasks: FetchTask[] = [];
  for (const lead of ledger.store.after(null)) tasks.push(...leadTasks(qs, lead, tick, now));
  return tasks;
}
