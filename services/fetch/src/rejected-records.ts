// What becomes of a record whose mapped field could not be coerced. Like the data service's
// per-record validation, it fails alone: the other records of its page go on down the pipeline.
// It cannot be dead-lettered from here, as a dead letter is replayed to the subject it came from
// (a FetchTask's), so it is counted per source, query, type and field, and logged with its
// error; a mapping that keeps failing logs once a minute per field, with the count it held back.
import { addCounter, type ServiceContext } from "@machina/runtime";
import type { RejectedRecord } from "./source";

/** Called by the fetcher for every record it leaves out. */
export type RejectedRecordHandler = (r: RejectedRecord, at: { source: string; query: string; lead: string }) => void;

const LOG_EVERY_MS = 60_000;

/** The handler that counts rejected records in `/metrics` and logs them, rate-limited per field. */
export function rejectedRecordReporter(ctx: Pick<ServiceContext<unknown>, "log" | "metrics">): RejectedRecordHandler {
  const counter = addCounter(
    ctx.metrics,
    "machina_fetch_rejected_records_total",
    "Fetched records left out because a mapped field could not be coerced to its declared type, by source, query, type and field.",
    ["source", "query", "type", "field"],
  );
  const lastLogged = new Map<string, { at: number; held: number }>();
  return (r, at) => {
    counter.inc({ source: at.source, query: at.query, type: r.type, field: r.field });
    const key = JSON.stringify([at.source, at.query, r.extract, r.field]);
    const now = Date.now();
    const seen = lastLogged.get(key);
    if (seen !== undefined && now - seen.at < LOG_EVERY_MS) {
      seen.held++;
      return;
    }
    lastLogged.set(key, { at: now, held: 0 });
    ctx.log.warn(
      {
        code: r.error.code,
        reason: r.error.message,
        source: at.source,
        query: at.query,
        lead: at.lead,
        type: r.type,
        extract: r.extract,
        page: r.page,
        record: r.index,
        field: r.field,
        ...(seen === undefined ? {} : { sameSinceLastLog: seen.held }),
      },
      "record left out: a field could not be coerced; the rest of the page was kept",
    );
  };
}
