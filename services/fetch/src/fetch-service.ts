import { randomUUID } from "node:crypto";
import type { JsonObject, Lead, QueryResponse, QuotaReply, SourcesReply } from "@machina/protos";
import { defineEndpoint, defineWorker, observeGauge, publishDurable } from "@machina/runtime";
import type { ServiceContext, ServiceSpec, WorkerDef } from "@machina/runtime";
import { MachinaError, isMachinaError, makeMeta } from "@machina/wire";
import { fetchComponents } from "./fetch-components";
import type { FetchResult, Fetcher } from "./fetcher";
import { CursorStore, answerMarkOf, closingBatch, listCursors, pageMarkOf, resetCursors } from "./incremental";
import type { Limiter } from "./limiter";
import { closeSourceState, openSourceState } from "./live-sources";
import type { SourceState } from "./live-sources";
import { quotaReply } from "./quota-reply";
import { ProgressStore } from "./pagination";
import { rejectedRecordReporter } from "./rejected-records";
import { SOURCE_KIND } from "./source";

/** Fetch settings. */
export interface FetchConfig {
  fetch: { concurrency: number; unlimitedConcurrency: number; clockSkewMs: number };
}

/** The fetch service (layer 0): sources with their shared limiter, HTTP manager and queries. */
export const fetchService: ServiceSpec<FetchConfig> = {
  name: "fetch",
  version: "0.1.0",
  description: "Fetches from external APIs under quotas shared by every replica",
  httpPort: 9301,
  components: fetchComponents,
  schema: {
    fetch: {
      concurrency: {
        // A rationed source's lanes hold tasks that wait for their grant; more of them only makes
        // grants leave in larger bursts, which an upstream sees with more arrival jitter.
        doc: "FetchTasks this replica works on at once, per rationed source (one with limiter windows).",
        format: "nat",
        default: 16,
      },
      unlimitedConcurrency: {
        // Lanes of an unlimited source mostly wait on the upstream and on their answer's PubAck:
        // at 16 the pipeline bench was latency-bound (273 rec/s at N = 8,000), at 64 it moved
        // about 600 rec/s at N = 20,000 with a core idle, at 256 850 rec/s with both cores busy.
        doc: "FetchTasks this replica works on at once, per source with `limiter: unlimited`.",
        format: "nat",
        default: 256,
      },
      clockSkewMs: {
        doc: "Shifts the clock this replica's limiter reads, for fault tests of clock skew between replicas; leave 0.",
        format: "int",
        default: 0,
      },
    },
  },
  async setup(ctx: ServiceContext<FetchConfig>) {
    const { names, nc } = ctx;
    const deps = {
      ctx,
      progress: await ProgressStore.open(nc, { bucket: names.buckets.fetchPages, replicas: ctx.config.nats.replicas }),
      cursors: await CursorStore.open(nc, { bucket: names.buckets.fetchCursors, replicas: ctx.config.nats.replicas }),
      onRejected: rejectedRecordReporter(ctx),
    };
    // The sources running now; a config head that changes them swaps in a new state (applyConfig).
    let live: SourceState = await openSourceState(deps, ctx.components.docs(SOURCE_KIND.kind));
    // States swapped out, closed once the tasks they hold are done.
    const retired = new Set<SourceState>();
    await dropSharedConsumer(ctx);
    registerLimiterMetrics(ctx, () => live.limiter);
    ctx.log.info({ sources: live.fetcher.sources(), head: ctx.components.head }, "sources loaded");

    const run = async (
      source: string,
      query: string,
      lead: Lead | null,
      ids: { requestId: string; taskId: string },
    ): Promise<QueryResponse> => {
      const { fetcher } = live;
      if (!source)
        throw new MachinaError("BAD_REQUEST", `missing "source"; known sources: ${fetcher.sources().join(", ")}`);
      if (!query)
        throw new MachinaError(
          "BAD_REQUEST",
          `missing "query"; queries of ${source}: ${fetcher.queries(source).join(", ") || "(unknown source)"}`,
        );
      const theLead = lead ?? { id: "", args: {} };
      const result = await fetcher.fetch({ source, query, lead: { id: theLead.id, args: theLead.args ?? {} } });
      // Only a task's answer goes on to be stored, so only it may move a cursor.
      const mark =
        ids.taskId === "" ? undefined : answerMarkOf(result, { source, query, lead: theLead.id, task: ids.taskId });
      return toResponse(result, source, query, theLead, ids, ctx.node.id, mark);
    };

    // Answers fetched but not yet stored on FETCHED, by task id (bounded, oldest dropped first).
    const unpublished = new Map<string, QueryResponse>();

    // One consumer per source on its own subjects, pulled only while its limiter can admit
    // work: an over-quota, paused or failing source holds back nothing but its own tasks.
    const sourceWorker = (source: string): WorkerDef => {
      const unlimited = live.sources.find((s) => s.name === source)?.limiter.kind === "unlimited";
      return defineWorker({
        name: `fetch-${source}`,
        stream: "FETCH",
        durable: names.consumers.fetch(source),
        filter: names.task.fetchOf(source),
        message: "FetchTask",
        concurrency: unlimited ? ctx.config.fetch.unlimitedConcurrency : ctx.config.fetch.concurrency,
        // A rationed source takes its tasks one by one, each when its limiter expects room;
        // an unlimited one pulls for every free lane at once.
        maxBatch: unlimited ? undefined : 1,
        gate: () =>
          live.fetcher.sources().includes(source) ? Math.max(0, live.limiter.waitHint(source) - GATE_LOOKAHEAD_MS) : 0,
        async handle(task, { timing }) {
          if (!task.id)
            throw new MachinaError(
              "BAD_REQUEST",
              "FetchTask has no id; invoke sets it from trigger, tick, lead and query",
            );
          const { fetcher, pagedTasks } = live;
          if (fetcher.paging(task.source, task.query) !== null) {
            // One FETCHED message per page, its id the page's, published before the next
            // page is asked for; the task id stays on every answer.
            const lead = task.lead ?? { id: "", args: {} };
            const paged = { ...task, lead: { id: lead.id, args: lead.args ?? {} } };
            const scope = { source: task.source, query: task.query, lead: lead.id, task: task.id };
            await untilAdmitted(() =>
              pagedTasks.run(paged, async (page, ids) => {
                const mark = pageMarkOf(page, scope);
                const resp = toResponse(
                  page,
                  task.source,
                  task.query,
                  lead,
                  { ...ids, taskId: task.id },
                  ctx.node.id,
                  mark,
                );
                await publishDurable(
                  ctx.client,
                  names.task.fetched(task.source),
                  "QueryResponses",
                  { responses: [resp] },
                  { msgID: ids.msgID, timing: timing(), sender: ctx.node.id },
                );
                // An incremental task's last page: tell data where the cursor moves once every page is stored.
                const closing = closingBatch(page, scope);
                if (closing !== null)
                  await publishDurable(
                    ctx.client,
                    names.task.store(closing.type),
                    "RecordBatches",
                    { batches: [closing] },
                    { msgID: closing.id, sender: ctx.node.id },
                  );
              }),
            );
            return;
          }
          // A task whose answer could not be published (NATS went away) comes back; it is
          // published again as it was, not fetched again: a second fetch would store a second
          // raw row (another fetch time) once the stream had lost the first one's id on restart.
          const resp =
            unpublished.get(task.id) ??
            (await untilAdmitted(() =>
              run(task.source, task.query, task.lead, { requestId: task.id, taskId: task.id }),
            ));
          try {
            // One FETCHED message per task, its id the task id, so the stream drops a copy;
            // hops after this one group freely: what they store again is the same rows.
            await publishDurable(
              ctx.client,
              names.task.fetched(task.source),
              "QueryResponses",
              { responses: [resp] },
              { msgID: task.id, timing: timing(), sender: ctx.node.id },
            );
            unpublished.delete(task.id);
          } catch (err) {
            unpublished.set(task.id, resp);
            if (unpublished.size > UNPUBLISHED_MEMORY) unpublished.delete(unpublished.keys().next().value as string);
            throw err;
          }
        },
      });
    };

    return {
      endpoints: [
        defineEndpoint({
          name: "fetch",
          subject: names.fetch.fetch,
          request: "QueryRequest",
          reply: "QueryResponse",
          description: "Run one query of one source for one lead now and return its records with Meta",
          async handler(req) {
            return run(req.source, req.query, req.lead, { requestId: req.requestId || randomUUID(), taskId: "" });
          },
        }),
        defineEndpoint({
          name: "quota",
          subject: names.fetch.quota,
          request: "QuotaRequest",
          reply: "QuotaReply",
          description: "Usage and quota of every rate window of a source, across all replicas",
          async handler(req) {
            return quotaOf(live.limiter, live.fetcher, req.source);
          },
        }),
        defineEndpoint({
          name: "sources",
          subject: names.fetch.sources,
          request: "Empty",
          reply: "SourcesReply",
          description: "Every source this replica serves, with its query names, sorted by name",
          async handler() {
            return sourcesReply(live.fetcher);
          },
        }),
        defineEndpoint({
          name: "cursors",
          subject: names.fetch.cursors,
          request: "CursorsRequest",
          reply: "CursorsReply",
          description: "Where the cursors of an incremental query stand: one lead's, or every lead's stored one",
          async handler(req) {
            return listCursors(deps.cursors, live.fetcher, req);
          },
        }),
        defineEndpoint({
          name: "cursors_reset",
          subject: names.fetch.cursorsReset,
          request: "CursorResetRequest",
          reply: "CursorResetReply",
          description: "Put an incremental query's cursor back to its initial value or at a value, for one lead or all",
          async handler(req) {
            const reply = await resetCursors(deps.cursors, live.fetcher, req);
            ctx.log.info({ source: req.source, query: req.query, reset: reply.reset }, "cursors reset");
            return reply;
          },
        }),
        defineEndpoint({
          name: "overquota",
          subject: names.fetch.overquota,
          request: "QuotaRequest",
          reply: "QuotaReply",
          description: "Whether a source is over quota now (overQuota), with its windows",
          async handler(req) {
            return quotaOf(live.limiter, live.fetcher, req.source);
          },
        }),
      ],
      workers: live.fetcher.sources().map(sourceWorker),
      // A new state is opened before anything changes, so a head that does not compile or
      // whose secrets are missing leaves the running sources as they were.
      async applyConfig(set, workers) {
        const next = await openSourceState(deps, set.docs(SOURCE_KIND.kind));
        const prev = live;
        live = next;
        // Tasks in hand may still wait on the old limiter for up to HOLD_MAX_MS.
        retired.add(prev);
        setTimeout(() => {
          if (retired.delete(prev)) void closeSourceState(prev).catch(() => undefined);
        }, HOLD_MAX_MS + 5_000).unref();
        const wanted = new Set(next.fetcher.sources().map((s) => `fetch-${s}`));
        const running = new Set(workers.names());
        // A source that turned unlimited (or rationed) needs other lanes: its worker starts again.
        const kindOf = (s: SourceState, source: string) => s.sources.find((d) => d.name === source)?.limiter.kind;
        for (const source of next.fetcher.sources()) {
          const name = `fetch-${source}`;
          if (running.has(name) && kindOf(prev, source) !== kindOf(next, source)) {
            await workers.remove(name);
            running.delete(name);
          }
          if (!running.has(name)) await workers.add(sourceWorker(source));
        }
        for (const name of running) if (!wanted.has(name)) await workers.remove(name);
        ctx.log.info({ sources: next.fetcher.sources(), head: set.head }, "sources reloaded");
      },
      async onStop() {
        for (const s of [live, ...retired]) await closeSourceState(s).catch(() => undefined);
        retired.clear();
      },
    };
  },
};

