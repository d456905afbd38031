import type { ComponentDoc } from "@machina/config";
import type { ServiceContext } from "@machina/runtime";
import { openDataRows } from "./data-rows";
import type { DataRows } from "./data-rows";
import { compileSources } from "./fetch-components";
import { createFetcher } from "./fetcher";
import type { Fetcher } from "./fetcher";
import { openLimiter } from "./limiter";
import type { Limiter } from "./limiter";
import { createPagedTaskRunner } from "./pagination";
import type { PagedTaskRunner, ProgressStore } from "./pagination";
import type { CursorReader } from "./incremental";
import type { RejectedRecordHandler } from "./rejected-records";
import type { SourceDef } from "./source";

/** Everything one set of sources runs on; a config head that changes sources gets a new one. */
export interface SourceState {
  readonly sources: readonly SourceDef[];
  readonly limiter: Limiter;
  readonly rows: DataRows;
  readonly fetcher: Fetcher;
  readonly pagedTasks: PagedTaskRunner;
}

/** What {@link openSourceState} shares across states: one progress store, one rejected-record counter. */
export interface SourceStateDeps {
  ctx: Pick<ServiceContext<{ fetch: { clockSkewMs: number } }>, "client" | "nc" | "names" | "log" | "configSource"> & {
    config: { fetch: { clockSkewMs: number }; nats: { replicas: number } };
  };
  progress: ProgressStore;
  onRejected: RejectedRecordHandler;
  /** Where incremental queries read their cursors. */
  cursors?: CursorReader;
}

/**
 * Compiles `docs` and opens their limiter, data rows and fetcher. The limiter's state is in the
 * shared KV bucket, so a new state counts every call the previous one made: a quota change
 * rules from the next call on. Nothing is left open when a step fails.
 */
export async function openSourceState(deps: SourceStateDeps, docs: readonly ComponentDoc[]): Promise<SourceState> {
  const { ctx } = deps;
  const sources = await compileSources(docs, ctx.configSource);
  const skew = ctx.config.fetch.clockSkewMs;
  const clock = skew === 0 ? undefined : () => performance.timeOrigin + performance.now() + skew;
  // The limiter logs benched pool credentials (by id, never the secret).
  const limiter = await openLimiter(ctx.nc, {
    bucket: ctx.names.buckets.limiter,
    replicas: ctx.config.nats.replicas,
    sources,
    clock,
    log: ctx.log,
  });
  let rows: DataRows | undefined;
  try {
    // Values some sources read from clean records, followed as data announces changes.
    rows = await openDataRows(ctx, sources);
    const fetcher = createFetcher({
      sources,
      limiter,
      rows,
      env: ctx.configSource.env ?? process.env,
      onRejected: deps.onRejected,
      cursors: deps.cursors,
    });
    // Paginated tasks store each page as it comes and keep how far they got, so a redelivery
    // (over quota, a crash, an upstream error) resumes at the page it stopped on.
    const pagedTasks = createPagedTaskRunner({
      fetcher,
      store: deps.progress,
      onRestart: (task, reason) =>
        ctx.log.warn({ task: task.id, source: task.source, query: task.query, reason }, "pagination starts over"),
    });
    return { sources, limiter, rows, fetcher, pagedTasks };
  } catch (err) {
    rows?.close();
    await limiter.close().catch(() => undefined);
    throw err;
  }
}

/** Releases a state's watches and subscriptions. */
export async function closeSourceState(s: SourceState): Promise<void> {
  s.rows.close();
  await s.limiter.close();
}
