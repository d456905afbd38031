import { MachinaError } from "@machina/wire";
import type { FetchMeta, FetchOptions, FetchRequest, FetchResult } from "../fetcher";
import type { HttpManager } from "../http";
import type { Acquired, Limiter } from "../limiter";
import type { PageProgress } from "../pagination";
import {
  countRecords,
  joinData,
  mergeRecords,
  redact,
  type EntityRecords,
  type ResolvedData,
  type SourceDef,
} from "../source";
import { ms, withContext } from "../result-context";
import { admittedCall } from "./admitted-call";
import { isObject } from "./check-module";
import { toHttpRequest, type CodeRequestScope } from "./code-request";
import type { CodeContext, CodeQuery, CodeResponse, PageToken } from "./code-source";

/** Runs the code queries of one source. */
export interface CodeRunner {
  /** True when the source's module implements `query`. */
  has(query: string): boolean;
  /**
   * Runs a checked request for one of the module's queries, every page through the source's
   * manager and limiter. All pages' records come back in one result, unless `opts.onPage` takes
   * each page as it comes; `opts.resume` continues from where an earlier delivery stopped.
   */
  fetch(req: FetchRequest, opts?: FetchOptions): Promise<FetchResult>;
  /** What a code query's pages depend on, for resume progress: its module and page cap. */
  paging(): unknown;
}

type Hook = "buildRequest" | "parseResponse" | "paginate";

/**
 * The runner of `def`'s code queries, or null when it has none; throws when the source has a
 * `code` block whose module was never loaded (see `loadCodeModules`).
 */
export function createCodeRunner(
  def: SourceDef,
  data: ResolvedData,
  manager: HttpManager,
  limiter: Limiter,
): CodeRunner | null {
  const code = def.code;
  if (code === undefined) return null;
  const loaded = code.loaded;
  if (loaded === undefined)
    throw new MachinaError(
      "BAD_REQUEST",
      `source ${def.name} (${def.origin}): code.module ${code.module} was not loaded; load the sources with loadCodeModules before creating the fetcher`,
      { retryable: false, details: { source: def.name, module: code.module } },
    );
  const { file, impl } = loaded;
  const call = admittedCall(def.name, manager, limiter);
  // One frozen copy: a module cannot change what the next fetch (or the manager) sees.
  const values = Object.freeze(joinData(data.values));
  const clean = (text: string) => redact(text, data.secrets);

  // What a hook threw, as a MachinaError naming the source, module and hook, secrets scrubbed.
  const hookError = (err: unknown, q: string, hook: Hook, label: string): MachinaError => {
    const details = { source: def.name, query: q, module: file, hook };
    if (err instanceof MachinaError)
      return new MachinaError(err.code, clean(err.message), {
        retryable: err.retryable,
        details: { ...err.details, ...details },
        cause: err,
      });
    const said = clean(err instanceof Error ? err.message : String(err));
    // A request that cannot be built is the module's fault; an answer it cannot read is the upstream's to explain.
    if (hook === "buildRequest")
      return new MachinaError(
        "INTERNAL",
        `code source ${def.name} (${file}): queries.${q}.buildRequest threw: ${said}; fix the module or the lead`,
        { retryable: false, details, cause: err },
      );
    return new MachinaError(
      "UPSTREAM",
      `code source ${def.name} (${file}): queries.${q}.${hook} could not read the answer to ${clean(label)}: ${said}`,
      { retryable: false, details, cause: err },
    );
  };

  const guard = async <T>(q: string, hook: Hook, label: string, run: () => T | Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      throw hookError(err, q, hook, label);
    }
  };

  return {
    has: (q) => Object.hasOwn(impl.queries, q),
    paging: () => ({ code: code.module, maxPages: code.maxPages }),
    async fetch(req, fo = {}) {
      const start = Date.now();
      const t0 = performance.now();
      const query: CodeQuery = impl.queries[req.query];
      const scope: CodeRequestScope = { source: def.name, query: req.query, file, baseUrl: def.manager.baseUrl };
      const records: EntityRecords = {};
      let sourceTime = 0;
      let responseTime = 0;
      let attempts = 0;
      let pages = 0;
      let truncated = false;
      let admitted: Acquired | null = null;
      // A redelivered task goes on from the token, page count and stamp its last stored page left.
      const resume = fo.resume?.next.kind === "token" ? fo.resume : null;
      let cursor: PageToken | null = resume?.next.kind === "token" ? resume.next.token : null;
      const before = resume?.pages ?? 0;
      let items = resume?.items ?? 0;
      let lastEnd = resume?.lastEnd ?? 0;
      try {
        for (;;) {
          const page0 = { at: Date.now(), t: performance.now(), sourceTime, responseTime };
          const ctx: CodeContext = {
            source: def.name,
            query: req.query,
            lead: req.lead,
            data: values,
            baseUrl: def.manager.baseUrl,
            page: before + pages + 1,
            cursor,
          };
          const built = await guard(req.query, "buildRequest", "", () => query.buildRequest(ctx));
          const httpReq = safely(() => toHttpRequest(built, scope), clean);
          const sent = await call(httpReq);
          admitted = sent.admitted;
          pages += 1;
          attempts += sent.result.attempts;
          sourceTime += sent.result.sourceTimeMs;
          const x0 = performance.now();
          const res: CodeResponse = {
            status: sent.result.status,
            headers: sent.result.headers,
            body: sent.result.body,
          };
          const label = `${httpReq.method} ${httpReq.path}`;
          const parsed = await guard(req.query, "parseResponse", label, () => query.parseResponse(ctx, res));
          const page = safely(() => checkParsed(parsed, scope), clean);
          let next = page.next;
          const paginate = query.paginate;
          if (next === undefined && paginate !== undefined) {
            const token = await guard(req.query, "paginate", label, () => paginate.call(query, ctx, res));
            next = safely(() => tokenOf(token, (p) => shapeError(scope, "paginate", p)) ?? null, clean);
          }
          responseTime += performance.now() - x0;
          const number = before + pages;
          const more = next !== undefined && next !== null;
          const capped = more && number >= code.maxPages;
          if (capped) truncated = true;
          if (fo.onPage === undefined) mergeRecords(records, page.records);
          else {
            // Stamped strictly later than the page before, so two pages' rows never share a fetch time.
            const end = Math.max(Date.now(), lastEnd + 1);
            lastEnd = end;
            items += countRecords(page.records);
            const t = performance.now() - page0.t;
            const src = sourceTime - page0.sourceTime;
            const resp = responseTime - page0.responseTime;
            const progress: PageProgress | null =
              more && !capped
                ? { next: { kind: "token", token: next as PageToken }, pages: number, items, lastEnd: end }
                : null;
            await fo.onPage({
              page: number,
              next: progress,
              data: page.records,
              rejected: [],
              meta: {
                start: page0.at,
                end,
                requestTime: ms(Math.max(0, t - src - resp)),
                sourceTime: ms(src),
                responseTime: ms(resp),
                limiterUsage: admitted?.usage ?? null,
                limiterQuota: admitted?.quota ?? null,
                percentQuota: admitted?.percent ?? null,
                attempts: sent.result.attempts,
                pages: 1,
                truncated: capped,
              },
            });
          }
          if (!more || capped) break;
          cursor = next as PageToken;
        }
      } catch (err) {
        // The failing page's own attempts are in the manager's error already; add the earlier pages'.
        const failed = err instanceof MachinaError ? Number(err.details.attempts ?? 0) : 0;
        throw withContext(err, { lead: req.lead.id, pagesFetched: pages, attempts: attempts + failed });
      }
      const total = performance.now() - t0;
      const last = admitted as Acquired | null;
      const meta: FetchMeta = {
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
      };
      return { data: records, rejected: [], meta };
    },
  };
}

