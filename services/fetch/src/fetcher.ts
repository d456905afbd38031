import { MachinaError } from "@machina/wire";
import { createCodeRunner, type CodeRunner } from "./code-source";
import { createHttpManager, type HttpManager, type HttpManagerOptions, type HttpRequest } from "./http";
import {
  cursorValue,
  incrementalOutcome,
  type CursorReader,
  type CursorTally,
  type CursorValue,
  type IncrementalOutcome,
} from "./incremental";
import type { Acquired, Limiter } from "./limiter";
import type { RejectedRecordHandler } from "./rejected-records";
import { ms, withContext } from "./result-context";
import { startWalk, type PageProgress, type PageStep, type WalkScope } from "./pagination";
import {
  checkExtractLeads,
  countRecords,
  extractPage,
  mergeRecords,
  renderTemplate,
  renderValue,
  resolveData,
  type BodyNode,
  type DataRowValues,
  type EntityRecords,
  type PaginateSpec,
  type QueryDef,
  type RejectedRecord,
  type RenderContext,
  type SourceDef,
} from "./source";

/** A lead as the fetcher needs it: an id for error messages and the args templates read. */
export interface FetchLead {
  readonly id: string;
  readonly args: Readonly<Record<string, unknown>>;
}

/** One fetch: run `query` of `source` for `lead`. */
export interface FetchRequest {
  readonly source: string;
  readonly query: string;
  readonly lead: FetchLead;
}

/** Timing and quota facts of one fetch; times in ms, `start`/`end` epoch ms. */
export interface FetchMeta {
  start: number;
  end: number;
  /** Time outside the upstream and extraction: rendering, limiter, backoff sleeps. */
  requestTime: number;
  /** Time waiting on the upstream, all pages and attempts. */
  sourceTime: number;
  /** Time spent extracting records from responses. */
  responseTime: number;
  /** Tightest window after the last admission; null for unlimited sources. */
  limiterUsage: number | null;
  limiterQuota: number | null;
  percentQuota: number | null;
  /** Upstream calls made, retries and pages included. */
  attempts: number;
  pages: number;
  /** True when pagination stopped at `max_pages` with more pages left. */
  truncated: boolean;
}

/** Records by entity type plus meta. */
export interface FetchResult {
  data: EntityRecords;
  meta: FetchMeta;
  /** Records left out because a mapped field could not be coerced; the others are in `data`. */
  rejected?: readonly RejectedRecord[];
  /** An incremental query's cursor: the value rendered, and what these records say about it. */
  incremental?: IncrementalOutcome;
}

/** One page of a paginated fetch, handed to {@link FetchOptions.onPage} before the next is requested. */
export interface FetchedPage extends FetchResult {
  /** The page's number, 1-based, counted across the deliveries of a task. */
  readonly page: number;
  /** Where paging continues after it; null when it was the last page to fetch. */
  readonly next: PageProgress | null;
  /** An incremental task's cursor progress up to this page, which the paged task runner adds. */
  readonly tally?: CursorTally;
}

/** How one fetch pages: where it starts, and who takes each page as it arrives. */
export interface FetchOptions {
  /** Continue a paginated fetch from here instead of the first page (ignored for other queries). */
  readonly resume?: PageProgress | null;
  /**
   * Takes every page's records (and meta) as soon as the page is fetched; the next page is only
   * requested once it resolves, and the fetch's own result then carries no records.
   */
  readonly onPage?: (page: FetchedPage) => Promise<void>;
  /** The cursor value an incremental query renders (a task's pinned one); absent: the stored cursor, else the initial value. */
  readonly since?: CursorValue;
}

