import type { ComponentDoc } from "@machina/config";
import { parseDuration } from "@machina/config";
import { MachinaError } from "@machina/wire";
import { configError, onlyKeys } from "./doc-check";
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

/** Validates `invoke/triggers/*.yaml`; query sets must exist. */
export function compileTriggers(docs: ComponentDoc[], querySets: QuerySetTable): Map<string, TriggerDef> {
  const out = new Map<string, TriggerDef>();
  for (const c of docs) {
    const origin = c.origins.join(" + ");
    const d = c.doc;
    onlyKeys(origin, d, ["type", "duration", "run_on_start", "quantize", "offset", "query_sets"]);
    const type = d.type ?? "timer";
    if (type !== "timer" && type !== "manual") throw configError(origin, "type", `expected timer or manual, got ${JSON.stringify(type)}`);
    const durationMs = type === "timer" ? parseDuration(d.duration) : 0;
    if (durationMs === null || (type === "timer" && durationMs < 100)) {
      throw configError(origin, "duration", `expected a duration of at least 100ms such as 30s, 5m or 1h, got ${JSON.stringify(d.duration)}`);
    }
    const offsetMs = d.offset === undefined ? 0 : parseDuration(d.offset);
    if (offsetMs === null) throw configError(origin, "offset", `expected a duration such as 10s, got ${JSON.stringify(d.offset)}`);
    for (const k of ["run_on_start", "quantize"] as const) {
      if (d[k] !== undefined && typeof d[k] !== "boolean") throw configError(origin, k, "expected true or false");
    }
    if (!Array.isArray(d.query_sets) || d.query_sets.length === 0) throw configError(origin, "query_sets", "expected a non-empty list of query set names");
    for (const [i, qs] of d.query_sets.entries()) {
      if (d.query_sets.indexOf(qs) !== i) throw configError(origin, `query_sets[${i}]`, `query set ${JSON.stringify(qs)} is listed twice`);
      if (typeof qs !== "string" || !querySets.has(qs)) {
        throw configError(origin, `query_sets[${i}]`, `unknown query set ${JSON.stringify(qs)} (known: ${[...querySets.keys()].join(", ") || "none"})`);
      }
    }
    out.set(c.name, {
      name: c.name,
      type,
      durationMs,
      runOnStart: (d.run_on_start as boolean | undefined) ?? true,
      quantize: (d.quantize as boolean | undefined) ?? true,
      offsetMs,
      querySets: d.query_sets as string[],
    });
  }
  return out;
}

/** The trigger called `name`, or NOT_FOUND listing the known ones. */
export function triggerOf(table: Map<string, TriggerDef>, name: string): TriggerDef {
  const t = table.get(name);
  if (!t) throw new MachinaError("NOT_FOUND", `unknown trigger "${name}" (known: ${[...table.keys()].join(", ") || "none"})`);
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