// Shape problems name the module; their text may quote what it returned, so secrets are scrubbed.
function safely<T>(run: () => T, clean: (text: string) => string): T {
  try {
    return run();
  } catch (err) {
    if (!(err instanceof MachinaError)) throw err;
    throw new MachinaError(err.code, clean(err.message), { retryable: err.retryable, details: err.details });
  }
}

function shapeError(scope: CodeRequestScope, hook: Hook, problem: string): MachinaError {
  return new MachinaError(
    "INTERNAL",
    `code source ${scope.source} (${scope.file}): queries.${scope.query}.${hook} returned ${problem}`,
    { retryable: false, details: { source: scope.source, query: scope.query, module: scope.file, hook } },
  );
}

function checkParsed(raw: unknown, scope: CodeRequestScope): { records: EntityRecords; next?: PageToken | null } {
  const bad = (problem: string) => shapeError(scope, "parseResponse", problem);
  if (!isObject(raw)) throw bad("no object; return { records: { <type>: [records] }, next? }");
  if (!isObject(raw.records)) throw bad("no records mapping; return { records: { <type>: [records] } }");
  const records: EntityRecords = {};
  for (const [type, list] of Object.entries(raw.records)) {
    if (!Array.isArray(list)) throw bad(`records.${type} that is not a list`);
    list.forEach((r, i) => {
      if (!isObject(r)) throw bad(`records.${type}[${i}] that is not an object`);
    });
    records[type] = [...(list as Record<string, unknown>[])];
  }
  return { records, next: tokenOf(raw.next, bad) };
}

function tokenOf(v: unknown, bad: (problem: string) => MachinaError): PageToken | null | undefined {
  if (v === undefined || v === null) return v;
  if (typeof v === "string" || (typeof v === "number" && Number.isFinite(v))) return v;
  throw bad(`a next page token of type ${typeof v}; return a string or number, or null on the last page`);
}
