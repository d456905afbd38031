import type { HandlerTimes } from "@machina/protos";

/** A cumulative handler-time histogram: `counts[i]` calls took at most `bounds[i]` s; the last count is all calls. */
type Histogram = Pick<HandlerTimes, "bounds" | "counts">;

/**
 * Sums histograms that share one set of bounds (the replicas of one service report the same
 * buckets); one with other bounds is left out rather than mixed in wrongly.
 */
export function mergeHistograms(hs: readonly Histogram[]): Histogram | undefined {
  const [first] = hs;
  if (!first) return undefined;
  const bounds = [...first.bounds];
  const counts = first.counts.map(Number);
  for (const h of hs.slice(1)) {
    if (h.bounds.length !== bounds.length || h.bounds.some((b, i) => b !== bounds[i])) continue;
    if (h.counts.length !== counts.length) continue;
    h.counts.forEach((c, i) => (counts[i] += Number(c)));
  }
  return { bounds, counts };
}

/**
 * The `q` quantile (0–1) of a histogram in ms, interpolated linearly inside its bucket as
 * Prometheus' histogram_quantile does; undefined with no calls. Calls above the last bound
 * report that bound, the most the histogram can say.
 */
export function histogramQuantileMs(h: Histogram, q: number): number | undefined {
  const total = Number(h.counts[h.counts.length - 1] ?? 0);
  if (total <= 0 || h.bounds.length === 0) return undefined;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    const upTo = Number(h.counts[i]);
    if (upTo >= rank) {
      const lower = i === 0 ? 0 : h.bounds[i - 1];
      const inBucket = upTo - below;
      const share = inBucket > 0 ? (rank - below) / inBucket : 1;
      return (lower + (h.bounds[i] - lower) * share) * 1000;
    }
    below = upTo;
  }
  return h.bounds[h.bounds.length - 1] * 1000;
}
