import * as z from "zod";
import { componentError, defineKind, field } from "@machina/config";
import type { ComponentDoc } from "@machina/config";
import type { JsonObject, LeadProblem, Ledger } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { LEAD_FIELD_TYPES, fitLead, parseFieldType } from "./lead-shape";
import type { LeadField, LeadShape } from "./lead-shape";
import { LeadStore } from "./lead-store";

/** Where a ledger's leads come from. */
export const LEDGER_SOURCES = ["constant", "kv", "self"] as const;

/** A ledger source. */
export type LedgerSource = (typeof LEDGER_SOURCES)[number];

/** Problems kept per ledger for `invoke.ledger.list`; the total is counted beyond them. */
const KEPT_PROBLEMS = 100;

/** Where a `self` ledger reads its rows: a computation (or any endpoint answering ComputeReply pages). */
export interface LedgerFrom {
  /** `compute.get.<computation>`, or an explicit subject. */
  computation: string;
  subject: string;
  args: JsonObject;
  pageSize: number;
}

/** A compiled ledger: its definition and its leads. */
export interface LedgerState {
  name: string;
  /** The files it came from, for messages. */
  origin: string;
  source: LedgerSource;
  shape: LeadShape;
  /** `self` only: where the rows come from. */
  from: LedgerFrom | null;
  /** `self` only: the trigger whose ticks refresh it. */
  refresh: string | null;
  store: LeadStore;
  /** Leads left out at load (constant) or at the last refresh (self), first {@link KEPT_PROBLEMS}. */
  rejected: LeadProblem[];
  rejectedTotal: number;
  /** `kv`/`self`: true once this replica holds every stored lead (the initial watch finished). */
  loaded: boolean;
}

/** Compiled ledgers by name. */
export type LedgerTable = Map<string, LedgerState>;

/** `config/<mode>/invoke/ledgers/<name>.yaml`: the leads (websites, accounts…) that query sets fetch for. */
export const ledgerKind = defineKind({
  kind: "invoke/ledgers",
  doc: "A ledger is the list of leads a query set runs its queries for: every tick builds one fetch task per lead and query. A `constant` ledger lists its leads in the file; a `kv` ledger is edited at runtime through `invoke.ledger.put/patch/delete` and kept in a KV bucket every invoke replica watches; a `self` ledger holds the rows a computation (a ledger producer) returns, refreshed on the ticks of its `refresh` trigger. Every lead has the id field and the declared `fields`; a lead that does not fit is reported (log, `invoke.ledger.list`) and left out, the others stay.",
  example:
    "source: constant\nlead_id: domain\nfields: { domain: string, rank: number? }\nleads:\n  - domain: example.com\n    rank: 1\n  - domain: example.org\n",
  schema: field
    .object({
      source: field
        .oneOf(LEDGER_SOURCES)
        .default("constant")
        .describe(
          "Where the leads come from: `constant` (listed under `leads`), `kv` (runtime edits) or `self` (a computation); default constant",
        ),
      lead_id: field
        .name()
        .default("id")
        .describe("The lead field that identifies a lead (unique in the ledger, part of task ids); default id"),
      fields: field
        .names(z.string())
        .optional()
        .describe(
          `The fields every lead has, name → type (${LEAD_FIELD_TYPES.join(", ")}; a trailing ? makes it optional); default none declared: any fields, only the id field required`,
        ),
      // Leads are checked one by one after the file (a misfit is left out, not fatal), so the
      // schema takes any list here.
      leads: z
        .array(z.unknown())
        .optional()
        .describe(
          "`constant` only: the leads, each a mapping of its fields (given to source templates as `{{lead.<field>}}`)",
        ),
      from: field
        .object({
          computation: field.name().optional().describe("The computation answering at compute.get.<name>"),
          subject: field.text().optional().describe("Or any subject answering ComputeRequest with ComputeReply pages"),
          args: field.names(z.json()).default({}).describe("Args of the computation; default {}"),
          page_size: field.int(1, 1000).default(500).describe("Rows asked per page; default 500"),
        })
        .optional()
        .describe("`self` only: where the rows come from (exactly one of computation and subject)"),
      refresh: field
        .name()
        .optional()
        .describe("`self` only: the trigger whose ticks refresh the rows (a file under invoke/triggers)"),
    })
    .superRefine((d, ctx) => {
      const issue = (path: (string | number)[], message: string) =>
        ctx.addIssue({ code: "custom", path, message, input: undefined });
      for (const [name, type] of Object.entries(d.fields ?? {}))
        if (parseFieldType(type) === null)
          issue(
            ["fields", name],
            `unknown type "${type}"; expected one of ${LEAD_FIELD_TYPES.join(", ")}, with ? for optional`,
          );
      if (d.source === "constant" && d.leads === undefined) issue(["leads"], "is required for a constant ledger");
      if (d.source !== "constant" && d.leads !== undefined)
        issue(
          ["leads"],
          `is for a constant ledger only; a ${d.source} ledger's leads are ${d.source === "kv" ? "written through invoke.ledger.put" : "the rows of its computation"}`,
        );
      if (d.source === "self") {
        if (d.from === undefined)
          issue(["from"], "is required for a self ledger: the computation whose rows are its leads");
        else if ((d.from.computation === undefined) === (d.from.subject === undefined))
          issue(["from"], "needs exactly one of computation and subject");
        if (d.refresh === undefined)
          issue(["refresh"], "is required for a self ledger: the trigger whose ticks refresh it");
      } else {
        if (d.from !== undefined) issue(["from"], "is for a self ledger only");
        if (d.refresh !== undefined) issue(["refresh"], "is for a self ledger only");
      }
    }),
});

