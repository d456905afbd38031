import { Cron } from "croner";
import { componentError, defineKind, field, formatDuration } from "@machina/config";
import type { ComponentDoc } from "@machina/config";
import { MachinaError } from "@machina/wire";
import { duplicatesIn } from "./query-sets";
import type { QuerySetTable } from "./query-sets";

/** A compiled trigger. */
export interface TriggerDef {
  name: string;
  /** `timer` fires on a period; `cron` at the times of a cron expression; `manual` only through invoke.fire. */
  type: "timer" | "cron" | "manual";
  /** Period, ms (timer only). */
  durationMs: number;
  /**
   * The cron expression, 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds
   * first), read by croner (cron only; "" otherwise).
   */
  cron: string;
  /** IANA time zone the cron fields are read in, default `UTC` (cron only; "" otherwise). */
  timezone: string;
  /** Fire once at start, for the current grid point. Default true. */
  runOnStart: boolean;
  /** Align ticks to multiples of the duration since the epoch. Default true. */
  quantize: boolean;
  /** Shift of the aligned grid, ms. Default 0. */
  offsetMs: number;
  /** Query sets fired on every tick. */
  querySets: string[];
}

const TIMEZONE_EXAMPLES = "UTC, Europe/Paris or America/New_York";

/** Croner, for one expression in one zone, with the options every cron trigger uses. */
function newCron(pattern: string, timezone: string): Cron {
  // 5 or 6 fields only: croner's 7th (year) field would let a schedule end. `paused` with no
  // function: croner never arms a timer of its own, it only computes times.
  return new Cron(pattern, { timezone, paused: true, mode: "5-or-6-parts" });
}

/** Why `pattern` is no cron expression croner takes (null when it is one), worded for a config error. */
function cronProblem(pattern: string, timezone: string): string | null {
  const fields = pattern.trim().split(/\s+/);
  if (!pattern.trim().startsWith("@") && fields.length !== 5 && fields.length !== 6)
    return `expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got ${fields.length} in ${JSON.stringify(pattern)}`;
  let cron: Cron;
  try {
    cron = newCron(pattern, timezone);
  } catch (err) {
    const reason = (err instanceof Error ? err.message : String(err)).replace(/^CronPattern:\s*/, "");
    return `invalid cron expression ${JSON.stringify(pattern)}: ${reason}`;
  }
  // Without a year field an expression fires forever or never (e.g. `0 0 30 2 *`).
  if (cron.nextRun(new Date(0)) === null) return `${JSON.stringify(pattern)} never fires: no date matches it`;
  return null;
}

