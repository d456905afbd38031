import { MachinaError } from "@machina/wire";
import type { HttpRequest } from "../http";
import { METHODS } from "../source";
import type { CodeRequest } from "./code-source";

/** What a module's request is checked against, and what errors name. */
export interface CodeRequestScope {
  readonly source: string;
  readonly query: string;
  /** The module file, for messages. */
  readonly file: string;
  /** `manager.base_url`; an absolute request URL must stay on its origin. */
  readonly baseUrl: string;
}

/**
 * Turns what `buildRequest` returned into the manager's request, refusing (INTERNAL, naming the
 * module) a shape the manager cannot send or a URL off the source's host, where its credentials
 * would travel.
 */
export function toHttpRequest(raw: unknown, scope: CodeRequestScope): HttpRequest {
  const bad = (problem: string) =>
    new MachinaError(
      "INTERNAL",
      `code source ${scope.source} (${scope.file}): queries.${scope.query}.buildRequest returned ${problem}`,
      { retryable: false, details: { source: scope.source, query: scope.query, module: scope.file } },
    );
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw bad("no request object; return { method, url, params?, headers?, body? }");
  const r = raw as Partial<CodeRequest>;
  const method = r.method ?? "GET";
  if (!(METHODS as readonly string[]).includes(method))
    throw bad(`method ${JSON.stringify(method)}; use one of ${METHODS.join(", ")}`);
  if (typeof r.url !== "string" || r.url === "")
    throw bad("no url; give a path below manager.base_url such as /v1/items, or an absolute URL on its host");
  const params = stringMap(r.params, "params", bad);
  const headers = stringMap(r.headers, "headers", bad);
  if (r.body !== undefined && (method === "GET" || method === "DELETE"))
    throw bad(`a body on a ${method} request; use POST or PUT, or move the values to params`);
  const target = resolveUrl(r.url, scope.baseUrl, bad);
  return {
    query: scope.query,
    method,
    path: target.path,
    params,
    headers,
    ...(r.body === undefined ? {} : { body: r.body }),
    ...(target.url === undefined ? {} : { url: target.url }),
  };
}

function stringMap(v: unknown, what: string, bad: (problem: string) => MachinaError): Readonly<Record<string, string>> {
  if (v === undefined) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad(`${what} that is not a mapping of strings`);
  for (const [k, x] of Object.entries(v))
    if (typeof x !== "string") throw bad(`${what}.${k} of type ${typeof x}; every value must be a string`);
  return v as Readonly<Record<string, string>>;
}

// A relative url is appended to the base URL as the manager does for a query path; an absolute
// one replaces it but must keep its origin and stay below its path.
function resolveUrl(
  url: string,
  baseUrl: string,
  bad: (problem: string) => MachinaError,
): { path: string; url?: string } {
  if (url.startsWith("/")) {
    if (url.startsWith("//")) throw bad(`url ${JSON.stringify(url)}, which names another host; give a path`);
    return { path: url };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw bad(`url ${JSON.stringify(url)}; give a path starting with / or an absolute http(s) URL`);
  }
  const base = new URL(baseUrl);
  const basePath = base.pathname.replace(/\/+$/, "");
  const below = parsed.pathname === basePath || parsed.pathname.startsWith(`${basePath}/`);
  if (parsed.origin !== base.origin || !below)
    throw bad(
      `url on ${parsed.origin}${parsed.pathname}, outside manager.base_url ${baseUrl}; the source's credentials go only there`,
    );
  return { path: parsed.pathname.slice(basePath.length) + parsed.search, url: parsed.href };
}
