import * as z from "zod";
import { defineKind, describeValue, field } from "@machina/config";
import type { ComponentDoc } from "@machina/config";
import type { JsonObject, Ledger } from "@machina/protos";
import { MachinaError } from "@machina/wire";

/** Ledger sources this build serves; `self` (compute) and `kv` (runtime edits) come with later issues. */
export const LEDGER_SOURCES = ["constant"] as const;

/** Compiled ledgers by name. */
export type LedgerTable = Map<string, Ledger>;

const lead = z
  .record(z.string(), z.json())
  .describe("One lead: its fields, handed to the source's templates as `{{lead.<field>}}`; one of them is its id");

/** `config/<mode>/invoke/ledgers/<name>.yaml`: the leads (websites, accounts…) that query sets fetch for. */
export const ledgerKind = defineKind({
  kind: "invoke/ledgers",
  doc: "A ledger is the list of leads a query set runs its queries for: every tick builds one fetch task per lead and query. A constant ledger lists its leads in the file.",
  example: "source: constant\nlead_id: domain\nleads:\n  - domain: example.com\n  - domain: example.org\n",
  schema: field
    .object({
      source: field
        .oneOf(LEDGER_SOURCES)
        .default("constant")
        .describe("Where the leads come from: `constant`, listed under `leads`; default constant"),
      lead_id: field
        .name()
        .default("id")
        .describe("The lead field that identifies a lead (unique in the ledger, part of task ids); default id"),
      leads: field.list(lead).describe("The leads, each a mapping of its fields"),
    })
    .superRefine((d, ctx) => {
      const seen = new Set<string>();
      for (const [i, args] of d.leads.entries()) {
        const path = ["leads", i, d.lead_id];
        const id = Object.hasOwn(args, d.lead_id) ? args[d.lead_id] : undefined;
        if (id === undefined || id === null || id === "") {
          ctx.addIssue({
            code: "custom",
            path,
            message: `missing; every lead needs its id field "${d.lead_id}" (set lead_id to change it)`,
            input: id,
          });
        } else if (typeof id !== "string" && typeof id !== "number") {
          ctx.addIssue({
            code: "custom",
            path,
            message: `expected a string or number as the lead id, got ${describeValue(id)}`,
            input: id,
          });
        } else if (seen.has(String(id))) {
          // 1 and "1" are one id: ids are strings in tasks and subjects.
          ctx.addIssue({ code: "custom", path, message: `duplicate lead id "${String(id)}"`, input: id });
        } else {
          seen.add(String(id));
        }
      }
    }),
});

/** Validates `invoke/ledgers/*.yaml`: `{ source: constant, lead_id: <field>, leads: [ {...args} ] }`. */
export function compileLedgers(docs: ComponentDoc[]): LedgerTable {
  const out: LedgerTable = new Map();
  for (const c of docs) {
    const { name, value } = ledgerKind.parseDoc(c);
    const leads = value.leads.map((args) => ({ id: String(args[value.lead_id]), args: args as JsonObject }));
    out.set(name, { name, leads });
  }
  return out;
}

/** The ledger called `name`, or NOT_FOUND listing the known ones. */
export function ledgerOf(table: LedgerTable, name: string): Ledger {
  const l = table.get(name);
  if (!l)
    throw new MachinaError("NOT_FOUND", `unknown ledger "${name}" (known: ${[...table.keys()].join(", ") || "none"})`);
  return l;
}
