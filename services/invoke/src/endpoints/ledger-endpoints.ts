import { defineEndpoint } from "@machina/runtime";
import type { EndpointDef } from "@machina/runtime";
import type { LedgerRequest } from "@machina/protos";
import type { MeshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { ledgerOf, ledgerPage } from "../ledgers";
import type { EditResult, KvLedgers, LedgerState, LedgerTable } from "../ledgers";

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
// Leads in one put/patch/delete request: a request is one NATS message, bounded anyway.
const MAX_EDIT = 10_000;

/** The ledger a request names, or BAD_REQUEST/NOT_FOUND listing the known ones. */
function ledgerFor(ledgers: LedgerTable, req: LedgerRequest): LedgerState {
  if (!req.name)
    throw new MachinaError("BAD_REQUEST", `missing "name"; known ledgers: ${[...ledgers.keys()].join(", ")}`);
  return ledgerOf(ledgers, req.name);
}

/** `limit` checked: 0 means {@link DEFAULT_LIMIT}. */
function limitOf(limit: number): number {
  if (limit === 0) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new MachinaError(
      "BAD_REQUEST",
      `limit: expected 1 to ${MAX_LIMIT} (0 means ${DEFAULT_LIMIT}), got ${limit}`,
      {
        details: { field: "limit" },
      },
    );
  return limit;
}

/** The page token is the last id of the previous page, base64url so it stays opaque and one token. */
function afterOf(page: string): string {
  if (page === "") return "";
  const id = Buffer.from(page, "base64url").toString("utf8");
  if (id === "" || Buffer.from(id, "utf8").toString("base64url") !== page)
    throw new MachinaError("BAD_REQUEST", `page: "${page}" is not a page token; pass the "next" of the previous page`, {
      details: { field: "page" },
    });
  return id;
}

function pageReply(ledger: LedgerState, req: LedgerRequest) {
  const page = ledgerPage(ledger, afterOf(req.page), limitOf(req.limit));
  return { ...page, next: page.next === "" ? "" : Buffer.from(page.next, "utf8").toString("base64url") };
}

/** Counts leads an edit refused, by ledger. */
export type OnRejected = (ledger: string, n: number) => void;

function editSize(what: string, n: number): void {
  if (n === 0) throw new MachinaError("BAD_REQUEST", `missing "${what}": nothing to change`);
  if (n > MAX_EDIT)
    throw new MachinaError("BAD_REQUEST", `${what}: at most ${MAX_EDIT} per request, got ${n}; split the edit`);
}

/** `invoke.ledger.get/list/put/patch/delete`. */
export function ledgerEndpoints(
  names: MeshNames,
  ledgers: LedgerTable,
  store: KvLedgers,
  onRejected: OnRejected,
): EndpointDef[] {
  // put, patch and delete differ only in what they take from the request and which edit runs.
  const editEndpoint = (
    op: "put" | "patch" | "delete",
    items: "leads" | "ids",
    description: string,
    edit: (ledger: LedgerState, req: LedgerRequest) => Promise<EditResult>,
  ) =>
    defineEndpoint({
      name: `ledger-${op}`,
      subject: names.invoke.ledger(op),
      request: "LedgerRequest",
      reply: "LedgerEditReply",
      description,
      async handler(req) {
        const ledger = ledgerFor(ledgers, req);
        editSize(items, req[items].length);
        const res = await edit(ledger, req);
        if (res.rejected.length > 0) onRejected(ledger.name, res.rejected.length);
        return { name: ledger.name, ...res, total: ledger.store.size };
      },
    });
  return [
    defineEndpoint({
      name: "ledger-get",
      subject: names.invoke.ledger("get"),
      request: "LedgerRequest",
      reply: "Ledger",
      description: "One lead of a ledger by id, or (without id) the ledger and its first page of leads",
      async handler(req) {
        const ledger = ledgerFor(ledgers, req);
        if (req.id === "") return pageReply(ledger, req);
        const lead = ledger.store.get(req.id);
        if (lead === undefined)
          throw new MachinaError("NOT_FOUND", `no lead "${req.id}" in ledger "${ledger.name}"`, {
            details: { ledger: ledger.name, id: req.id },
          });
        return { ...ledgerPage(ledger, "", 0), leads: [lead], next: "" };
      },
    }),
    defineEndpoint({
      name: "ledger-list",
      subject: names.invoke.ledger("list"),
      request: "LedgerRequest",
      reply: "Ledger",
      description: "A page of a ledger's leads in id order (limit 1-1000, default 100; page: the previous next)",
      async handler(req) {
        return pageReply(ledgerFor(ledgers, req), req);
      },
    }),
    editEndpoint(
      "put",
      "leads",
      "Write whole leads of a kv ledger (create or replace); leads that do not fit are answered in rejected",
      (l, req) => store.put(l, req.leads),
    ),
    editEndpoint(
      "patch",
      "leads",
      "Merge fields into existing leads of a kv ledger (a null field removes it)",
      (l, req) => store.patch(l, req.leads),
    ),
    editEndpoint("delete", "ids", "Delete leads of a kv ledger by id", (l, req) => store.delete(l, req.ids)),
  ];
}
