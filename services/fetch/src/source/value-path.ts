// A response path as a source file writes it: the original dot form (`items`, `data.0.site`,
// `.` for the whole body) or a JSONPath (`$.items[?(@.active)]`, `$..site`). Both forms stay
// valid side by side; a path is a JSONPath when it starts with `$.` or `$[`.
import { compileJsonPath, isJsonPath, selectAll, selectValue, type JsonPathSelector } from "./json-path";

/** A compiled response path. */
export type ValuePath =
  | { readonly kind: "dot"; readonly text: string; readonly segments: readonly string[] }
  | { readonly kind: "jsonpath"; readonly text: string; readonly selector: JsonPathSelector };

/** Splits a dot path `a.b.0` into segments; `.` or `$` is the whole body. */
export function splitDotPath(text: string): string[] {
  return text === "." || text === "$" ? [] : text.split(".");
}

/** Compiles `text` as a JSONPath or a dot path; `where` names its place in errors. */
export function compileValuePath(text: string, where: string): ValuePath {
  if (isJsonPath(text)) return { kind: "jsonpath", text, selector: compileJsonPath(text, where) };
  return { kind: "dot", text, segments: splitDotPath(text) };
}

/** Reads the value at `path` (segments; numeric ones index lists); undefined when absent. */
export function readPath(body: unknown, path: readonly string[]): unknown {
  let v: unknown = body;
  for (const seg of path) {
    if (Array.isArray(v)) v = /^\d+$/.test(seg) ? v[Number(seg)] : undefined;
    else if (v !== null && typeof v === "object")
      v = Object.hasOwn(v, seg) ? (v as Record<string, unknown>)[seg] : undefined;
    else return undefined;
  }
  return v;
}

/**
 * The value `path` names in `json`: for a dot path or a definite JSONPath the value there
 * (undefined when absent); for an indefinite JSONPath the list of its matches.
 */
export function readValuePath(path: ValuePath, json: unknown): unknown {
  return path.kind === "dot" ? readPath(json, path.segments) : selectValue(path.selector, json);
}

/**
 * The items `path` selects as records: a list there gives its elements, one value gives
 * itself, absent or null gives none. A JSONPath contributes every match, a list match spread.
 */
export function selectItems(path: ValuePath, json: unknown): unknown[] {
  const spread = (v: unknown): unknown[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
  if (path.kind === "dot") return spread(readPath(json, path.segments));
  return selectAll(path.selector, json).flatMap(spread);
}