/** Keeps a problem for the operator: the first {@link KEPT_PROBLEMS} in full, every one counted. */
export function noteRejected(ledger: LedgerState, problem: LeadProblem): void {
  if (ledger.rejected.length < KEPT_PROBLEMS) ledger.rejected.push(problem);
  ledger.rejectedTotal++;
}

/**
 * Validates `invoke/ledgers/*.yaml`. A constant ledger's leads are checked one by one: one that
 * does not fit (or repeats an id) is kept in `rejected` with its index and left out.
 */
export function compileLedgers(docs: ComponentDoc[], computeGet: (name: string) => string = (n) => n): LedgerTable {
  const out: LedgerTable = new Map();
  for (const c of docs) {
    const { name, origin, value } = ledgerKind.parseDoc(c);
    const fields =
      value.fields === undefined
        ? null
        : new Map(Object.entries(value.fields).map(([k, t]) => [k, parseFieldType(t) as LeadField]));
    const from = value.from;
    const ledger: LedgerState = {
      name,
      origin,
      source: value.source,
      shape: { leadId: value.lead_id, fields, undeclared: value.source === "self" ? "drop" : "refuse" },
      from:
        from === undefined
          ? null
          : {
              computation: from.computation ?? "",
              subject: from.subject ?? computeGet(from.computation ?? ""),
              args: from.args as JsonObject,
              pageSize: from.page_size,
            },
      refresh: value.refresh ?? null,
      store: new LeadStore(),
      rejected: [],
      rejectedTotal: 0,
      loaded: value.source === "constant",
    };
    for (const [i, raw] of (value.leads ?? []).entries()) {
      const fit = fitLead(ledger.shape, raw);
      if ("problem" in fit) noteRejected(ledger, { id: `leads[${i}]`, error: fit.problem });
      else if (ledger.store.json(fit.id) !== undefined)
        // 1 and "1" are one id: ids are strings in tasks and subjects.
        noteRejected(ledger, { id: fit.id, error: `leads[${i}]: duplicate lead id "${fit.id}"` });
      else ledger.store.set(fit.id, fit.argsJson);
    }
    out.set(name, ledger);
  }
  return out;
}

/** Checks that every self ledger's `refresh` names a trigger. */
export function checkRefreshTriggers(ledgers: LedgerTable, triggers: ReadonlySet<string>): void {
  for (const l of ledgers.values()) {
    if (l.refresh !== null && !triggers.has(l.refresh))
      throw componentError(
        l.origin,
        "refresh",
        `unknown trigger "${l.refresh}" (known: ${[...triggers].join(", ") || "none"})`,
      );
  }
}

/** The ledger called `name`, or NOT_FOUND listing the known ones. */
export function ledgerOf(table: LedgerTable, name: string): LedgerState {
  const l = table.get(name);
  if (!l)
    throw new MachinaError("NOT_FOUND", `unknown ledger "${name}" (known: ${[...table.keys()].join(", ") || "none"})`, {
      details: { name, known: [...table.keys()] },
    });
  return l;
}

/** A ledger's description and one page of its leads, as `invoke.ledger.get/list` answer. */
export function ledgerPage(ledger: LedgerState, after: string, limit: number): Ledger {
  const page = ledger.store.page(after, limit);
  return {
    name: ledger.name,
    leads: page.leads,
    source: ledger.source,
    next: page.next,
    total: ledger.store.size,
    leadId: ledger.shape.leadId,
    fields: [...(ledger.shape.fields?.keys() ?? [])],
    rejected: ledger.rejected,
    rejectedTotal: ledger.rejectedTotal,
  };
}
