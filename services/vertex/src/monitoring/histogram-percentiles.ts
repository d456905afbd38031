import type { HandlerTimes } from "@machina/protos";

/** Calls of one interval by histogram bucket: `counts[i]` at or under `bounds[i]`, the last entry all. */
export interface HistogramDelta {
  bounds: number[];
  counts: number[];
}

/**
 * The change of a cumulative histogram since `before`; the whole histogram when there is no
 * `before`, its bounds differ, or a count went down (the process restarted).
 */
export function histogramDelta(now: HandlerTimes, before: HandlerTimes | undefined): HistogramDelta {
  const same =
    before !== undefined &&
    before.bounds.length === now.bounds.length &&
    before.bounds.every((b, i) => b === now.bounds[i]) &&
    before.counts.length === now.counts.length &&
    before.counts.every((c, i) => c <= now.counts[i]);
  return {
    bounds: [...now.bounds],
    counts: same ? now.counts.map((c, i) => c - before.counts[i]) : [...now.counts],
  };
}

/** Adds `b` into `a` (same bounds) or returns `b` when `a` is empty; undefined bounds mismatch. */
export function addHistograms(a: HistogramDelta | undefined, b: HistogramDelta): HistogramDelta | undefined {
  if (a === undefined) return { bounds: [...b.bounds], counts: [...b.counts] };
  if (a.bounds.length !== b.bounds.length || a.bounds.some((x, i) => x !== b.bounds[i])) return undefined;
  return { bounds: a.bounds, counts: a.counts.map((c, i) => c + b.counts[i]) };
}

/**
 * The q-quantile (0–1) in seconds, interpolated linearly inside the bucket that holds it (as
 * Prometheus' histogram_quantile does); calls past the last bound count as the last bound.
 * NaN when the interval had no calls.
 */
export function quantile(h: HistogramDelta, q: number): number {
  const total = h.counts[h.counts.length - 1] ?? 0;
  if (total <= 0) return NaN;
  const rank = q * total;
  let below = 0;
  let lower = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    const c = h.counts[i];
    if (c >= rank) {
      const inBucket = c - below;
      return inBucket <= 0 ? h.bounds[i] : lower + ((h.bounds[i] - lower) * (rank - below)) / inBucket;
    }
    below = c;
    lower = h.bounds[i];
  }
  return h.bounds.length > 0 ? h.bounds[h.bounds.length - 1] : NaN;
}
