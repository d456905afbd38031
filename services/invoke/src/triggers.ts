import { componentError, defineKind, field } from "@machina/config";
import type { ComponentDoc } from "@machina/config";
import { MachinaError } from "@machina/wire";
import { duplicatesIn } from "./query-sets";
import type { QuerySetTable } from "./query-sets";

/** A compiled trigger. */
export interface TriggerDef {
  name: string;
  /** `timer` fires on a period; `manual` only through invoke.fire. */
  type: "timer" | "manual";
  /** Period, ms (timer only). */
  durationMs: number;
  /** Fire once at start, for the current grid point. Default true. */
  runOnStart: boolean;
  /** Align ticks to multiples of the duration since the epoch. Default true. */
  quantize: boolean;
  /** Shift of the aligned grid, ms. Default 0. */
  offsetMs: number;
  /** Query sets fired on every tick. */
  querySets: string[];
}

/** `config/<mode>/invoke/triggers/<name>.yaml`: when query sets fire. */
export const triggerKind = defineKind({
  kind: "invoke/triggers",
  doc: "A trigger fires its query sets: a timer on a grid of its period, a manual one only through `invoke.fire`. Quantized timers share one grid since the epoch, so replicas started at different times fire the same ticks and build the same task ids.",
  example: "type: timer\nduration: 1m\nrun_on_start: true\nquantize: true\nquery_sets: [websites_sitestats]\n",
  schema: field
    .object({
      type: field
        .oneOf(["timer", "manual"])
        .default("timer")
        .describe("`timer` fires every `duration`; `manual` only when asked through invoke.fire; default timer"),
      // A manual trigger ignores it, so a mode can turn a default timer into a manual one.
      duration: field
        .duration({ min: 100 })
        .optional()
        .describe("The period of a timer, at least 100ms (e.g. 30s, 1h, 30d); required for a timer"),
      run_on_start: field.flag().default(true).describe("Fire once at start, for the current grid point; default true"),
      quantize: field
        .flag()
        .default(true)
        .describe("Align ticks to multiples of the duration since the epoch (else since the start); default true"),
      offset: field
        .duration({ min: 0 })
        .prefault("0ms")
        .describe("Shift of the aligned grid, e.g. 10s to fire at :10 of every minute; default 0ms"),
      query_sets: field
        .list(field.name(), { min: 1, emptyHint: "expected a non-empty list of query set names" })
        .describe("The query sets (files under invoke/query_sets) fired on every tick, each listed once"),
    })
    .superRefine((d, ctx) => {
      if (d.type === "timer" && d.duration === undefined)
        ctx.addIssue({
          code: "custom",
          path: ["duration"],
          message: "is required for a timer: its period, e.g. 1m",
          input: undefined,
        });
      for (const i of duplicatesIn(d.query_sets))
        ctx.addIssue({
          code: "custom",
          path: ["query_sets", i],
          message: `query set "${d.query_sets[i]}" is listed twice`,
          input: d.query_sets[i],
        });
    }),
});

/** Validates `invoke/triggers/*.yaml`; query sets must exist. */
export function compileTriggers(docs: ComponentDoc[], querySets: QuerySetTable): Map<string, TriggerDef> {
  const out = new Map<string, TriggerDef>();
  for (const c of docs) {
    const { name, origin, value: d } = triggerKind.parseDoc(c);
    for (const [i, qs] of d.query_sets.entries()) {
      if (!querySets.has(qs))
        throw componentError(
          origin,
          `query_sets[${i}]`,
          `unknown query set "${qs}" (known: ${[...querySets.keys()].join(", ") || "none"})`,
        );
    }
    out.set(name, {
      name,
      type: d.type,
      durationMs: d.type === "timer" ? (d.duration ?? 0) : 0,
      runOnStart: d.run_on_start,
      quantize: d.quantize,
      offsetMs: d.offset,
      querySets: d.query_sets,
    });
  }
  return out;
}

/** The trigger called `name`, or NOT_FOUND listing the known ones. */
export function triggerOf(table: Map<string, TriggerDef>, name: string): TriggerDef {
  const t = table.get(name);
  if (!t)
    throw new MachinaError("NOT_FOUND", `unknown trigger "${name}" (known: ${[...table.keys()].join(", ") || "none"})`);
  return t;
}

/**
 * The grid point at or before `now`: with quantize, multiples of the duration since the epoch
 * shifted by the offset (so every quantized trigger shares one grid whatever its start time);
 * without, multiples of the duration since `startedAt`.
 */
export function currentTick(t: TriggerDef, now: number, startedAt: number): number {
  if (t.type !== "timer") return now;
  const origin = t.quantize ? t.offsetMs % t.durationMs : startedAt;
  return origin + Math.floor((now - origin) / t.durationMs) * t.durationMs;
}

/** The first grid point strictly after `now`. */
export function nextTick(t: TriggerDef, now: number, startedAt: number): number {
  return currentTick(t, now, startedAt) + t.durationMs;
}
