// The contract between the fetch service and a source module in the config tree. A module never
// sends HTTP itself: it describes each request and reads each answer, and the source's manager
// sends it, so every call is admitted by the shared limiter, retried, timed and mapped to
// MachinaErrors exactly like a declarative query's.

/** Where the next page starts: a cursor, an offset, a page number; whatever the module returns. */
export type PageToken = string | number;

/** What a module's hooks know about the fetch they serve. */
export interface CodeContext {
  readonly source: string;
  readonly query: string;
  readonly lead: { readonly id: string; readonly args: Readonly<Record<string, unknown>> };
  /** The source's resolved `data` values, secrets included: use them, never log or return them. */
  readonly data: Readonly<Record<string, string>>;
  /** `manager.base_url`, without a trailing slash. */
  readonly baseUrl: string;
  /** The page being fetched, from 1. */
  readonly page: number;
  /** The token the previous page returned; null on the first page. */
  readonly cursor: PageToken | null;
}

/** One request a module asks the manager to send. */
export interface CodeRequest {
  /** Default GET. */
  readonly method?: "GET" | "POST" | "PUT" | "DELETE";
  /**
   * A path below `manager.base_url` starting with `/` (a query string may follow), or an absolute
   * URL on the base URL's host. Sent as given when `params` is empty, so a signature over it holds.
   */
  readonly url: string;
  /** Query-string parameters set over the URL's own. Default none. */
  readonly params?: Readonly<Record<string, string>>;
  /** Headers over `manager.headers`; the manager's auth headers win. Default none. */
  readonly headers?: Readonly<Record<string, string>>;
  /** A JSON body, sent as `JSON.stringify(body)` with `content-type: application/json`. */
  readonly body?: unknown;
}

/** A successful (2xx) upstream answer; other statuses never reach the module. */
export interface CodeResponse {
  readonly status: number;
  readonly headers: Headers;
  /** Parsed JSON (NDJSON: the list of its lines); null for an empty body. */
  readonly body: unknown;
}

/** Records a page yielded, by entity type, and where the next page starts. */
export interface CodeParsed {
  readonly records: Readonly<Record<string, readonly Record<string, unknown>[]>>;
  /** The next page's token; null or absent ends paging unless `paginate` says otherwise. */
  readonly next?: PageToken | null;
}

/** One query written in code. */
export interface CodeQuery {
  /** The request for `ctx.page`; throw (a MachinaError for a chosen code) to fail the fetch. */
  buildRequest(ctx: CodeContext): CodeRequest | Promise<CodeRequest>;
  /** The records of one answer, and optionally the next page's token. */
  parseResponse(ctx: CodeContext, response: CodeResponse): CodeParsed | Promise<CodeParsed>;
  /** The next page's token, or null on the last page; asked only when `parseResponse` gave no `next`. */
  paginate?(ctx: CodeContext, response: CodeResponse): PageToken | null | Promise<PageToken | null>;
}

/** What a source module's default export implements: its queries by name. */
export interface CodeSource {
  readonly queries: Readonly<Record<string, CodeQuery>>;
}