/** Whether the runtime's Intl knows the time zone `tz`. */
function knownTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** `config/<mode>/invoke/triggers/<name>.yaml`: when query sets fire. */
export const triggerKind = defineKind({
  kind: "invoke/triggers",
  doc: "A trigger fires its query sets: a timer on a grid of its period, a cron trigger at the times of a cron expression in a time zone, a manual one only through `invoke.fire`. Quantized timers share one grid since the epoch, and cron times depend only on the expression and the zone, so replicas started at different times fire the same ticks and build the same task ids. A cron trigger ignores `duration`, `quantize` and `offset`, as a manual one does.",
  example: "type: timer\nduration: 1m\nrun_on_start: true\nquantize: true\nquery_sets: [websites_sitestats]\n",
  schema: field
    .object({
      type: field
        .oneOf(["timer", "cron", "manual"])
        .default("timer")
        .describe(
          "`timer` fires every `duration`; `cron` at the times of `cron` in `timezone`; `manual` only when asked through invoke.fire; default timer",
        ),
      // A manual or cron trigger ignores it, so a mode can turn a default timer into another type.
      duration: field
        .duration({ min: 100 })
        .optional()
        .describe("The period of a timer, at least 100ms (e.g. 30s, 1h, 30d); required for a timer"),
      cron: field
        .text()
        .optional()
        .describe(
          'The times of a cron trigger: 5 fields (minute hour day-of-month month day-of-week, e.g. `0 9 * * 1-5`) or 6 with seconds first, as croner reads them (also `@daily`, `L`, `W`, `#`); quote it in YAML when it starts with `*`, e.g. `"*/15 * * * *"`; required for a cron trigger, refused on others',
        ),
      timezone: field
        .text()
        .optional()
        .describe(
          "The IANA time zone the `cron` fields are read in, e.g. Europe/Paris; default UTC; cron triggers only",
        ),
      run_on_start: field
        .flag()
        .default(true)
        .describe("Fire once at start, for the current grid point (a cron trigger: its latest time); default true"),
      quantize: field
        .flag()
        .default(true)
        .describe("Align ticks to multiples of the duration since the epoch (else since the start); default true"),
      offset: field
        .duration({ min: 0 })
        .prefault("0ms")
        .describe("Shift of the aligned grid, e.g. 10s to fire at :10 of every minute; default 0ms"),
      query_sets: field
        .list(field.name())
        .default([])
        .describe("The query sets (files under invoke/query_sets) fired on every tick, each listed once; default none"),
    })
    .superRefine((d, ctx) => {
      if (d.type === "timer" && d.duration === undefined)
        ctx.addIssue({
          code: "custom",
          path: ["duration"],
          message: "is required for a timer: its period, e.g. 1m",
          input: undefined,
        });
      if (d.type === "cron") {
        const tzOk = d.timezone === undefined || knownTimezone(d.timezone);
        if (!tzOk)
          ctx.addIssue({
            code: "custom",
            path: ["timezone"],
            message: `unknown time zone ${JSON.stringify(d.timezone)}; expected an IANA name such as ${TIMEZONE_EXAMPLES}`,
            input: d.timezone,
          });
        if (d.cron === undefined)
          ctx.addIssue({
            code: "custom",
            path: ["cron"],
            message: "is required for a cron trigger: its times, e.g. 0 9 * * 1-5",
            input: undefined,
          });
        else {
          const problem = cronProblem(d.cron, tzOk ? (d.timezone ?? "UTC") : "UTC");
          if (problem !== null) ctx.addIssue({ code: "custom", path: ["cron"], message: problem, input: d.cron });
        }
      } else {
        for (const key of ["cron", "timezone"] as const)
          if (d[key] !== undefined)
            ctx.addIssue({
              code: "custom",
              path: [key],
              message: `is only for a cron trigger (type: cron); this one is a ${d.type} trigger`,
              input: d[key],
            });
      }
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
      cron: d.type === "cron" ? (d.cron ?? "").trim() : "",
      timezone: d.type === "cron" ? (d.timezone ?? "UTC") : "",
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

// Parsed expressions, shared: croner computes times from them without keeping state.
const crons = new Map<string, Cron>();

function cronOf(t: TriggerDef): Cron {
  const tz = t.timezone || "UTC";
  const key = `${tz} ${t.cron}`;
  let c = crons.get(key);
  if (c === undefined) {
    c = newCron(t.cron, tz);
    if (crons.size >= 256) crons.clear();
    crons.set(key, c);
  }
  return c;
}

/** The newest cron time at or before `now`, or null (none in croner's reach). */
function cronAtOrBefore(t: TriggerDef, now: number): number | null {
  // previousRuns is strictly before its reference, at whole seconds; now + 1 takes in a time at
  // exactly `now`, and no later one, since every cron time is a whole second.
  const prev = cronOf(t).previousRuns(1, new Date(now + 1))[0];
  return prev === undefined ? null : prev.getTime();
}

/** The first cron time strictly after `now`, or null (none in croner's reach). */
function cronAfter(t: TriggerDef, now: number): number | null {
  return cronOf(t).nextRun(new Date(now))?.getTime() ?? null;
}

function noCronTime(t: TriggerDef, what: string, now: number): MachinaError {
  return new MachinaError(
    "INTERNAL",
    `trigger "${t.name}": cron "${t.cron}" (${t.timezone || "UTC"}) has no time ${what} ${new Date(now).toISOString()}`,
  );
}

/**
 * The tick at or before `now`.
 *
 * Timer: the grid point at or before `now`: with quantize, multiples of the duration since the
 * epoch shifted by the offset (so every quantized trigger shares one grid whatever its start time);
 * without, multiples of the duration since `startedAt`.
 *
 * Cron: the newest time of the expression at or before `now`, from croner's `previousRuns`, which
 * walks the calendar back field by field (not minute by minute), so a yearly or leap-day
 * expression costs well under a millisecond. Croner gives up 400 years back; every expression
 * that fires at all (compileTriggers refuses the others) fires at least every 40 years or so
 * (a 5th Monday of February), so the search always succeeds. The result depends on the
 * expression, the zone and `now` only, so replicas agree on it, and it is always a time
 * {@link nextTick} yields (the two agree across daylight-saving changes).
 *
 * Daylight-saving, as croner does it (its `fixedTimeRule: "single-value"`): an expression whose
 * second, minute and hour fields are single values (`30 2 * * *`) is a fixed-time job: on the
 * spring-forward day its missing local time fires once, at the instant the clock jumps (03:00
 * CEST in Europe/Paris, 01:00Z), and a local time that occurs twice in the autumn fires once, at
 * its first occurrence. Any other expression (`0,30 * * * *`, `30 2,14 * * *`) is an interval
 * job: missing local times are skipped and repeated ones fire twice, an hour apart.
 *
 * Manual: `now`.
 */
export function currentTick(t: TriggerDef, now: number, startedAt: number): number {
  if (t.type === "cron") {
    const at = cronAtOrBefore(t, now);
    if (at === null) throw noCronTime(t, "at or before", now);
    return at;
  }
  if (t.type !== "timer") return now;
  const origin = t.quantize ? t.offsetMs % t.durationMs : startedAt;
  return origin + Math.floor((now - origin) / t.durationMs) * t.durationMs;
}

/**
 * The first tick strictly after `now`: the next grid point of a timer, the next time of a cron
 * expression (croner's `nextRun`; daylight-saving as in {@link currentTick}).
 */
export function nextTick(t: TriggerDef, now: number, startedAt: number): number {
  if (t.type === "cron") {
    const at = cronAfter(t, now);
    if (at === null) throw noCronTime(t, "after", now);
    return at;
  }
  return currentTick(t, now, startedAt) + t.durationMs;
}

/**
 * When the scheduler fires `t` next after `now`: {@link nextTick} for a timer or cron trigger;
 * null for a manual one (and for a cron expression with no time left before croner's year 3000).
 */
export function nextFireAt(t: TriggerDef, now: number, startedAt: number): number | null {
  if (t.type === "manual") return null;
  if (t.type === "cron") return cronAfter(t, now);
  return nextTick(t, now, startedAt);
}

/**
 * One line for operators: `every 1m` for a timer (plus `, offset 10s` on a shifted grid, or
 * `, since start` without quantize), the cron expression for a cron trigger, `manual`.
 */
export function describeSchedule(t: TriggerDef): string {
  if (t.type === "cron") return t.cron;
  if (t.type === "manual") return "manual";
  let s = `every ${formatDuration(t.durationMs)}`;
  if (!t.quantize) s += ", since start";
  else if (t.offsetMs % t.durationMs !== 0) s += `, offset ${formatDuration(t.offsetMs % t.durationMs)}`;
  return s;
}
