import { MachinaError } from "@machina/wire";
import { parseDuration } from "@machina/config";

/** A parsed-YAML object, read key by key. */
export type RawObject = Record<string, unknown>;

/**
 * Strict reader for one config file: every accessor names the file and the field path in its
 * error, so an operator can go straight to the line that is wrong.
 */
export class FieldReader {
  constructor(readonly origin: string) {}

  /** Throws BAD_REQUEST `<origin>: <path>: <problem>`. */
  fail(path: string, problem: string): never {
    throw new MachinaError("BAD_REQUEST", `${this.origin}: ${path === "" ? "" : `${path}: `}${problem}`, {
      retryable: false,
      details: { origin: this.origin, field: path },
    });
  }

  /** Requires a mapping whose keys are all in `allowed` and include every `required` one. */
  object(v: unknown, path: string, allowed: readonly string[], required: readonly string[] = []): RawObject {
    if (v === null || typeof v !== "object" || Array.isArray(v)) this.fail(path, `expected a mapping, got ${describe(v)}`);
    const o = v as RawObject;
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) {
        const hint = closest(k, allowed);
        this.fail(join(path, k), `unknown key${hint === null ? "" : ` (did you mean "${hint}"?)`}; expected one of ${allowed.join(", ")}`);
      }
    }
    for (const k of required) if (o[k] === undefined) this.fail(join(path, k), "is required");
    return o;
  }

  /** Requires a mapping with arbitrary keys (names chosen by the user), each matching `keyPattern`. */
  map(v: unknown, path: string, keyPattern: RegExp, keyRule: string): RawObject {
    if (v === null || typeof v !== "object" || Array.isArray(v)) this.fail(path, `expected a mapping, got ${describe(v)}`);
    for (const k of Object.keys(v as RawObject)) {
      // Names become keys of plain objects (data, headers, params) and JSON maps on the wire, where
      // `__proto__` would replace the prototype instead of adding an entry.
      if (k === "__proto__") this.fail(join(path, k), "this name is reserved (it is the prototype of JavaScript objects); choose another");
      if (!keyPattern.test(k)) this.fail(join(path, k), `name must be ${keyRule}`);
    }
    return v as RawObject;
  }

  /** Requires a list. */
  list(v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected a list, got ${describe(v)}`);
    return v;
  }

  /** Requires a non-empty string, optionally matching `pattern` (described by `rule`). */
  string(v: unknown, path: string, pattern?: RegExp, rule?: string): string {
    if (typeof v !== "string" || v === "") this.fail(path, `expected a non-empty string, got ${describe(v)}`);
    if (pattern !== undefined && !pattern.test(v)) this.fail(path, `must be ${rule ?? pattern.source}, got ${JSON.stringify(v)}`);
    return v;
  }

  /** Accepts a string, number or boolean and returns its text (YAML turns `50` into a number). */
  scalarText(v: unknown, path: string): string {
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    return this.fail(path, `expected a string, number or boolean, got ${describe(v)}`);
  }

  /** Requires an integer in [min, max]. */
  int(v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(path, `expected an integer${max === Number.MAX_SAFE_INTEGER ? ` >= ${min}` : ` from ${min} to ${max}`}, got ${describe(v)}`);
    }
    return v;
  }

  /** Requires one of `choices`. */
  oneOf<T extends string>(v: unknown, path: string, choices: readonly T[]): T {
    if (typeof v !== "string" || !(choices as readonly string[]).includes(v)) {
      this.fail(path, `expected one of ${choices.join(", ")}, got ${describe(v)}`);
    }
    return v as T;
  }

  /** Requires a duration such as `250ms`, `1s`, `15m`, `1h`, `1d` and returns milliseconds. */
  duration(v: unknown, path: string): number {
    // Bare numbers are refused here: in a source file a unit must say what the number means.
    const ms = typeof v === "string" ? parseDuration(v) : null;
    if (ms === null || ms <= 0) this.fail(path, `expected a duration such as 250ms, 1s, 15m, 1h or 1d, got ${describe(v)}`);
    return ms;
  }
}

/** `a.b` + `c` → `a.b.c`; list indexes are written `a[0]` by callers. */
export function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** A short, quoted rendering of a bad value for an error message. */
export function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

// Suggest the allowed key nearest to a typo, if it is plausibly the intended one.
function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDist = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) [best, bestDist] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
