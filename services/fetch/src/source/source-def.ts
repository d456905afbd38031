import type * as z from "zod";
import { componentError, type ComponentValue } from "@machina/config";
import { codeSpecOf, type CodeSpec } from "./code-schema";
import { incrementalOf, type IncrementalSpec } from "../incremental/incremental-spec";
import { compileExtract } from "./extract-def";
import type { FieldMapping } from "./field-mapping";
import { paginateOf, type PaginateSpec } from "./paginate-spec";
import { isPoolDataRef, poolOf, type PoolSpec } from "./pool-def";
import { METHODS, SOURCE_KIND } from "./source-kind";
import { compileTemplate, type Template } from "./template";
import type { ValuePath } from "./value-path";

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
export type LimiterSpec =
  { readonly kind: "unlimited" } | { readonly kind: "windows"; readonly windows: readonly RateWindow[] };

/** Where one data value comes from; env and file values are treated as secrets. */
export type DataSpec =
  | { readonly kind: "env"; readonly name: string }
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "value"; readonly value: string }
  | {
      readonly kind: "row";
      readonly type: string;
      readonly key: Readonly<Record<string, string>>;
      readonly field: string;
      /** Re-read interval, ms. */
      readonly refreshMs: number;
    };

/** How the manager authenticates; templates may only read `{{data.x}}`. */
export type AuthSpec =
  | {
      readonly type: "api_key";
      readonly header: string | null;
      readonly param: string | null;
      readonly value: Template;
    }
  | { readonly type: "bearer"; readonly token: Template }
  | { readonly type: "basic"; readonly username: Template; readonly password: Template }
  | OAuth2Spec;

/** OAuth2 client credentials: a bearer token fetched from `tokenUrl`, cached and refreshed. */
export interface OAuth2Spec {
  readonly type: "oauth2";
  readonly tokenUrl: string;
  readonly clientId: Template;
  readonly clientSecret: Template;
  readonly scopes: readonly string[];
  /** `header`: HTTP Basic client authentication; `body`: id and secret as form fields. */
  readonly authStyle: "header" | "body";
  /** Extra form parameters of the token request. */
  readonly params: Readonly<Record<string, Template>>;
  /** How long before expiry a token is replaced (at most half its lifetime). */
  readonly refreshMarginMs: number;
  /** Lifetime assumed when the token response has no `expires_in`. */
  readonly defaultExpiresInMs: number;
}

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
  /** Largest response body accepted for every query, in bytes; null: the default (10 MB). */
  readonly maxBodyBytes?: number | null;
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

export type { PaginateSpec, PageKind, PageStops, PagePath } from "./paginate-spec";

/** Maps the items at a response path to records of one entity type. */
export interface ExtractSpec {
  readonly name: string;
  readonly type: string;
  /** Dot-path segments; empty means the whole body. Numeric segments index lists. Unused when `select` is a JSONPath. */
  readonly path: readonly string[];
  /** The compiled selector, a dot path or a JSONPath; absent means `path` as a dot path. */
  readonly select?: ValuePath;
  /** How each selected item becomes a record; absent or null keeps items as they are. */
  readonly mapping?: FieldMapping | null;
}

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
  /** Largest response body accepted, decoded, in bytes; absent: the source's, else the default (10 MB). */
  readonly maxBodyBytes?: number;
  /** How the body is parsed; `auto` reads NDJSON when the content-type says so, JSON otherwise. */
  readonly format?: BodyFormat;
  /** The cursor `{{incremental.value}}` reads; absent when the query is not incremental. */
  readonly incremental?: IncrementalSpec;
}

/** How a response body is parsed. */
export type BodyFormat = "auto" | "json" | "ndjson";

/** A validated source definition, ready for the limiter, secrets and the fetcher. */
export interface SourceDef {
  readonly name: string;
  /** The file (or module) it came from, for error messages. */
  readonly origin: string;
  readonly limiter: LimiterSpec;
  readonly data: Readonly<Record<string, DataSpec>>;
  readonly manager: ManagerSpec;
  /** Several credentials, each with the `limiter` windows to itself; null without a pool. */
  readonly pool: PoolSpec | null;
  /** Queries by name, in declared order; a Map because requests name them. */
  readonly queries: ReadonlyMap<string, QueryDef>;
  /** The module implementing further queries in code; absent for a purely declarative source. */
  readonly code?: CodeSpec;
}

type Source = ComponentValue<typeof SOURCE_KIND>;
type Compile = (text: string, path: string) => Template;