/** Runs declarative queries against upstream APIs under the shared limiter. */
export interface Fetcher {
  fetch(req: FetchRequest, opts?: FetchOptions): Promise<FetchResult>;
  /** Names of all sources. */
  sources(): string[];
  /** Names of the queries of `source` (empty when unknown). */
  queries(source: string): string[];
  /** True when `source` has a query called `query`. */
  hasQuery(source: string, query: string): boolean;
  /** The pagination of `source`.`query`; null when it fetches one page or is unknown. */
  pagination(source: string, query: string): PaginateSpec | null;
  /** What the pages of `source`.`query` depend on (its pagination, or its code module); null when it fetches one page. */
  paging(source: string, query: string): unknown;
  /** The query's definition (its `incremental` included); undefined when unknown. */
  query(source: string, query: string): QueryDef | undefined;
}

/** Options of {@link createFetcher}. */
export interface FetcherOptions {
  readonly sources: readonly SourceDef[];
  readonly limiter: Limiter;
  /** Where `{ env: NAME }` data is read from. Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  readonly http?: HttpManagerOptions;
  /** Current values of sources' `row` data (see data-rows.ts); without it such values never load. */
  readonly rows?: DataRowValues;
  /** Told of every record left out of a page (a mapped field that could not be coerced), as the page is extracted. */
  readonly onRejected?: RejectedRecordHandler;
  /** Where incremental queries read their cursors; without it they always use the initial value. */
  readonly cursors?: CursorReader;
}

interface Runtime {
  readonly def: SourceDef;
  readonly data: Readonly<Record<string, string>>;
  readonly manager: HttpManager;
}

/**
 * Builds the fetcher; resolves every source's data now, so a missing secret stops start-up
 * with a message naming the variable instead of failing every fetch later.
 */
