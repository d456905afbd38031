/**
 * The shared record of one rolling window: admitted calls as `[latest, count]` pairs, where
 * `latest` is the latest server time at which those calls may reach the upstream. A new call
 * whose earliest send time is `lb` fits when the calls with `latest > lb - W` number fewer than
 * the quota: every interval of length W that could hold the new call lies inside
 * `(lb - W, ub + W)`, so it can only hold calls counted there.
 */
export type SlidingLog = readonly (readonly [latest: number, count: number])[];

/** The empty log. */
export const EMPTY_LOG: SlidingLog = Object.freeze([]);

/** Calls in the log that still count for a call sent no earlier than `lb`. */
export function countSince(log: SlidingLog, lb: number, perMs: number): number {
  let n = 0;
  for (const [latest, count] of log) if (latest > lb - perMs) n += count;
  return n;
}

/** How many of `want` calls fit at earliest send time `lb` under quota `limit`. */
export function roomAt(log: SlidingLog, lb: number, perMs: number, limit: number, want: number): number {
  return Math.max(0, Math.min(want, limit - countSince(log, lb, perMs)));
}

/**
 * The earliest send time from which `want` more calls fit: once enough of the oldest entries
 * are more than a window behind. Returns `-Infinity` when they fit at any time.
 */
export function earliestFor(log: SlidingLog, perMs: number, limit: number, want: number): number {
  if (want > limit) return Infinity;
  let excess = log.reduce((n, [, c]) => n + c, 0) - (limit - want);
  if (excess <= 0) return -Infinity;
  for (const [latest, count] of log) {
    excess -= count;
    if (excess <= 0) return latest + perMs;
  }
  return Infinity;
}

/**
 * Adds `count` calls whose latest send time is `latest`, rounded up to `gridMs` so a long window
 * holds a bounded number of entries; drops entries that can no longer count for any call sent
 * after `pruneBefore`.
 */
export function append(
  log: SlidingLog,
  latest: number,
  count: number,
  perMs: number,
  gridMs: number,
  pruneBefore: number,
): SlidingLog {
  const at = Math.ceil(latest / gridMs) * gridMs;
  const out: [number, number][] = [];
  let merged = false;
  for (const [l, c] of log) {
    if (l <= pruneBefore - perMs) continue;
    if (l === at) {
      out.push([l, c + count]);
      merged = true;
    } else out.push([l, c]);
  }
  if (!merged) out.push([at, count]);
  out.sort((a, b) => a[0] - b[0]);
  return out;
}

/** Removes `count` calls recorded at `latest` (rounded as {@link append} did): a grant given back. */
export function remove(log: SlidingLog, latest: number, count: number, gridMs: number): SlidingLog {
  const at = Math.ceil(latest / gridMs) * gridMs;
  const out: [number, number][] = [];
  for (const [l, c] of log) {
    if (l === at) {
      if (c > count) out.push([l, c - count]);
    } else out.push([l, c]);
  }
  return out;
}

/** The grid a window's entries are rounded to: 1 ms for short windows, W/512 for long ones. */
export function gridOf(perMs: number): number {
  return Math.max(1, Math.floor(perMs / 512));
}

/** Serialises a log for the KV bucket. */
export function encodeLog(log: SlidingLog): string {
  return JSON.stringify(log);
}

/**
 * Reads a log from the bucket. A corrupt value is read as a window filled at `now` (the next
 * write replaces it): refusing calls for one window is recoverable, overspending is not.
 */
export function decodeLog(text: string, limit: number, now: number): SlidingLog {
  try {
    const v = JSON.parse(text) as unknown;
    if (
      Array.isArray(v) &&
      v.every(
        (e) => Array.isArray(e) && e.length === 2 && Number.isFinite(e[0]) && Number.isSafeInteger(e[1]) && e[1] > 0,
      )
    ) {
      return (v as [number, number][]).slice().sort((a, b) => a[0] - b[0]);
    }
  } catch {
    // fall through
  }
  return [[now, limit]];
}