/** Validates a parsed source file (`origin` names it in errors) and compiles its templates. */
export function compileSource(raw: unknown, origin: string): SourceDef {
  const v = SOURCE_KIND.parse(raw, origin);
  // A source handed over in code (a module, a test) has no file name to agree with.
  const fileBase = /([^/\\]+)\.ya?ml$/.exec(origin)?.[1];
  if (fileBase !== undefined && fileBase !== v.name)
    throw componentError(
      origin,
      "name",
      `"${v.name}" does not match the file name "${fileBase}"; rename one so they agree`,
    );
  const tpl: Compile = (text, path) => compileTemplate(text, `${origin}: ${path}`);
  const def: SourceDef = {
    name: v.name,
    origin,
    limiter:
      v.limiter === "unlimited"
        ? { kind: "unlimited" }
        : {
            kind: "windows",
            windows: v.limiter.windows.map((w) => ({ limit: w.limit, perMs: w.per, align: w.align })),
          },
    data: Object.fromEntries(Object.entries(v.data).map(([k, d]) => [k, dataOf(d)])),
    manager: managerOf(v.manager, tpl, origin),
    pool: poolOf(v.pool, origin, v.data, v.manager.auth),
    queries: new Map(Object.entries(v.queries).map(([name, q]) => [name, queryOf(name, q, tpl, origin)])),
    ...(v.code === undefined ? {} : { code: codeSpecOf(v.code) }),
  };
  checkDataRefs(def);
  return def;
}

function dataOf(d: Source["data"][string]): DataSpec {
  if (d.env !== undefined) return { kind: "env", name: d.env };
  if (d.file !== undefined) return { kind: "file", path: d.file };
  if (d.row !== undefined)
    return { kind: "row", type: d.row.type, key: d.row.key, field: d.row.field, refreshMs: d.row.refresh };
  // The schema admits exactly one of the four.
  return { kind: "value", value: d.value ?? "" };
}

function managerOf(m: Source["manager"], tpl: Compile, origin: string): ManagerSpec {
  // Credentials are per source, not per lead: a {{lead.x}} here would leak lead data into auth.
  const secret = (text: string, key: string): Template => {
    const path = `manager.auth.${key}`;
    const t = tpl(text, path);
    if (t.refs.some((ref) => ref.scope === "lead"))
      throw componentError(origin, path, "credentials may only use {{data.<name>}} placeholders, not lead fields");
    if (t.refs.some((ref) => ref.scope === "incremental"))
      throw componentError(origin, path, "credentials may only use {{data.<name>}} placeholders, not the cursor");
    return t;
  };
  const a = m.auth;
  let auth: AuthSpec | null = null;
  if (a?.type === "api_key")
    auth = { type: a.type, header: a.header ?? null, param: a.param ?? null, value: secret(a.value, "value") };
  else if (a?.type === "bearer") auth = { type: a.type, token: secret(a.token, "token") };
  else if (a?.type === "basic")
    auth = { type: a.type, username: secret(a.username, "username"), password: secret(a.password, "password") };
  else if (a?.type === "oauth2")
    auth = {
      type: a.type,
      tokenUrl: a.token_url,
      clientId: secret(a.client_id, "client_id"),
      clientSecret: secret(a.client_secret, "client_secret"),
      scopes: a.scopes,
      authStyle: a.auth_style,
      params: Object.fromEntries(Object.entries(a.params).map(([k, x]) => [k, secret(x, `params.${k}`)])),
      refreshMarginMs: a.refresh_margin,
      defaultExpiresInMs: a.default_expires_in,
    };
  return {
    type: m.type,
    baseUrl: m.base_url,
    timeoutMs: m.timeout,
    maxBodyBytes: m.max_body ?? null,
    auth,
    retries: { max: m.retries.max, baseDelayMs: m.retries.base_delay, maxDelayMs: m.retries.max_delay },
    headers: templates(m.headers, "manager.headers", tpl),
  };
}

function templates(values: Readonly<Record<string, string>>, path: string, tpl: Compile): Record<string, Template> {
  return Object.fromEntries(Object.entries(values).map(([k, x]) => [k, tpl(x, `${path}.${k}`)]));
}

function queryOf(name: string, q: Source["queries"][string], tpl: Compile, origin: string): QueryDef {
  const p = `queries.${name}`;
  const paginate = q.paginate;
  const extract = Object.entries(q.extract).map(([entry, x]) =>
    compileExtract(entry, x, origin, `${p}.extract.${entry}`),
  );
  const types = extract.map((x) => x.type);
  return {
    name,
    method: q.method,
    path: tpl(q.path, `${p}.path`),
    params: templates(q.params, `${p}.params`, tpl),
    headers: templates(q.headers, `${p}.headers`, tpl),
    body: q.body === undefined ? null : bodyOf(q.body, `${p}.body`, tpl),
    paginate: paginate === undefined ? null : paginateOf(paginate, origin, `${p}.paginate`),
    extract,
    ...(q.max_body === undefined ? {} : { maxBodyBytes: q.max_body }),
    format: q.format,
    ...(q.incremental === undefined
      ? {}
      : { incremental: incrementalOf(q.incremental, types, origin, `${p}.incremental`) }),
  };
}

