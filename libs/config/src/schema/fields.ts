import * as z from "zod";
import { NAME_RULE, nameProblem } from "@machina/subjects";
import { describeValue } from "@machina/protos";
import { durationProblem, parseDuration, formatDuration } from "../duration";
import { closestWord } from "./closest-word";

/** Options of {@link field.duration}. */
export interface DurationOptions {
  /** Shortest accepted, ms. Default 1 (zero is refused). */
  min?: number;
  /** Longest accepted, ms. Default none. */
  max?: number;
  /** Refuse values that are not a whole number of seconds (CQL TTLs). Default false. */
  wholeSeconds?: boolean;
}

const requiredOr = (text: (input: unknown) => string) => (iss: { input?: unknown }) =>
  iss.input === undefined ? undefined : text(iss.input);

/**
 * Builders for component schemas. Each one carries its own error wording, so every kind words
 * the same mistake the same way, and a `kind` in its metadata, so the reference docs can say
 * "duration" or "name" instead of "string".
 */
export const field = {
  /** A mapping with exactly these keys; an unknown key is refused with the nearest known one. */
  object<T extends z.ZodRawShape>(shape: T) {
    const known = Object.keys(shape);
    return z.strictObject(shape, {
      error: (iss) => {
        if (iss.code !== "unrecognized_keys") return undefined;
        const hint = closestWord(iss.keys[0], known);
        return `unknown key${hint === null ? "" : ` (did you mean "${hint}"?)`}; expected one of ${known.join(", ")}`;
      },
    });
  },

  /** A name under the one name rule (sources, queries, types, fields, ledgers, triggers…). */
  name() {
    return z
      .string({ error: requiredOr((v) => `expected a name (${NAME_RULE}), got ${describeValue(v)}`) })
      .superRefine((v, ctx) => {
        const problem = nameProblem(v);
        if (problem !== null) ctx.addIssue({ code: "custom", message: problem, input: v });
      })
      .meta({ kind: "name" });
  },

  /**
   * A mapping keyed by names, e.g. `queries: { site: {...} }`; with `emptyHint` an empty one is
   * refused with that message.
   */
  names<V extends z.ZodType>(value: V, opts: { emptyHint?: string } = {}) {
    const map = z.record(field.name(), value).meta({ kind: "names" });
    const hint = opts.emptyHint;
    if (hint === undefined) return map;
    return map.superRefine((v, ctx) => {
      if (Object.keys(v).length === 0) ctx.addIssue({ code: "custom", message: hint, input: v });
    });
  },

  /** A mapping with keys chosen by the user under `rule` (header names, env-like keys). */
  keyed<V extends z.ZodType>(pattern: RegExp, rule: string, value: V) {
    // `__proto__` needs no rule here: parseDocument refuses it before zod sees the document.
    const key = z.string().superRefine((k, ctx) => {
      if (!pattern.test(k)) ctx.addIssue({ code: "custom", message: `name must be ${rule}`, input: k });
    });
    return z.record(key, value);
  },

  /** A duration such as `250ms`, `15m`, `1d`, as milliseconds; a bare number is refused. */
  duration(opts: DurationOptions = {}) {
    const min = opts.min ?? 1;
    return z
      .string({ error: requiredOr((v) => durationProblem(v) ?? "expected a duration") })
      .transform((text, ctx) => {
        const ms = parseDuration(text);
        if (ms === null) {
          ctx.addIssue({ code: "custom", message: durationProblem(text) ?? "expected a duration", input: text });
          return z.NEVER;
        }
        if (ms < min)
          ctx.addIssue({
            code: "custom",
            message: `must be at least ${formatDuration(min)}, got ${JSON.stringify(text)}`,
            input: text,
          });
        else if (opts.max !== undefined && ms > opts.max)
          ctx.addIssue({
            code: "custom",
            message: `must be at most ${formatDuration(opts.max)}, got ${JSON.stringify(text)}`,
            input: text,
          });
        else if (opts.wholeSeconds === true && ms % 1000 !== 0)
          ctx.addIssue({
            code: "custom",
            message: `must be a whole number of seconds, got ${JSON.stringify(text)}`,
            input: text,
          });
        return ms;
      })
      .meta({ kind: "duration" });
  },

  /** An integer from `min` (default 0) to `max` (default none). */
  int(min = 0, max?: number) {
    const range = max === undefined ? `>= ${min}` : `from ${min} to ${max}`;
    const schema = z
      .int({ error: requiredOr((v) => `expected an integer ${range}, got ${describeValue(v)}`) })
      .min(min);
    return max === undefined ? schema : schema.max(max);
  },

  /** A non-empty string. */
  text() {
    return z.string({ error: requiredOr((v) => `expected a non-empty string, got ${describeValue(v)}`) }).min(1);
  },

  /** A string, number or boolean, as text (YAML turns `50` into a number). */
  scalarText() {
    return z
      .union([z.string(), z.number(), z.boolean()], {
        error: requiredOr((v) => `expected a string, number or boolean, got ${describeValue(v)}`),
      })
      .transform((v) => String(v))
      .meta({ kind: "text" });
  },

  /** One of `values`. */
  oneOf<const T extends readonly [string, ...string[]]>(values: T) {
    return z.enum(values);
  },

  /** true or false. */
  flag() {
    return z.boolean();
  },

  /** A list of `item`; with `min`, fewer items are refused with `emptyHint` as the message. */
  list<V extends z.ZodType>(item: V, opts: { min?: number; emptyHint?: string } = {}) {
    const min = opts.min ?? 0;
    return z.array(item).superRefine((list, ctx) => {
      if (list.length < min)
        ctx.addIssue({
          code: "custom",
          message: opts.emptyHint ?? `needs at least ${min} item${min === 1 ? "" : "s"}`,
          input: list,
        });
    });
  },
};
