// JSONPath selectors in source files, evaluated by jsonpath-plus. A source file is data, not
// code: script expressions (`[(...)]`) are refused when the source is compiled, filters
// (`[?(...)]`) may only compare and combine values (no calls, assignments or prototype names),
// and what remains runs in the library's sandboxed evaluator, never through `eval`.
import { JSONPath } from "jsonpath-plus";
import { MachinaError } from "@machina/wire";

/** A compiled JSONPath selector. */
export interface JsonPathSelector {
  /** The path as written, for error messages. */
  readonly text: string;
  /**
   * True when the path names one place (only names and indexes): it yields that value or
   * nothing. An indefinite one (wildcard, recursive descent, filter, slice, union) yields a list.
   */
  readonly definite: boolean;
}

// `$.`, `$[` and `$..` start a JSONPath; `$` alone stays the whole body (as it always was), and
// `$name.x` stays a dot path whose first key starts with `$`.
const JSON_PATH_START = /^\$[.[]/;

/** True when `text` is written as a JSONPath (`$.a`, `$[0]`, `$..a`) rather than a dot path. */
export function isJsonPath(text: string): boolean {
  return JSON_PATH_START.test(text);
}

// Inside a filter, what would make it code rather than a comparison.
const FILTER_REFUSED: readonly [RegExp, string][] = [
  [/[\w$\])]\s*\(/, "a function call"],
  [/(^|[^=!<>])=(?!=)/, "an assignment"],
  [/=>/, "a function"],
  [/\+\+|--/, "an increment"],
  [/[;`{}]/, "a statement, template string or block"],
  [
    /\b(?:new|function|this|import|constructor|prototype|__proto__|__defineGetter__|__lookupGetter__)\b/,
    "a keyword or prototype name",
  ],
];

/** Compiles `text` (`where` names its place in errors); throws BAD_REQUEST for what it refuses. */
export function compileJsonPath(text: string, where: string): JsonPathSelector {
  const refuse = (why: string): never => {
    throw new MachinaError("BAD_REQUEST", `${where}: JSONPath ${JSON.stringify(text)} ${why}`, { retryable: false });
  };
  if (!balanced(text)) refuse('has unbalanced brackets, parentheses or quotes; check every "[" has its "]"');
  let segments: string[];
  try {
    segments = JSONPath.toPathArray(text);
  } catch (err) {
    return refuse(`cannot be parsed (${(err as Error).message})`);
  }
  let definite = true;
  for (const seg of segments.slice(1)) {
    if (seg.startsWith("(")) {
      refuse(
        `has a script expression [${seg}], which source files may not run; select with names, indexes, wildcards, slices or a filter [?(...)]`,
      );
    }
    if (seg.startsWith("?(")) {
      const body = withoutStrings(seg.slice(2, -1));
      for (const [re, what] of FILTER_REFUSED)
        if (re.test(body))
          refuse(
            `has ${what} in the filter [${seg}]; filters may only compare @ fields with literals using == != < <= > >= && || !`,
          );
    }
    if (!/^(?:\d+|[^*?()@^~:,.'"[\]]+)$/.test(seg)) definite = false;
  }
  return { text, definite };
}

/** Every match of `sel` in `json`, in document order; none for an absent (null) body. */
export function selectAll(sel: JsonPathSelector, json: unknown): unknown[] {
  if (json === null || json === undefined) return [];
  // The library wants an object or array to start from; a scalar body has nothing below it.
  if (typeof json !== "object") return [];
  const out = JSONPath({
    path: sel.text,
    json: json as object,
    wrap: true,
    // The sandbox; the compile step already refused what it would have to guard against.
    eval: "safe",
    // A filter that reads a field some items lack just does not match those items.
    ignoreEvalErrors: true,
  }) as unknown;
  return Array.isArray(out) ? out : [];
}

/** The value `sel` picks in `json`: the one match of a definite path (undefined when none), every match of an indefinite one. */
export function selectValue(sel: JsonPathSelector, json: unknown): unknown {
  const all = selectAll(sel, json);
  return sel.definite ? all[0] : all;
}

// Quotes, brackets and parentheses pair up; the library accepts `$.a[` and silently does something.
function balanced(text: string): boolean {
  const stack: string[] = [];
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote !== null) {
      if (c === "\\") i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if (c === "[" || c === "(") stack.push(c === "[" ? "]" : ")");
    else if (c === "]" || c === ")") {
      if (stack.pop() !== c) return false;
    }
  }
  return quote === null && stack.length === 0;
}

// String literals may hold anything ("a(b)", "x=y"); only the code around them is checked.
function withoutStrings(code: string): string {
  return code.replace(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g, "''");
}