function bodyOf(v: z.core.util.JSONType, path: string, tpl: Compile): BodyNode {
  if (typeof v === "string") return { kind: "template", template: tpl(v, path) };
  if (v === null || typeof v === "number" || typeof v === "boolean") return { kind: "literal", value: v };
  if (Array.isArray(v)) return { kind: "list", items: v.map((x, i) => bodyOf(x, `${path}[${i}]`, tpl)) };
  return { kind: "object", fields: Object.entries(v).map(([k, x]) => [k, bodyOf(x, `${path}.${k}`, tpl)] as const) };
}

/** The credential templates of `auth`, each with its field path below `manager.auth`. */
export function authTemplates(auth: AuthSpec | null): (readonly [string, Template])[] {
  if (auth === null) return [];
  if (auth.type === "api_key") return [["value", auth.value]];
  if (auth.type === "bearer") return [["token", auth.token]];
  if (auth.type === "basic")
    return [
      ["username", auth.username],
      ["password", auth.password],
    ];
  return [
    ["client_id", auth.clientId],
    ["client_secret", auth.clientSecret],
    ...Object.entries(auth.params).map(([k, t]) => [`params.${k}`, t] as const),
  ];
}

/** Splits a response path `a.b.0` into segments; `.` or `$` is the whole body. */
export function splitPath(text: string): string[] {
  return text === "." || text === "$" ? [] : text.split(".");
}

// Every {{data.x}} must name declared data, and {{incremental.value}} an incremental query;
// catching it here beats a failure on the first fetch.
function checkDataRefs(def: SourceDef): void {
  const known = Object.keys(def.data);
  const check = (t: Template, path: string, cursor: "none" | "query" | "declared" = "none") => {
    for (const ref of t.refs) {
      // The cursor is a query's, per lead: only that query's own request may read it.
      if (ref.scope === "incremental" && cursor !== "declared")
        throw componentError(
          def.origin,
          path,
          cursor === "none"
            ? "{{incremental.value}} may only be used in a query's path, params, headers or body"
            : "{{incremental.value}} needs the query to declare incremental (field, initial)",
        );
      if (ref.scope === "data" && isPoolDataRef(def.pool, def.origin, ref.path[0], path)) continue;
      if (ref.scope === "data" && !Object.hasOwn(def.data, ref.path[0])) {
        throw componentError(
          def.origin,
          path,
          `{{data.${ref.path[0]}}} is not declared under data (${known.length === 0 ? "no data declared" : `declared: ${known.join(", ")}`})`,
        );
      }
    }
  };
  for (const [path, t] of authTemplates(def.manager.auth)) check(t, `manager.auth.${path}`);
  for (const [k, t] of Object.entries(def.manager.headers)) check(t, `manager.headers.${k}`);
  for (const q of def.queries.values()) {
    const p = `queries.${q.name}`;
    const cursor = q.incremental === undefined ? "query" : "declared";
    check(q.path, `${p}.path`, cursor);
    for (const [k, t] of Object.entries(q.params)) check(t, `${p}.params.${k}`, cursor);
    for (const [k, t] of Object.entries(q.headers)) check(t, `${p}.headers.${k}`, cursor);
    const walk = (n: BodyNode, bp: string): void => {
      if (n.kind === "template") check(n.template, bp, cursor);
      else if (n.kind === "list") n.items.forEach((x, i) => walk(x, `${bp}[${i}]`));
      else if (n.kind === "object") for (const [k, x] of n.fields) walk(x, `${bp}.${k}`);
    };
    if (q.body !== null) walk(q.body, `${p}.body`);
    if (q.incremental !== undefined && !queryTemplates(q).some((t) => t.refs.some((r) => r.scope === "incremental")))
      throw componentError(
        def.origin,
        `${p}.incremental`,
        'no template of the query reads {{incremental.value}}, so every fetch would ask for everything; put it in params, path, headers or body (e.g. params: { since: "{{incremental.value}}" })',
      );
  }
}

function queryTemplates(q: QueryDef): Template[] {
  const out = [q.path, ...Object.values(q.params), ...Object.values(q.headers)];
  const walk = (n: BodyNode): void => {
    if (n.kind === "template") out.push(n.template);
    else if (n.kind === "list") n.items.forEach(walk);
    else if (n.kind === "object") for (const [, x] of n.fields) walk(x);
  };
  if (q.body !== null) walk(q.body);
  return out;
}
