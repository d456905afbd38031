import type { ComponentDoc } from "@machina/config";
import type { JsonObject, Lead, Ledger } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { configError, onlyKeys } from "./doc-check";

/** Ledger sources this build serves; `self` (compute) and `kv` (runtime edits) come with later issues. */
export const LEDGER_SOURCES = ["constant"] as const;

/** Compiled ledgers by name. */
export type LedgerTable = Map<string, Ledger>;

/** Validates `invoke/ledgers/*.yaml`: `{ source: constant, lead_id: <field>, leads: [ {...args} ] }`. */
export function compileLedgers(docs: ComponentDoc[]): LedgerTable {
  const out: LedgerTable = new Map();
  for (const c of docs) {
    const origin = c.origins.join(" + ");
    onlyKeys(origin, c.doc, ["source", "lead_id", "leads"]);
    const source = c.doc.source ?? "constant";
    if (!(LEDGER_SOURCES as readonly unknown[]).includes(source)) {
      throw configError(origin, "source", `expected one of ${LEDGER_SOURCES.join(", ")}, got ${JSON.stringify(source)}`);
    }
    const idField = c.doc.lead_id ?? "id";
    if (typeof idField !== "string") throw configError(origin, "lead_id", "expected the name of a lead field");
    if (!Array.isArray(c.doc.leads)) throw configError(origin, "leads", "expected a list of leads");
    const seen = new Set<string>();
    const leads: Lead[] = c.doc.leads.map((raw: unknown, i: number) => {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        throw configError(origin, `leads[${i}]`, "expected a mapping of lead fields");
      }
      const args = raw as JsonObject;
      const id = Object.hasOwn(args, idField) ? args[idField] : undefined;
      if (id === undefined || id === null || id === "") {
        throw configError(origin, `leads[${i}].${idField}`, `missing; every lead needs its id field "${idField}" (set lead_id to change it)`);
      }
      if (seen.has(String(id))) throw configError(origin, `leads[${i}].${idField}`, `duplicate lead id "${String(id)}"`);
      seen.add(String(id));
      return { id: String(id), args };
    });
    out.set(c.name, { name: c.name, leads });
  }
  return out;
}

/** The ledger called `name`, or NOT_FOUND listing the known ones. */
export function ledgerOf(table: LedgerTable, name: string): Ledger {
  const l = table.get(name);
  if (!l) throw new MachinaError("NOT_FOUND", `unknown ledger "${name}" (known: ${[...table.keys()].join(", ") || "none"})`);
  return l;
}