export function createFetcher(opts: FetcherOptions): Fetcher {
  const runtimes = new Map<string, Runtime>();
  // Sources whose module implements queries in code, by name.
  const coded = new Map<string, CodeRunner>();
  const limited = new Set(opts.limiter.sources());
  for (const def of opts.sources) {
    if (runtimes.has(def.name)) {
      throw new MachinaError(
        "BAD_REQUEST",
        `source ${def.name} is defined twice (${runtimes.get(def.name)?.def.origin} and ${def.origin}); remove one`,
        { retryable: false },
      );
    }
    if (!limited.has(def.name)) {
      throw new MachinaError(
        "BAD_REQUEST",
        `source ${def.name} is missing from the limiter; open the limiter with the same sources as the fetcher`,
        { retryable: false },
      );
    }
    const data = resolveData(def, opts.env ?? process.env, opts.rows);
    // The limiter learns a pool's credentials by id only, once their secrets are read.
    if (def.pool !== null)
      opts.limiter.usePool(
        def.name,
        (data.credentials ?? []).map((c) => c.id),
      );
    runtimes.set(def.name, { def, data: data.values, manager: createHttpManager(def, data, opts.http) });
    const runner = createCodeRunner(def, data, (runtimes.get(def.name) as Runtime).manager, opts.limiter);
    if (runner !== null) coded.set(def.name, runner);
  }

  function lookup(req: FetchRequest): { rt: Runtime; q: QueryDef } {
    const rt = runtimes.get(req.source);
    if (rt === undefined) {
      const known = [...runtimes.keys()];
      throw new MachinaError(
        "UNKNOWN_SOURCE",
        `unknown source "${req.source}"; known sources: ${known.join(", ") || "none (no source files loaded)"}`,
        {
          retryable: false,
          details: { source: req.source, known },
        },
      );
    }
    const q = rt.def.queries.get(req.query);
    if (q === undefined) {
      const known = [...rt.def.queries.keys()];
      throw new MachinaError(
        "NOT_FOUND",
        `source ${req.source} has no query "${req.query}"; its queries: ${known.join(", ")}`,
        {
          retryable: false,
          details: { source: req.source, query: req.query, known },
        },
      );
    }
    return { rt, q };
  }

  return {
    sources: () => [...runtimes.keys()],
    queries: (source) => [...(runtimes.get(source)?.def.queries.keys() ?? [])],
    hasQuery: (source, query) => runtimes.get(source)?.def.queries.has(query) ?? false,
    pagination: (source, query) => runtimes.get(source)?.def.queries.get(query)?.paginate ?? null,
    paging(source, query) {
      const code = coded.get(source);
      if (code?.has(query)) return code.paging();
      const q = runtimes.get(source)?.def.queries.get(query);
      // The cursor is part of what a task's pages depend on: progress made under another is not resumed.
      return q?.paginate == null ? null : q.incremental === undefined ? q.paginate : [q.paginate, q.incremental];
    },
    query: (source, query) => runtimes.get(source)?.def.queries.get(query),
    async fetch(raw, fo = {}) {
      const start = Date.now();
      const t0 = performance.now();
      const req = checkRequest(raw);
      const { rt, q } = lookup(req);
      const code = coded.get(rt.def.name);
      if (code?.has(q.name)) return code.fetch(req, fo);
      const inc = q.incremental;
      const at = { source: rt.def.name, query: q.name, lead: req.lead.id };
      const since = inc === undefined ? undefined : await cursorValue(inc, at, fo.since, opts.cursors);
      const ctx: RenderContext = {
        source: rt.def.name,
        query: q.name,
        lead: req.lead,
        data: rt.data,
        ...(since === undefined ? {} : { incremental: { value: since } }),
      };
      const outcome = (records: EntityRecords): { incremental?: IncrementalOutcome } =>
        inc === undefined || since === undefined ? {} : { incremental: incrementalOutcome(inc, since, records) };
      // Everything is rendered before the first limiter call, so a bad lead costs no quota.
      const base = renderRequest(q, ctx);
      checkExtractLeads(q.extract, ctx);
      const rejected: RejectedRecord[] = [];
      const data: EntityRecords = {};
      let sourceTime = 0;
      let responseTime = 0;
      let attempts = 0;
      let pages = 0;
      let truncated = false;
      let admitted: Acquired | null = null;
      const walk = q.paginate === null ? null : startWalk(q.paginate, walkScope(rt.def, q), fo.resume ?? null);
      try {
        for (;;) {
          const page0 = { at: Date.now(), t: performance.now(), sourceTime, responseTime };
          const pageReq = walk === null ? base : walk.request(base);
          const res = await rt.manager.call(pageReq, {
            beforeAttempt: async () => {
              admitted = await opts.limiter.acquire(rt.def.name);
              return admitted.credential;
            },
            onResponse: (status, headers) =>
              opts.limiter.observeUpstream(rt.def.name, status, headers, admitted?.credential),
            onRefused: (status) => opts.limiter.bench(rt.def.name, admitted?.credential, status),
            afterAttempt: () => (admitted === null ? Promise.resolve() : opts.limiter.settle(rt.def.name, admitted)),
          });
          pages += 1;
          attempts += res.attempts;
          sourceTime += res.sourceTimeMs;
          const x0 = performance.now();
          const extracted = extractPage(res.body, q.extract, rt.def.name, q.name, {
            page: walk === null ? null : (fo.resume?.pages ?? 0) + pages,
            lead: req.lead,
          });
          const records = extracted.records;
          for (const r of extracted.rejected)
            opts.onRejected?.(r, { source: rt.def.name, query: q.name, lead: req.lead.id });
          responseTime += performance.now() - x0;
          const answered = Date.now();
          const step: PageStep =
            walk === null
              ? { page: 1, end: answered, next: null, truncated: false }
              : walk.advance({
                  request: pageReq,
                  body: res.body,
                  headers: res.headers,
                  // A page whose records were all rejected still had records: it is not the empty last page.
                  records: countRecords(records) + extracted.rejected.length,
                  end: answered,
                });
          if (step.truncated) truncated = true;
          if (fo.onPage === undefined) {
            mergeRecords(data, records);
            rejected.push(...extracted.rejected);
          } else {
            const t = performance.now() - page0.t;
            const src = sourceTime - page0.sourceTime;
            const resp = responseTime - page0.responseTime;
            await fo.onPage({
              page: step.page,
              next: step.next,
              data: records,
              rejected: extracted.rejected,
              ...outcome(records),
              meta: {
                ...limiterMeta(admitted),
                start: page0.at,
                end: step.end,
                requestTime: ms(Math.max(0, t - src - resp)),
                sourceTime: ms(src),
                responseTime: ms(resp),
                attempts: res.attempts,
                pages: 1,
                truncated: step.truncated,
              },
            });
          }
          if (step.next === null) break;
        }
      } catch (err) {
        // The failing page's own attempts are in the error already; add the earlier pages'.
        const failed = err instanceof MachinaError ? Number(err.details.attempts ?? 0) : 0;
        throw withContext(err, { lead: req.lead.id, pagesFetched: pages, attempts: attempts + failed });
      }
      const total = performance.now() - t0;
      const last = admitted as Acquired | null;
      return {
        data,
        rejected,
        ...outcome(data),
        meta: {
          start,
          end: start + Math.round(total),
          requestTime: ms(Math.max(0, total - sourceTime - responseTime)),
          sourceTime: ms(sourceTime),
          responseTime: ms(responseTime),
          ...limiterMeta(last),
          attempts,
          pages,
          truncated,
        },
      };
    },
  };
}

