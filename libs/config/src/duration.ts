const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

// One number and one unit only: "1h30m" compounds read well but invite ambiguity in quota
// windows and TTLs, where an operator must see at a glance how long something is.
const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;

/**
 * Parses `250ms`, `10s`, `15m`, `1h`, `7d` (or a bare non-negative number of ms) into whole
 * milliseconds; null when malformed or not a whole number of ms (e.g. `0.5ms`).
 */
export function parseDuration(v: unknown): number | null {
  if (typeof v === "number") return Number.isFinite(v) && v >= 0 ? v : null;
  if (typeof v !== "string") return null;
  const m = DURATION.exec(v);
  if (!m) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return Number.isSafeInteger(ms) ? ms : null;
}

/** Formats milliseconds in the largest unit that divides them exactly, e.g. 86400000 → `1d`. */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
