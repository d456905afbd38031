/**
 * The first index in [lo, hi) of ascending `sorted` whose value is at least `x`; `hi` when there
 * is none. A binary search, so bounding a range of a million points costs twenty comparisons.
 */
export function lowerBound(sorted: Float64Array, x: number, lo = 0, hi = sorted.length): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first index in [lo, hi) of ascending `sorted` whose value is greater than `x`; `hi` when there is none. */
export function upperBound(sorted: Float64Array, x: number, lo = 0, hi = sorted.length): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
