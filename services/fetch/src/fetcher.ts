import { MachinaError } from "@machina/wire";
import { createHttpManager, type HttpManager, type HttpManagerOptions, type HttpRequest } from "./http";
import type { Acquired, Limiter } from "./limiter";
import {
  countRecords,
  extractRecords,
  mergeRecords,
  readPath,
  renderTemplate,
  renderValue,
  resolveData,
  type BodyNode,
  type EntityRecords,
  type QueryDef,
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
}

/** Runs declarative queries against upstream APIs under the shared limiter. */
export interface Fetcher {
  fetch(req: FetchRequest): Promise<FetchResult>;
  /** Names of all sources. */
  sources(): string[];
  /** Names of the queries of `source` (empty when unknown). */
  queries(source: string): string[];
  /** True when `source` has a query called `query`. */
  hasQuery(source: string, query: string): boolean;
}

/** Options of {@link createFetcher}. */
export interface FetcherOptions {
  readonly sources: readonly SourceDef[];
  readonly limiter: Limiter;
  /** Where `{ env: NAME }` data is read from. Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  readonly http?: HttpManagerOptions;
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
    const data = resolveData(def, opts.env ?? process.env);
    runtimes.set(def.name, { def, data: data.values, manager: createHttpManager(def, data, opts.http) });
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
    async fetch(raw) {
      const start = Date.now();
      const t0 = performance.now();
      const req = checkRequest(raw);
      const { rt, q } = lookup(req);
      const ctx: RenderContext = { source: rt.def.name, query: q.name, lead: req.lead, data: rt.data };
      // Everything is rendered before the first limiter call, so a bad lead costs no quota.
      const base = renderRequest(q, ctx);
      const data: EntityRecords = {};
      let sourceTime = 0;
      let responseTime = 0;
      let attempts = 0;
      let pages = 0;
      let truncated = false;
      let admitted: Acquired | null = null;
      const p = q.paginate;
      let cursor: string | null = p?.type === "page" ? String(p.start) : null;
      const seen = new Set<string>();
      try {
        for (;;) {
          const params = p !== null && cursor !== null ? { ...base.params, [p.param]: cursor } : base.params;
          const res = await rt.manager.call(
            { ...base, params },
            {
              beforeAttempt: async () => {
                admitted = await opts.limiter.acquire(rt.def.name);
              },
              onResponse: (status, headers) => opts.limiter.observeUpstream(rt.def.name, status, headers),
              afterAttempt: () => (admitted === null ? Promise.resolve() : opts.limiter.settle(rt.def.name, admitted)),
            },
          );
          pages += 1;
          attempts += res.attempts;
          sourceTime += res.sourceTimeMs;
          const x0 = performance.now();
          const records = extractRecords(res.body, q.extract, rt.def.name, q.name);
          mergeRecords(data, records);
          responseTime += performance.now() - x0;
          if (p === null) break;
          const next = nextCursor(p.next, res.body, cursor, countRecords(records));
          if (next === null) break;
          if (seen.has(next) || next === cursor) {
            throw new MachinaError(
              "UPSTREAM",
              `query ${rt.def.name}.${q.name}: pagination loops (next ${p.param} "${next}" was already fetched); check paginate.next in ${rt.def.origin}`,
              { retryable: false },
            );
          }
          if (cursor !== null) seen.add(cursor);
          if (pages >= p.maxPages) {
            truncated = true;
            break;
          }
          cursor = next;
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
        meta: {
          start,
          end: start + Math.round(total),
          requestTime: ms(Math.max(0, total - sourceTime - responseTime)),
          sourceTime: ms(sourceTime),
          responseTime: ms(responseTime),
          limiterUsage: last?.usage ?? null,
          limiterQuota: last?.quota ?? null,
          percentQuota: last?.percent ?? null,
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

// The next page's param value, or null when the last page has been fetched.
function nextCursor(
  next: readonly string[] | null,
  body: unknown,
  cursor: string | null,
  records: number,
): string | null {
  if (next !== null) {
    const v = readPath(body, next);
    if (v === undefined || v === null || v === "" || v === false) return null;
    return typeof v === "string" ? v : JSON.stringify(v);
  }
  // Counting pages without a `next` field: an empty page marks the end.
  return records === 0 || cursor === null ? null : String(Number(cursor) + 1);
}

function withContext(err: unknown, extra: Record<string, unknown>): unknown {
  if (!(err instanceof MachinaError)) return err;
  return new MachinaError(err.code, err.message, {
    retryable: err.retryable,
    details: { ...err.details, ...extra },
    cause: err.cause ?? err,
  });
}

function ms(v: number): number {
  return Math.round(v * 1000) / 1000;
}