// A source's lanes keep pulling while its limiter expects room within this long (a pulled task
// waits in the limiter's queue for its slot, up to as long as the limiter lets a call wait);
// only a longer wait leaves the tasks on the stream.
const GATE_LOOKAHEAD_MS = 2_000;

// Answers kept for tasks whose FETCHED publish failed; past it the oldest is fetched again if it returns.
const UNPUBLISHED_MEMORY = 10_000;

// Longest quota wait a pulled task sits out in hand; a longer one goes back to the stream.
const HOLD_MAX_MS = 30_000;

// A task already pulled waits for its turn in the limiter's queue instead of going back to the
// stream: a nak would hand it to another lane that would only queue again behind it. Only the
// pull gate decides how much is taken, so what is held is bounded by the worker's lanes.
async function untilAdmitted<T>(attempt: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      const wait = isMachinaError(err, "OVER_QUOTA") ? Number(err.details.retryAfterMs ?? 0) : Infinity;
      if (!(wait > 0 && wait <= HOLD_MAX_MS)) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

// Before per-source consumers, one consumer took every source's tasks; a work-queue stream
// refuses overlapping consumers, so it has to go before the per-source ones are made.
async function dropSharedConsumer(ctx: ServiceContext<FetchConfig>): Promise<void> {
  const stream = ctx.names.streams.FETCH;
  const legacy = await ctx.jsm.consumers.info(stream, "fetch").catch(() => null);
  if (legacy === null) return;
  await ctx.jsm.consumers.delete(stream, "fetch").catch(() => undefined);
  ctx.log.info({ stream }, "removed the shared fetch consumer; every source now has its own");
}

function registerLimiterMetrics(ctx: ServiceContext<FetchConfig>, current: () => Limiter): void {
  observeGauge(
    ctx.metrics,
    "machina_limiter_late_grants",
    "Grants confirmed too late to be used (slow KV); they stay counted, so the quota holds.",
    () => current().stats().lateGrants,
  );
  observeGauge(
    ctx.metrics,
    "machina_limiter_voided_calls",
    "Calls held by late grants: spent in the quota, never sent.",
    () => current().stats().voidedCalls,
  );
  observeGauge(
    ctx.metrics,
    "machina_limiter_slow_calls",
    "Calls answered after their grant's span; their record was moved later so the quota still holds.",
    () => current().stats().slowCalls,
  );
  observeGauge(
    ctx.metrics,
    "machina_limiter_conflicts",
    "Limiter compare-and-set rounds lost to another replica.",
    () => current().stats().conflicts,
  );
}

function toResponse(
  result: FetchResult,
  source: string,
  query: string,
  lead: Lead,
  ids: { requestId: string; taskId: string },
  node: string,
  cursor?: JsonObject,
): QueryResponse {
  const m = result.meta;
  const types: Record<string, { records: JsonObject[] }> = {};
  for (const [type, records] of Object.entries(result.data)) types[type] = { records: records as JsonObject[] };
  return {
    requestId: ids.requestId,
    taskId: ids.taskId,
    source,
    query,
    lead,
    data: { types },
    meta: makeMeta({
      start: m.start,
      end: m.end,
      requestTime: m.requestTime,
      sourceTime: m.sourceTime,
      responseTime: m.responseTime,
      limiterUsage: m.limiterUsage ?? 0,
      limiterQuota: m.limiterQuota ?? 0,
      ...(m.percentQuota === null ? {} : { percentQuota: m.percentQuota }),
      source,
      query,
      node,
      attempts: m.attempts,
      pages: m.pages,
    }),
    ...(cursor === undefined ? {} : { cursor }),
  };
}

/** What {@link Fetcher} serves, as fetch.sources answers it: sources by name, their queries as declared. */
function sourcesReply(fetcher: Fetcher): SourcesReply {
  const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return {
    sources: fetcher
      .sources()
      .sort(byName)
      .map((name) => ({ name, queries: fetcher.queries(name) })),
  };
}

async function quotaOf(limiter: Limiter, fetcher: Fetcher, source: string): Promise<QuotaReply> {
  if (!source || !fetcher.sources().includes(source)) {
    throw new MachinaError(
      "UNKNOWN_SOURCE",
      `unknown source "${source}"; known sources: ${fetcher.sources().join(", ")}`,
      { retryable: false },
    );
  }
  return quotaReply(await limiter.report(source));
}
