import type { LeadProblem } from "@machina/protos";
import type { MeshClient } from "@machina/runtime";
import { MachinaError } from "@machina/wire";
import { fitLead } from "./lead-shape";
import type { KvLedgers } from "./kv-ledgers";
import type { LedgerState } from "./ledger-table";
import { noteRejected } from "./ledger-table";

/** What a refresh found and changed. */
export interface RefreshResult {
  rows: number;
  written: number;
  deleted: number;
  rejected: number;
}

// A producer whose `next` never ends would hold a tick forever; 10,000 pages of up to 1,000 rows
// is far beyond any ledger this layer is built for.
const MAX_PAGES = 10_000;

/**
 * Reads every page of a self ledger's producer, checks each row against the ledger's shape
 * (a misfit is noted and left out) and makes the ledger hold exactly the rows that fit. Nothing
 * changes when a page fails: the ledger keeps its last good leads.
 */
export async function refreshSelfLedger(
  ledger: LedgerState,
  client: MeshClient,
  store: KvLedgers,
): Promise<RefreshResult> {
  const from = ledger.from;
  if (from === null) throw new Error(`ledger "${ledger.name}" has no producer`);
  const rows = new Map<string, string>();
  const problems: LeadProblem[] = [];
  let page = "";
  let n = 0;
  const seenPages = new Set<string>();
  for (let pages = 0; ; pages++) {
    if (pages === MAX_PAGES || seenPages.has(page))
      throw new MachinaError(
        "UPSTREAM",
        `ledger "${ledger.name}": producer ${from.subject} kept paging (${pages} pages); is its next token stuck?`,
      );
    seenPages.add(page);
    const reply = await client.request(
      from.subject,
      "ComputeRequest",
      { args: from.args, limit: from.pageSize, page },
      "ComputeReply",
    );
    for (const row of reply.rows) {
      const fit = fitLead(ledger.shape, row);
      if ("problem" in fit) problems.push({ id: leadIdOf(row, ledger.shape.leadId) ?? `row ${n}`, error: fit.problem });
      else if (rows.has(fit.id)) problems.push({ id: fit.id, error: `row ${n}: repeats the id of an earlier row` });
      else rows.set(fit.id, fit.argsJson);
      n++;
    }
    if (reply.next === "") break;
    page = reply.next;
  }
  const res = await store.replace(ledger, rows);
  ledger.rejected = [];
  ledger.rejectedTotal = 0;
  for (const p of problems) noteRejected(ledger, p);
  return { rows: n, written: res.written, deleted: res.deleted, rejected: problems.length };
}

function leadIdOf(row: unknown, field: string): string | null {
  if (row === null || typeof row !== "object" || !Object.hasOwn(row, field)) return null;
  const v = (row as Record<string, unknown>)[field];
  return typeof v === "string" || typeof v === "number" ? String(v) : null;
}
