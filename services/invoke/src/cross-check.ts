import type { Health, MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import type { Logger } from "@machina/log";
import type { QuerySetTable } from "./query-sets";

/** The /readyz entry a query set that fetch cannot serve shows under. */
export const QUERY_SETS_CHECK = "query sets";

/**
 * What is wrong with the query sets against the sources fetch serves: one line per query set
 * naming it, the source or query fetch does not know, and the known ones. Empty when all fit.
 */
export function querySetProblems(querySets: QuerySetTable, sources: ReadonlyMap<string, readonly string[]>): string[] {
  const out: string[] = [];
  for (const qs of querySets.values()) {
    const queries = sources.get(qs.source);
    if (queries === undefined) {
      out.push(
        `query set "${qs.name}": fetch serves no source "${qs.source}" (known: ${[...sources.keys()].join(", ") || "none"})`,
      );
      continue;
    }
    const unknown = qs.queries.filter((q) => !queries.includes(q));
    if (unknown.length > 0)
      out.push(
        `query set "${qs.name}": source "${qs.source}" has no ${unknown.length === 1 ? "query" : "queries"} ${unknown.map((q) => `"${q}"`).join(", ")} (known: ${queries.join(", ") || "none"})`,
      );
  }
  return out;
}

/**
 * Asks fetch (`fetch.sources`) which sources and queries it serves and marks /readyz not ready
 * while a query set names one it does not. Checked at start and every `everyMs` (fetch's config
 * may change); while no fetch replica answers nothing is concluded.
 */
export function startCrossCheck(opts: {
  client: MeshClient;
  names: MeshNames;
  querySets: QuerySetTable;
  health: Health;
  log: Logger;
  everyMs: number;
}): () => void {
  const { client, names, querySets, health, log } = opts;
  let last = "";
  const check = async () => {
    let reply;
    try {
      reply = await client.request(names.fetch.sources, "Empty", {}, "SourcesReply", { timeoutMs: 2_000 });
    } catch (err) {
      log.debug({ err }, "fetch.sources did not answer; query sets are checked when it does");
      return;
    }
    const problems = querySetProblems(querySets, new Map(reply.sources.map((s) => [s.name, s.queries])));
    const text = problems.join("; ");
    if (problems.length > 0) health.fail(QUERY_SETS_CHECK, text);
    else health.recover(QUERY_SETS_CHECK);
    if (text !== last && problems.length > 0)
      log.error({ problems }, "query sets name sources or queries fetch does not serve");
    last = text;
  };
  void check();
  const timer = setInterval(() => void check(), opts.everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
