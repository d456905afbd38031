import { componentError, field } from "@machina/config";
import type { CodeSource } from "./code-source";

const NAME = field.name();

const SHAPE =
  "export default { queries: { <name>: { buildRequest(ctx), parseResponse(ctx, response), paginate?(ctx, response) } } } satisfies CodeSource (from @machina/fetch)";

/**
 * Checks that an imported module implements {@link CodeSource}; throws BAD_REQUEST naming `file`
 * and the first missing or wrong part, so a bad module stops start-up instead of a later fetch.
 */
export function checkCodeModule(ns: unknown, file: string): CodeSource {
  const fail = (path: string, problem: string) => componentError(file, path, `${problem}; write ${SHAPE}`);
  const exported = (ns as { default?: unknown } | null)?.default;
  if (exported === undefined) {
    const named = Object.keys(ns ?? {});
    const has = named.length === 0 ? "" : ` (it exports ${named.join(", ")})`;
    throw fail("default", `the module has no default export${has}`);
  }
  if (!isObject(exported)) throw fail("default", `the default export is ${kindOf(exported)}, not an object`);
  const queries = exported.queries;
  if (queries === undefined) throw fail("queries", "the default export has no queries");
  if (!isObject(queries)) throw fail("queries", `is ${kindOf(queries)}, not a mapping of query names`);
  const names = Object.keys(queries);
  if (names.length === 0) throw fail("queries", "is empty; implement at least one query");
  for (const name of names) {
    // Query names become subject tokens and KV keys like declared ones, so they follow the same rule.
    const named = NAME.safeParse(name);
    if (!named.success) throw fail(`queries.${name}`, named.error.issues[0]?.message ?? "is not a name");
    const q = queries[name];
    if (!isObject(q))
      throw fail(`queries.${name}`, `is ${kindOf(q)}, not an object with buildRequest and parseResponse`);
    for (const hook of ["buildRequest", "parseResponse"] as const) {
      if (typeof q[hook] !== "function")
        throw fail(
          `queries.${name}.${hook}`,
          q[hook] === undefined ? "is missing" : `is ${kindOf(q[hook])}, not a function`,
        );
    }
    if (q.paginate !== undefined && typeof q.paginate !== "function")
      throw fail(`queries.${name}.paginate`, `is ${kindOf(q.paginate)}, not a function`);
  }
  return exported as unknown as CodeSource;
}

/** A non-null, non-array object. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return typeof v === "function" ? "a function" : `${typeof v} ${String(v)}`;
}
