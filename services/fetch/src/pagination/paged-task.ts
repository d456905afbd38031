import type { FetchLead, FetchedPage, Fetcher } from "../fetcher";
import { tallyPage, type CursorTally } from "../incremental";
import { paginationFingerprint, type ProgressStore } from "./progress-store";

/** A FetchTask of a paginated query, as the runner needs it. */
export interface PagedTask {
  readonly id: string;
  readonly source: string;
  readonly query: string;
  readonly lead: FetchLead;
}

/** Ids of one page's answer: deterministic per (task, page), so a second publish of it is dropped. */
export interface PageIds {
  /** Nats-Msg-Id of the page's message. */
  readonly msgID: string;
  /** Request id of the page's answer (the task id stays the task's). */
  readonly requestId: string;
}

/** Publishes one page's answer durably; resolves once it is stored. */
export type PublishPage = (page: FetchedPage, ids: PageIds) => Promise<unknown>;

/** What one run of a task did. */
export interface PagedTaskOutcome {
  /** The task had already fetched its last page (a redelivery after the ack was lost): nothing was done. */
  readonly alreadyDone: boolean;
  /** Page the run started at (1 for a fresh task). */
  readonly startedAt: number;
  /** Pages fetched from the upstream by this run. */
  readonly fetched: number;
  /** Pages handed on again from memory (fetched by an earlier delivery that could not store them). */
  readonly replayed: number;
  /** True when paging stopped at max_pages with more pages left. */
  readonly truncated: boolean;
}

/** Options of {@link createPagedTaskRunner}. */
export interface PagedTaskRunnerOptions {
  readonly fetcher: Fetcher;
  readonly store: ProgressStore;
  /** Told when stored progress could not be used and the task starts over. */
  readonly onRestart?: (task: PagedTask, reason: string) => void;
  /** Most pages held for redelivery after a failed hand-on; default 256. */
  readonly memory?: number;
}

/** Runs paginated FetchTasks (declared pagination or code queries) page by page, each page stored before the next is asked for. */
export interface PagedTaskRunner {
  /**
   * Fetches the task's pages from where its last delivery stopped, publishing each page and
   * then recording the progress, so a delivery that stops on page k (quota, crash, upstream
   * error) leaves pages 1…k-1 stored and the next one starts at page k.
   */
  run(task: PagedTask, publish: PublishPage): Promise<PagedTaskOutcome>;
}

/** The ids of page `page` of task `taskId`. */
export function pageIds(taskId: string, page: number): PageIds {
  const id = `${taskId}:p${page}`;
  return { msgID: id, requestId: id };
}

/** Builds the runner; it keeps, per replica, the pages it fetched but could not hand on. */
export function createPagedTaskRunner(opts: PagedTaskRunnerOptions): PagedTaskRunner {
  const { fetcher, store } = opts;
  const memory = opts.memory ?? 256;
  // A page whose publish or progress write failed (NATS away) is handed on again as it was when
  // the task comes back, instead of being fetched again: that would spend quota for a copy.
  const held = new Map<string, FetchedPage>();
  const heldKey = (taskId: string, page: number) => `${page}\n${taskId}`;

  return {
    async run(task, publish) {
      const spec = fetcher.paging(task.source, task.query);
      const fp = paginationFingerprint(task.source, task.query, spec);
      const stored = await store.load(task, fp);
      if (stored.state === "done")
        return { alreadyDone: true, startedAt: 0, fetched: 0, replayed: 0, truncated: false };
      if (stored.state === "fresh" && stored.reason !== undefined) opts.onRestart?.(task, stored.reason);
      let progress = stored.state === "resume" ? stored.progress : null;
      // An incremental query's pages all use the cursor value its first page used, even when a
      // redelivery comes after the cursor moved on: a window that shifted mid-way would skip items.
      let tally: CursorTally | undefined = stored.state === "resume" ? stored.tally : undefined;
      const startedAt = (progress?.pages ?? 0) + 1;
      let replayed = 0;
      let truncated = false;

      const handOn = async (fetched: FetchedPage): Promise<void> => {
        const key = heldKey(task.id, fetched.page);
        // Counted again on a replay, which changes nothing: a page's count is set, not added.
        const next =
          fetched.incremental === undefined ? tally : tallyPage(tally ?? null, fetched.page, fetched.incremental);
        const page = next === undefined ? fetched : { ...fetched, tally: next };
        try {
          await publish(page, pageIds(task.id, page.page));
          // Written only now: progress never points past a page whose records are not stored.
          if (page.next === null) await store.finish(task);
          else await store.save(task, fp, page.next, next);
          tally = next;
          held.delete(key);
        } catch (err) {
          held.set(key, page);
          if (held.size > memory) held.delete(held.keys().next().value as string);
          throw err;
        }
        if (page.meta.truncated) truncated = true;
      };

      // At most one page per task is held: the first that failed stopped the delivery.
      const page = held.get(heldKey(task.id, startedAt));
      if (page !== undefined) {
        await handOn(page);
        replayed++;
        if (page.next === null) return { alreadyDone: false, startedAt, fetched: 0, replayed, truncated };
        progress = page.next;
      }
      const since = tally?.since;
      const result = await fetcher.fetch(
        { source: task.source, query: task.query, lead: task.lead },
        { resume: progress, onPage: handOn, ...(since === undefined ? {} : { since }) },
      );
      return { alreadyDone: false, startedAt, fetched: result.meta.pages, replayed, truncated };
    },
  };
}
