// Which cursor mark goes on which message of a FetchTask (see cursor-mark.ts for what they mean).
import type { JsonObject, RecordBatch } from "@machina/protos";
import type { FetchResult, FetchedPage } from "../fetcher";
import { answerMark, expectMark, pageMark, type MarkScope } from "./cursor-mark";

/** The mark on the answer of a task fetched in one request; undefined when it moves no cursor. */
export function answerMarkOf(result: FetchResult, scope: MarkScope): JsonObject | undefined {
  return result.incremental === undefined ? undefined : (answerMark(result.incremental, scope) ?? undefined);
}

/** The mark on one page's answer of a paginated task; undefined when the page has no records of the cursor's type. */
export function pageMarkOf(page: FetchedPage, scope: MarkScope): JsonObject | undefined {
  return page.incremental === undefined ? undefined : (pageMark(page.incremental, page.page, scope) ?? undefined);
}

/**
 * The STORE message that closes a paginated incremental task, once its last page is handed on:
 * a batch without records whose mark names every page's count and where the cursor moves. Null
 * for any other page, or when no page had a cursor value.
 */
export function closingBatch(page: FetchedPage, scope: MarkScope): RecordBatch | null {
  if (page.next !== null || page.tally === undefined) return null;
  const cursor = expectMark(page.tally, scope);
  if (cursor === null) return null;
  return {
    // Deterministic, so a redelivered last page publishes a copy the stream drops.
    id: `${scope.task}:cursor`,
    type: page.tally.type,
    source: scope.source,
    query: scope.query,
    taskId: scope.task,
    fetchedAt: page.meta.end,
    records: [],
    firstSeq: 0,
    cursor,
  };
}
