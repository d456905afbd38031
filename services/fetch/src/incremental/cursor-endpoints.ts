// fetch.cursors and fetch.cursors.reset: what an operator needs around incremental queries. Read
// where each lead's cursor stands (and the initial value it falls back to), and put cursors back:
// to the initial value to fetch everything again, or to a chosen value to re-fetch from there.
import type { CursorInfo, CursorResetReply, CursorResetRequest, CursorsReply, CursorsRequest } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import type { Fetcher } from "../fetcher";
import { cursorOrder, cursorProblem, type CursorOrder, type CursorValue } from "./cursor-order";
import type { CursorEntry, CursorStore } from "./cursor-store";
import type { IncrementalSpec } from "./incremental-spec";

/** Most cursors one reply lists. */
const MAX_LIST = 1000;
const DEFAULT_LIST = 100;

/** What the endpoints read of the fetcher: its sources and their queries. */
export type CursorSources = Pick<Fetcher, "sources" | "queries" | "query">;

/** fetch.cursors: one lead's cursor (stored or not), or every lead's stored cursor of the query. */
export async function listCursors(
  store: CursorStore,
  fetcher: CursorSources,
  req: CursorsRequest,
): Promise<CursorsReply> {
  const spec = incrementalQuery(fetcher, req.source, req.query);
  if (req.lead !== "") {
    const entry = await store.read(req.source, req.query, req.lead);
    return { cursors: [infoOf(req.source, req.query, req.lead, spec, entry)], truncated: false };
  }
  const limit = req.limit === 0 ? DEFAULT_LIST : req.limit;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST)
    throw new MachinaError("BAD_REQUEST", `limit: expected 1-${MAX_LIST} (0 means ${DEFAULT_LIST}), got ${req.limit}`, {
      retryable: false,
      details: { field: "limit" },
    });
  const { entries, truncated } = await store.list(req.source, req.query, limit);
  return { cursors: entries.map((e) => infoOf(req.source, req.query, e.lead, spec, e)), truncated };
}

/**
 * fetch.cursors.reset: one lead's cursor back to the initial value (no `value`) or at `value`, or
 * every lead's back to the initial value (`allLeads`). Answers still in the pipeline may move a
 * cursor forward again once their records are stored.
 */
export async function resetCursors(
  store: CursorStore,
  fetcher: CursorSources,
  req: CursorResetRequest,
): Promise<CursorResetReply> {
  const spec = incrementalQuery(fetcher, req.source, req.query);
  const bad = (message: string, field: string) =>
    new MachinaError("BAD_REQUEST", message, { retryable: false, details: { field } });
  if (req.allLeads && req.lead !== "")
    throw bad("give lead (one lead's cursor) or allLeads (every lead's), not both", "lead");
  const value = req.value ?? null;
  if (req.allLeads) {
    if (value !== null)
      throw bad(
        "allLeads puts every cursor back to the initial value and takes no value; to start every lead elsewhere, change incremental.initial in the source file and reset all leads",
        "value",
      );
    const n = await store.removeAll(req.source, req.query);
    const { entries } = await store.list(req.source, req.query, DEFAULT_LIST);
    return { reset: n, cursors: entries.map((e) => infoOf(req.source, req.query, e.lead, spec, e)) };
  }
  if (req.lead === "") throw bad("name the lead whose cursor to reset, or set allLeads to reset every lead's", "lead");
  let reset: number;
  if (value === null) reset = (await store.remove(req.source, req.query, req.lead)) ? 1 : 0;
  else {
    const problem = cursorProblem(spec.kind, value);
    if (problem !== null)
      throw bad(`value: ${problem} (query ${req.source}.${req.query} compares by ${spec.kind})`, "value");
    await store.set(
      req.source,
      req.query,
      req.lead,
      value as CursorValue,
      cursorOrder(spec.kind, value) as CursorOrder,
    );
    reset = 1;
  }
  const entry = await store.read(req.source, req.query, req.lead);
  return { reset, cursors: [infoOf(req.source, req.query, req.lead, spec, entry)] };
}

function incrementalQuery(fetcher: CursorSources, source: string, query: string): IncrementalSpec {
  if (!source || !fetcher.sources().includes(source))
    throw new MachinaError(
      "UNKNOWN_SOURCE",
      `unknown source "${source}"; known sources: ${fetcher.sources().join(", ")}`,
      {
        retryable: false,
        details: { source },
      },
    );
  const incremental = fetcher.queries(source).filter((q) => fetcher.query(source, q)?.incremental !== undefined);
  const q = query ? fetcher.query(source, query) : undefined;
  if (q === undefined)
    throw new MachinaError(
      "NOT_FOUND",
      `source ${source} has no query "${query}"; its incremental queries: ${incremental.join(", ") || "none"}`,
      { retryable: false, details: { source, query } },
    );
  if (q.incremental === undefined)
    throw new MachinaError(
      "BAD_REQUEST",
      `query ${source}.${query} is not incremental, so it has no cursors; incremental queries of ${source}: ${incremental.join(", ") || "none"}`,
      { retryable: false, details: { source, query } },
    );
  return q.incremental;
}

function infoOf(
  source: string,
  query: string,
  lead: string,
  spec: IncrementalSpec,
  entry: CursorEntry | null,
): CursorInfo {
  return {
    source,
    query,
    lead,
    value: entry?.value ?? spec.initial,
    initial: spec.initial,
    stored: entry !== null,
    updatedAt: entry?.at ?? 0,
    answer: entry?.answer ?? "",
  };
}
