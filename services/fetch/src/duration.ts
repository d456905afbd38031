const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

// One number and one unit only: "1h30m" style compounds read well but invite ambiguity in
// quota windows, where an operator must see at a glance how long a window is.
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Parses `250ms`, `1s`, `15m`, `1h`, `1d` into milliseconds; returns null when `text` is not one. */
export function parseDuration(text: string): number | null {
  const m = DURATION.exec(text.trim());
  if (m === null) return null;
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return Number.isFinite(ms) && Number.isInteger(ms) && ms > 0 ? ms : null;
}

/** Formats milliseconds in the largest unit that divides them exactly, e.g. 86400000 → `1d`. */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
