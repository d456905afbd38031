import type * as z from "zod";
import { closestWord, componentError, field } from "@machina/config";
import { isPlainObject, type JsonObject } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import type { ComputationSpec, ComputeResult } from "../computations/define";
import type { CodeComputation } from "./code-computation";

const SHAPE =
  "export default { description, args(f) { return f.object({...}) }, run(args, ctx, paging), cacheable? } satisfies CodeComputation (from @machina/compute)";

const PARTS = ["description", "args", "cacheable", "run"];

/**
 * Checks that an imported module's default export implements {@link CodeComputation} and answers
 * its spec for defineComputation; throws BAD_REQUEST naming `file` and the first missing or wrong
 * part, so a bad module stops start-up instead of failing its first call.
 */
export function checkCodeComputation(ns: unknown, file: string): ComputationSpec<z.ZodType> {
  const fail = (part: string, problem: string) => componentError(file, part, `${problem}; write ${SHAPE}`);
  const exported = (ns as { default?: unknown } | null)?.default;
  if (exported === undefined) {
    const named = Object.keys(ns ?? {});
    const has = named.length === 0 ? "" : ` (it exports ${named.join(", ")})`;
    throw fail("default", `the module has no default export${has}`);
  }
  if (!isPlainObject(exported)) throw fail("default", `the default export is ${kindOf(exported)}, not an object`);
  // A misspelt optional part (`cachable: false`) would otherwise be ignored without a word.
  for (const key of Object.keys(exported))
    if (!PARTS.includes(key)) {
      const hint = closestWord(key, PARTS);
      throw fail(key, `unknown part${hint === null ? "" : ` (did you mean "${hint}"?)`}; expected ${PARTS.join(", ")}`);
    }
  const impl = exported as Partial<Record<keyof CodeComputation, unknown>>;
  if (typeof impl.description !== "string" || impl.description.trim() === "")
    throw fail(
      "description",
      impl.description === undefined ? "is missing" : `is ${kindOf(impl.description)}, not a non-empty string`,
    );
  if (typeof impl.run !== "function")
    throw fail("run", impl.run === undefined ? "is missing" : `is ${kindOf(impl.run)}, not a function`);
  if (impl.cacheable !== undefined && typeof impl.cacheable !== "boolean")
    throw fail("cacheable", `is ${kindOf(impl.cacheable)}, not true or false`);
  if (typeof impl.args !== "function")
    throw fail(
      "args",
      impl.args === undefined ? "is missing" : `is ${kindOf(impl.args)}, not a function of the field builders`,
    );
  let schema: unknown;
  try {
    schema = (impl.args as CodeComputation["args"])(field);
  } catch (err) {
    throw fail("args", `args(f) threw: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isSchema(schema))
    throw fail(
      "args",
      `args(f) returned ${kindOf(schema)}, not a schema; return one built with f, e.g. f.object({...})`,
    );
  const run = impl.run as CodeComputation["run"];
  return {
    description: impl.description,
    args: schema,
    cacheable: impl.cacheable as boolean | undefined,
    async run(args, deps, paging) {
      return checkedOutput(await run(args as JsonObject, deps, paging), file);
    },
  };
}

// What run answers goes on the wire as rows; anything else would fail in the codec far from the module.
function checkedOutput(out: unknown, file: string): JsonObject[] | ComputeResult {
  const rows = Array.isArray(out) ? out : isPlainObject(out) ? out.rows : undefined;
  const next = Array.isArray(out) ? "" : isPlainObject(out) ? (out.next ?? "") : undefined;
  if (Array.isArray(rows) && rows.every(isPlainObject) && typeof next === "string")
    return Array.isArray(out) ? (out as JsonObject[]) : { rows: rows as JsonObject[], next };
  throw new MachinaError(
    "INTERNAL",
    `${file}: run answered ${kindOf(out)}, not a list of rows (objects) or { rows, next } with next a string`,
    { details: { origin: file } },
  );
}

// A zod schema, duck-typed: the module's schema comes from the builders handed in, but a module
// importing zod itself may hold another copy, which instanceof would refuse.
function isSchema(v: unknown): v is z.ZodType {
  return (
    typeof v === "object" && v !== null && "_zod" in v && typeof (v as { safeParse?: unknown }).safeParse === "function"
  );
}

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return typeof v === "function" ? "a function" : `${typeof v} ${String(v)}`;
}
