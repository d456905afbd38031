import { describeValue } from "@machina/protos";

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

// One number and one unit only: "1h30m" compounds read well but invite ambiguity in quota
// windows and TTLs, where an operator must see at a glance how long something is.
const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;

/** Examples used in every duration error message. */
export const DURATION_EXAMPLES = "250ms, 1s, 15m, 1h or 1d";

/**
 * Parses `250ms`, `10s`, `15m`, `1h`, `7d` into whole milliseconds; null when malformed, not a
 * whole number of ms (e.g. `0.5ms`), or not a string. A bare number is never a duration: `300`
 * could mean 300 ms, seconds or minutes, so the unit must be written.
 */
export function parseDuration(v: unknown): number | null {
  if (typeof v !== "string") return null;
  const m = DURATION.exec(v);
  if (!m) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return Number.isSafeInteger(ms) ? ms : null;
}

/** Why `v` is not a duration (null when it is one), worded for a config error. */
export function durationProblem(v: unknown): string | null {
  if (parseDuration(v) !== null) return null;
  if (typeof v === "number")
    return `expected a duration with a unit such as ${DURATION_EXAMPLES}, got the bare number ${v}; write ${v}ms or ${v}s, whichever is meant`;
  return `expected a duration such as ${DURATION_EXAMPLES}, got ${describeValue(v)}`;
}

/** Formats milliseconds in the largest unit that divides them exactly, e.g. 86400000 → `1d`. */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