// Requests arrive from the wire; reject malformed ones with a message instead of a TypeError.
function checkRequest(raw: unknown): FetchRequest {
  const r = raw as Partial<FetchRequest> | null;
  const bad = (what: string) =>
    new MachinaError("BAD_REQUEST", `fetch request ${what}; send { source, query, lead: { id, args } }`, {
      retryable: false,
    });
  if (r === null || typeof r !== "object") throw bad("must be an object");
  if (typeof r.source !== "string" || r.source === "") throw bad("needs a source name");
  if (typeof r.query !== "string" || r.query === "") throw bad("needs a query name");
  const lead = r.lead as Partial<FetchLead> | undefined;
  if (lead === null || typeof lead !== "object") throw bad("needs a lead");
  if (typeof lead.id !== "string") throw bad("needs lead.id (a string)");
  const args = lead.args ?? {};
  if (args === null || typeof args !== "object" || Array.isArray(args)) throw bad("needs lead.args to be an object");
  return { source: r.source, query: r.query, lead: { id: lead.id, args } };
}

/** Renders a query's path, params, headers and body for one lead; throws on a missing lead field. */
export function renderRequest(q: QueryDef, ctx: RenderContext): HttpRequest {
  const params: Record<string, string> = {};
  for (const [k, t] of Object.entries(q.params)) params[k] = renderTemplate(t, ctx, `param ${k}`);
  const headers: Record<string, string> = {};
  for (const [k, t] of Object.entries(q.headers)) headers[k] = renderTemplate(t, ctx, `header ${k}`);
  return {
    query: q.name,
    method: q.method,
    path: renderTemplate(q.path, ctx, "path", encodeURIComponent),
    params,
    headers,
    body: q.body === null ? undefined : renderBody(q.body, ctx),
  };
}

function renderBody(n: BodyNode, ctx: RenderContext): unknown {
  if (n.kind === "template") return renderValue(n.template, ctx, "body");
  if (n.kind === "literal") return n.value;
  if (n.kind === "list") return n.items.map((x) => renderBody(x, ctx));
  return Object.fromEntries(n.fields.map(([k, x]) => [k, renderBody(x, ctx)]));
}

// Names for pagination errors, and the host a next page URL must stay on.
function walkScope(def: SourceDef, q: QueryDef): WalkScope {
  const auth = def.manager.auth;
  return {
    source: def.name,
    query: q.name,
    origin: def.origin,
    baseUrl: def.manager.baseUrl,
    authParam: auth?.type === "api_key" ? auth.param : null,
  };
}

function limiterMeta(a: Acquired | null): Pick<FetchMeta, "limiterUsage" | "limiterQuota" | "percentQuota"> {
  return { limiterUsage: a?.usage ?? null, limiterQuota: a?.quota ?? null, percentQuota: a?.percent ?? null };
}
