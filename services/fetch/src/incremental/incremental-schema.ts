// The `incremental` option of a query, declared once: validation, defaults, types and the
// generated docs (docs/components.md) all come from this schema.
import * as z from "zod";
import { describeValue, field } from "@machina/config";
import { CURSOR_KINDS, cursorProblem } from "./cursor-order";

/** `incremental` of a query: the cursor that makes each fetch ask only for what changed since the last stored answer. */
export const INCREMENTAL = field
  .object({
    field: field
      .name()
      .describe(
        "The record field the cursor follows, e.g. `updated_at`: once a task's records are all stored, the cursor moves to the greatest value of this field among them (records without a value count for storage, not for the value).",
      ),
    type: field
      .name()
      .optional()
      .describe(
        "The entity type whose records carry `field`; one of the query's extracted types. Default: the query's only extracted type (required when it extracts several).",
      ),
    initial: z
      .union([z.string().min(1), z.number()], {
        error: (iss) =>
          iss.input === undefined ? undefined : `expected text or a number, got ${describeValue(iss.input)}`,
      })
      .describe(
        "The value of the first fetch of each lead (and after fetch.cursors.reset), e.g. `2024-01-01T00:00:00Z`; a value of the `compare` kind.",
      ),
    compare: field
      .oneOf(CURSOR_KINDS)
      .default("timestamp")
      .describe(
        "How values are ordered: `timestamp` (ISO 8601 text, by the instant it names), `number` (also numeric text, e.g. epoch seconds), or `text` (code-unit order, e.g. ULIDs or zero-padded ids). The cursor never moves backwards by this order. Default timestamp.",
      ),
  })
  .superRefine((v, ctx) => {
    const problem = cursorProblem(v.compare, v.initial);
    if (problem !== null) ctx.addIssue({ code: "custom", path: ["initial"], message: problem, input: v.initial });
  });

/** What `incremental` does, for the docs of the field that holds it. */
export const INCREMENTAL_DOC =
  "Fetch incrementally: the request templates read `{{incremental.value}}`, the cursor of this query for the lead (the `initial` value until one is stored), kept per source, query and lead in the KV bucket `<prefix>_fetch_cursors`. The cursor moves only once the data service has stored every record of a FetchTask (all its pages), to the greatest `field` value among them, and never backwards; a task that does not finish (a crash before storage, superseded, dead-lettered) moves nothing, so the next one fetches the same window again instead of skipping it. Every page of a task uses the value its first page used, redeliveries included. Paging cut off by `max_pages` still moves the cursor to the greatest value fetched, so list oldest changes first. Read and reset cursors with fetch.cursors and fetch.cursors.reset. Default: not incremental.";

/** A validated `incremental`, defaults applied. */
export type IncrementalInput = z.output<typeof INCREMENTAL>;
