import { FieldReader, join, type RawObject } from "./field-reader";
import { compileTemplate, type Template } from "./template";

/**
 * One rate window: at most `limit` calls per `perMs`. `rolling` (the default) holds in every
 * interval of that length; `clock` counts per epoch-aligned window, for APIs that document a
 * fixed reset grid (e.g. a daily quota reset at 00:00 UTC).
 */
export interface RateWindow {
  readonly limit: number;
  readonly perMs: number;
  readonly align: "rolling" | "clock";
}

/** How a source's calls are rationed: not at all, or by one or more rate windows at once. */
export type LimiterSpec = { readonly kind: "unlimited" } | { readonly kind: "windows"; readonly windows: readonly RateWindow[] };

/** Where one data value comes from; env and file values are treated as secrets. */
export type DataSpec =
  | { readonly kind: "env"; readonly name: string }
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "value"; readonly value: string };

/** How the manager authenticates; templates may only read `{{data.x}}`. */
export type AuthSpec =
  | { readonly type: "api_key"; readonly header: string | null; readonly param: string | null; readonly value: Template }
  | { readonly type: "bearer"; readonly token: Template }
  | { readonly type: "basic"; readonly username: Template; readonly password: Template };

/** Retry policy for retryable upstream failures (5xx, network error, timeout). */
export interface RetrySpec {
  /** Retries after the first attempt; 0 disables retrying. */
  readonly max: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/** The HTTP manager of a source. */
export interface ManagerSpec {
  readonly type: "http" | "http-auth";
  /** Without a trailing slash; query paths start with `/`. */
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly auth: AuthSpec | null;
  readonly retries: RetrySpec;
  /** Headers sent with every query of the source (a query's own headers win). */
  readonly headers: Readonly<Record<string, Template>>;
}

/** A request body: JSON whose string leaves are templates. */
export type BodyNode =
  | { readonly kind: "template"; readonly template: Template }
  | { readonly kind: "literal"; readonly value: number | boolean | null }
  | { readonly kind: "list"; readonly items: readonly BodyNode[] }
  | { readonly kind: "object"; readonly fields: readonly (readonly [string, BodyNode])[] };

/** Pagination: request pages until the body's `next` value is null (or, without `next`, a page yields no records). */
export interface PaginateSpec {
  readonly type: "page" | "cursor";
  /** Query parameter that carries the page number or cursor. */
  readonly param: string;
  /** Response path of the next page's value; null for `page` means "count up from `start`". */
  readonly next: readonly string[] | null;
  readonly start: number;
  readonly maxPages: number;
}

/** Maps the value at a response path to records of one entity type. */
export interface ExtractSpec {
  readonly name: string;
  readonly type: string;
  /** Path segments; empty means the whole body. Numeric segments index lists. */
  readonly path: readonly string[];
}

/** HTTP methods a query may use. */
export const METHODS = ["GET", "POST", "PUT", "DELETE"] as const;

/** One declarative query of a source. */
export interface QueryDef {
  readonly name: string;
  readonly method: (typeof METHODS)[number];
  readonly path: Template;
  readonly params: Readonly<Record<string, Template>>;
  readonly headers: Readonly<Record<string, Template>>;
  readonly body: BodyNode | null;
  readonly paginate: PaginateSpec | null;
  readonly extract: readonly ExtractSpec[];
}

/** A validated source definition, ready for the limiter, secrets and the fetcher. */
export interface SourceDef {
  readonly name: string;
  /** The file (or module) it came from, for error messages. */
  readonly origin: string;
  readonly limiter: LimiterSpec;
  readonly data: Readonly<Record<string, DataSpec>>;
  readonly manager: ManagerSpec;
  /** Queries by name, in declared order; a Map because requests name them. */
  readonly queries: ReadonlyMap<string, QueryDef>;
}

// Source, query and type names become subject tokens and KV key parts.
const NAME = /^[A-Za-z0-9_-]+$/;
const NAME_RULE = "letters, digits, '_' or '-'";
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Validates a parsed source file (`origin` names it in errors) and compiles its templates. */
export function compileSource(raw: unknown, origin: string): SourceDef {
  const r = new FieldReader(origin);
  const o = r.object(raw, "", ["name", "limiter", "data", "manager", "queries"], ["name", "limiter", "manager", "queries"]);
  const name = r.string(o.name, "name", NAME, NAME_RULE);
  const fileBase = /([^/\\]+)\.ya?ml$/.exec(origin)?.[1];
  if (fileBase !== undefined && fileBase !== name) r.fail("name", `"${name}" does not match the file name "${fileBase}"; rename one so they agree`);

  const limiter = readLimiter(r, o.limiter);
  const data = o.data === undefined ? {} : readData(r, o.data);
  const manager = readManager(r, o.manager);
  const queriesRaw = r.map(o.queries, "queries", NAME, NAME_RULE);
  if (Object.keys(queriesRaw).length === 0) r.fail("queries", "declare at least one query");
  const queries = new Map<string, QueryDef>();
  for (const [q, v] of Object.entries(queriesRaw)) queries.set(q, readQuery(r, q, v));

  const def: SourceDef = { name, origin, limiter, data, manager, queries };
  checkDataRefs(r, def);
  return def;
}

function readLimiter(r: FieldReader, v: unknown): LimiterSpec {
  if (v === "unlimited") return { kind: "unlimited" };
  if (typeof v === "string") r.fail("limiter", `expected "unlimited" or a mapping with windows, got ${JSON.stringify(v)}`);
  const o = r.object(v, "limiter", ["windows"], ["windows"]);
  const list = r.list(o.windows, "limiter.windows");
  if (list.length === 0) r.fail("limiter.windows", "declare at least one window, or write `limiter: unlimited`");
  const windows = list.map((w, i): RateWindow => {
    const p = `limiter.windows[${i}]`;
    const wo = r.object(w, p, ["limit", "per", "align"], ["limit", "per"]);
    const align = wo.align === undefined ? "rolling" : r.oneOf(wo.align, `${p}.align`, ["rolling", "clock"] as const);
    return { limit: r.int(wo.limit, `${p}.limit`, 1), perMs: r.duration(wo.per, `${p}.per`), align };
  });
  const seen = new Set<number>();
  windows.forEach((w, i) => {
    if (seen.has(w.perMs)) r.fail(`limiter.windows[${i}].per`, "two windows have the same length; merge them into one with the smaller limit");
    seen.add(w.perMs);
  });
  return { kind: "windows", windows };
}

function readData(r: FieldReader, v: unknown): Record<string, DataSpec> {
  const out: Record<string, DataSpec> = {};
  for (const [k, item] of Object.entries(r.map(v, "data", /^[A-Za-z_][A-Za-z0-9_-]*$/, "a letter or '_' followed by letters, digits, '_' or '-'"))) {
    const p = join("data", k);
    const o = r.object(item, p, ["env", "file", "value"]);
    const given = Object.keys(o);
    if (given.length !== 1) r.fail(p, `give exactly one of env, file, value (got ${given.length === 0 ? "none" : given.join(", ")})`);
    if (o.env !== undefined) out[k] = { kind: "env", name: r.string(o.env, `${p}.env`, ENV_NAME, "an environment variable name") };
    else if (o.file !== undefined) out[k] = { kind: "file", path: r.string(o.file, `${p}.file`) };
    else out[k] = { kind: "value", value: r.scalarText(o.value, `${p}.value`) };
  }
  return out;
}

function readManager(r: FieldReader, v: unknown): ManagerSpec {
  const o = r.object(v, "manager", ["type", "base_url", "timeout", "auth", "retries", "headers"], ["type", "base_url"]);
  const type = r.oneOf(o.type, "manager.type", ["http", "http-auth"] as const);
  const baseUrl = r.string(o.base_url, "manager.base_url").replace(/\/+$/, "");
  let url: URL | null = null;
  try {
    url = new URL(baseUrl);
  } catch {
    r.fail("manager.base_url", `expected an absolute http(s) URL such as https://api.example.com, got ${JSON.stringify(baseUrl)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") r.fail("manager.base_url", `scheme must be http or https, got ${url.protocol}`);
  if (url.search !== "" || url.hash !== "") r.fail("manager.base_url", "must not carry a query string or fragment; put parameters in each query's params");

  let auth: AuthSpec | null = null;
  if (type === "http-auth") {
    if (o.auth === undefined) r.fail("manager.auth", "is required when manager.type is http-auth");
    auth = readAuth(r, o.auth);
  } else if (o.auth !== undefined) {
    r.fail("manager.auth", "is only allowed with manager.type http-auth; change the type or remove auth");
  }

  const retries = o.retries === undefined ? null : r.object(o.retries, "manager.retries", ["max", "base_delay", "max_delay"]);
  return {
    type,
    baseUrl,
    timeoutMs: o.timeout === undefined ? 10_000 : r.duration(o.timeout, "manager.timeout"),
    auth,
    retries: {
      max: retries?.max === undefined ? 2 : r.int(retries.max, "manager.retries.max", 0, 10),
      baseDelayMs: retries?.base_delay === undefined ? 200 : r.duration(retries.base_delay, "manager.retries.base_delay"),
      maxDelayMs: retries?.max_delay === undefined ? 10_000 : r.duration(retries.max_delay, "manager.retries.max_delay"),
    },
    headers: o.headers === undefined ? {} : readHeaders(r, o.headers, "manager.headers"),
  };
}

function readAuth(r: FieldReader, v: unknown): AuthSpec {
  const base = r.object(v, "manager.auth", ["type", "header", "param", "value", "token", "username", "password"], ["type"]);
  const type = r.oneOf(base.type, "manager.auth.type", ["api_key", "bearer", "basic"] as const);
  const tpl = (key: string, x: unknown) => secretTemplate(r, x, `manager.auth.${key}`);
  if (type === "api_key") {
    const o = r.object(v, "manager.auth", ["type", "header", "param", "value"], ["type", "value"]);
    if ((o.header === undefined) === (o.param === undefined)) r.fail("manager.auth", "api_key needs exactly one of header (e.g. X-Api-Key) or param (query-string name)");
    return {
      type,
      header: o.header === undefined ? null : r.string(o.header, "manager.auth.header", HEADER_NAME, "an HTTP header name"),
      param: o.param === undefined ? null : r.string(o.param, "manager.auth.param"),
      value: tpl("value", o.value),
    };
  }
  if (type === "bearer") {
    const o = r.object(v, "manager.auth", ["type", "token"], ["type", "token"]);
    return { type, token: tpl("token", o.token) };
  }
  const o = r.object(v, "manager.auth", ["type", "username", "password"], ["type", "username", "password"]);
  return { type, username: tpl("username", o.username), password: tpl("password", o.password) };
}

// Credentials are per source, not per lead: a {{lead.x}} here would leak lead data into auth.
function secretTemplate(r: FieldReader, v: unknown, path: string): Template {
  const t = compileTemplate(r.scalarText(v, path), `${r.origin}: ${path}`);
  if (t.refs.some((ref) => ref.scope === "lead")) r.fail(path, "credentials may only use {{data.<name>}} placeholders, not lead fields");
  return t;
}

function readHeaders(r: FieldReader, v: unknown, path: string): Record<string, Template> {
  const out: Record<string, Template> = {};
  for (const [k, x] of Object.entries(r.map(v, path, HEADER_NAME, "an HTTP header name"))) {
    out[k] = compileTemplate(r.scalarText(x, join(path, k)), `${r.origin}: ${join(path, k)}`);
  }
  return out;
}

function readQuery(r: FieldReader, name: string, v: unknown): QueryDef {
  const p = join("queries", name);
  const o = r.object(v, p, ["method", "path", "params", "headers", "body", "paginate", "extract"], ["path", "extract"]);
  const method = o.method === undefined ? "GET" : r.oneOf(o.method, `${p}.method`, METHODS);
  const pathText = r.string(o.path, `${p}.path`);
  if (!pathText.startsWith("/")) r.fail(`${p}.path`, `must start with "/" (it is appended to manager.base_url), got ${JSON.stringify(pathText)}`);
  if (pathText.includes("?")) r.fail(`${p}.path`, "must not contain a query string; move it to params");
  const params: Record<string, Template> = {};
  if (o.params !== undefined) {
    for (const [k, x] of Object.entries(r.map(o.params, `${p}.params`, /^.+$/, "non-empty"))) {
      params[k] = compileTemplate(r.scalarText(x, `${p}.params.${k}`), `${r.origin}: ${p}.params.${k}`);
    }
  }
  const body = o.body === undefined ? null : readBody(r, o.body, `${p}.body`);
  if (body !== null && (method === "GET" || method === "DELETE")) r.fail(`${p}.body`, `a ${method} request cannot carry a body; use POST or PUT, or move the values to params`);
  const paginate = o.paginate === undefined ? null : readPaginate(r, o.paginate, `${p}.paginate`);
  if (paginate !== null && Object.hasOwn(params, paginate.param)) r.fail(`${p}.params.${paginate.param}`, "is set by paginate; remove it from params");
  return {
    name,
    method,
    path: compileTemplate(pathText, `${r.origin}: ${p}.path`),
    params,
    headers: o.headers === undefined ? {} : readHeaders(r, o.headers, `${p}.headers`),
    body,
    paginate,
    extract: readExtract(r, o.extract, `${p}.extract`),
  };
}

function readBody(r: FieldReader, v: unknown, path: string): BodyNode {
  if (typeof v === "string") return { kind: "template", template: compileTemplate(v, `${r.origin}: ${path}`) };
  if (v === null || typeof v === "number" || typeof v === "boolean") return { kind: "literal", value: v };
  if (Array.isArray(v)) return { kind: "list", items: v.map((x, i) => readBody(r, x, `${path}[${i}]`)) };
  if (typeof v === "object") return { kind: "object", fields: Object.entries(v as RawObject).map(([k, x]) => [k, readBody(r, x, join(path, k))] as const) };
  return r.fail(path, "expected JSON-like content");
}

function readPaginate(r: FieldReader, v: unknown, path: string): PaginateSpec {
  const o = r.object(v, path, ["type", "param", "next", "start", "max_pages"], ["type", "param"]);
  const type = r.oneOf(o.type, `${path}.type`, ["page", "cursor"] as const);
  if (type === "cursor" && o.next === undefined) r.fail(`${path}.next`, "is required for cursor pagination (the response field holding the next cursor)");
  if (type === "cursor" && o.start !== undefined) r.fail(`${path}.start`, "only applies to page pagination; the first cursor request carries no cursor");
  return {
    type,
    param: r.string(o.param, `${path}.param`),
    next: o.next === undefined ? null : splitPath(r.string(o.next, `${path}.next`)),
    start: o.start === undefined ? 1 : r.int(o.start, `${path}.start`, 0),
    maxPages: o.max_pages === undefined ? 100 : r.int(o.max_pages, `${path}.max_pages`, 1, 100_000),
  };
}

function readExtract(r: FieldReader, v: unknown, path: string): ExtractSpec[] {
  const entries = Object.entries(r.map(v, path, NAME, NAME_RULE));
  if (entries.length === 0) r.fail(path, "declare at least one entry: { <name>: { type: <entity type>, path: <response path> } }");
  return entries.map(([name, x]) => {
    const p = join(path, name);
    const o = r.object(x, p, ["type", "path"], ["type", "path"]);
    const type = r.string(o.type, `${p}.type`, NAME, NAME_RULE);
    // Records travel as a JSON map keyed by type, where this key cannot be an entry.
    if (type === "__proto__") r.fail(`${p}.type`, "this name is reserved (it is the prototype of JavaScript objects); choose another");
    return { name, type, path: splitPath(r.string(o.path, `${p}.path`)) };
  });
}

/** Splits a response path `a.b.0` into segments; `.` or `$` is the whole body. */
export function splitPath(text: string): string[] {
  return text === "." || text === "$" ? [] : text.split(".");
}

// Every {{data.x}} must name declared data; catching it here beats a failure on the first fetch.
function checkDataRefs(r: FieldReader, def: SourceDef): void {
  const check = (t: Template, path: string) => {
    for (const ref of t.refs) {
      if (ref.scope === "data" && !Object.hasOwn(def.data, ref.path[0])) {
        const known = Object.keys(def.data);
        r.fail(path, `{{data.${ref.path[0]}}} is not declared under data (${known.length === 0 ? "no data declared" : `declared: ${known.join(", ")}`})`);
      }
    }
  };
  const auth = def.manager.auth;
  if (auth?.type === "api_key") check(auth.value, "manager.auth.value");
  if (auth?.type === "bearer") check(auth.token, "manager.auth.token");
  if (auth?.type === "basic") {
    check(auth.username, "manager.auth.username");
    check(auth.password, "manager.auth.password");
  }
  for (const [k, t] of Object.entries(def.manager.headers)) check(t, `manager.headers.${k}`);
  for (const q of def.queries.values()) {
    const p = `queries.${q.name}`;
    check(q.path, `${p}.path`);
    for (const [k, t] of Object.entries(q.params)) check(t, `${p}.params.${k}`);
    for (const [k, t] of Object.entries(q.headers)) check(t, `${p}.headers.${k}`);
    const walk = (n: BodyNode, bp: string): void => {
      if (n.kind === "template") check(n.template, bp);
      else if (n.kind === "list") n.items.forEach((x, i) => walk(x, `${bp}[${i}]`));
      else if (n.kind === "object") for (const [k, x] of n.fields) walk(x, `${bp}.${k}`);
    };
    if (q.body !== null) walk(q.body, `${p}.body`);
  }
}
