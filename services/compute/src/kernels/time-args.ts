import * as z from "zod";
import { parseDuration } from "@machina/config";
import { describeValue } from "@machina/protos";
import { MachinaError } from "@machina/wire";

/** A time arg as given: an absolute time (epoch ms), or a duration back from a reference time. */
export type TimeArg = { at: number } | { back: number };

// Date-only or date-time, with optional seconds, fraction and zone; anything Date.parse would
// guess at ("May 1", "1/5/24") is refused rather than read in some locale's order.
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;
const BACK = /^-?\s*(\d+(?:\.\d+)?\s*(?:ms|s|m|h|d))$/;

const EXPECTED = 'expected epoch ms, ISO-8601 text (e.g. "2024-05-01T12:00:00Z") or a duration back (e.g. "7d")';

/**
 * A time arg: epoch ms (a number, or digits as text), ISO-8601 text (UTC unless it names a zone),
 * or a duration such as "7d" or "-7d", meaning that long before the reference time the
 * computation documents. Parsed to a {@link TimeArg}; resolve it with {@link resolveTime}.
 */
export function timeArg() {
  return z
    .union([z.number(), z.string()], {
      error: (iss) => (iss.input === undefined ? undefined : `${EXPECTED}, got ${describeValue(iss.input)}`),
    })
    .transform((v, ctx): TimeArg => {
      const bad = (why: string) => {
        ctx.addIssue({ code: "custom", message: why, input: v });
        return z.NEVER;
      };
      if (typeof v === "number" || /^\d+$/.test(v.trim())) {
        const ms = Number(v);
        if (!Number.isSafeInteger(ms) || ms < 0) return bad(`expected whole epoch ms from 0, got ${describeValue(v)}`);
        return { at: ms };
      }
      const text = v.trim();
      const back = BACK.exec(text);
      if (back !== null) {
        const ms = parseDuration(back[1].replace(/\s+/g, ""));
        return ms === null ? bad(`${describeValue(v)} is not a whole number of ms`) : { back: ms };
      }
      const iso = ISO.exec(text);
      if (iso === null) return bad(`${EXPECTED}, got ${describeValue(v)}`);
      // Without a zone Date.parse reads a date-time as local time; the mesh's times are UTC.
      const zoned = iso[1] === undefined && text.length > 10 ? `${text}Z` : text;
      const ms = Date.parse(zoned.replace(" ", "T"));
      // Date.parse rolls 2024-02-30 over to March 1; a day the month lacks is a typo, not a time.
      const [y, m, d] = text.slice(0, 10).split("-").map(Number);
      if (Number.isNaN(ms) || new Date(Date.UTC(y, m - 1, d)).getUTCDate() !== d)
        return bad(`${describeValue(v)} is not a valid date and time`);
      if (ms < 0) return bad(`${describeValue(v)} is before 1970, where the store has no data`);
      return { at: ms };
    })
    .meta({ kind: "time" });
}

/** The epoch ms of `arg`, a duration counting back from `reference`. */
export function resolveTime(arg: TimeArg, reference: number): number {
  return "at" in arg ? arg.at : reference - arg.back;
}

/** A resolved time range, [from, to) in epoch ms, and whether it moves with the clock. */
export interface TimeRange {
  from: number;
  to: number;
  /** True when `now` decided an end (a default or a duration): the answer changes as time passes. */
  relative: boolean;
}

/**
 * Resolves `from`/`to` args: `to` defaults to now and a duration there counts back from now;
 * `from` defaults to `span` before `to` and a duration there counts back from `to`. A range that
 * is empty or reaches before 1970 is BAD_REQUEST naming args.from.
 */
export function resolveRange(
  origin: string,
  from: TimeArg | undefined,
  to: TimeArg | undefined,
  now: number,
  span: number,
): TimeRange {
  const end = to === undefined ? now : resolveTime(to, now);
  const start = from === undefined ? end - span : resolveTime(from, end);
  // A from counts back from to, so only to can tie the range to the clock.
  const relative = to === undefined || "back" in to;
  const iso = (ms: number) => (ms >= -8.64e15 && ms <= 8.64e15 ? new Date(ms).toISOString() : String(ms));
  if (end <= 0)
    throw new MachinaError(
      "BAD_REQUEST",
      `${origin}: args.to: ${iso(end)} is not after 1970, where the store has no data`,
      {
        details: { field: "args.to", to: end },
      },
    );
  if (start < 0)
    throw new MachinaError(
      "BAD_REQUEST",
      `${origin}: args.from: ${iso(start)} is before 1970, where the store has no data`,
      {
        details: { field: "args.from", from: start },
      },
    );
  if (start >= end)
    throw new MachinaError(
      "BAD_REQUEST",
      `${origin}: args.from: ${iso(start)} is not before args.to ${iso(end)}; the range [from, to) would be empty`,
      { details: { field: "args.from", from: start, to: end } },
    );
  return { from: start, to: end, relative };
}
