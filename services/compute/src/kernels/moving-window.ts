/**
 * The trailing mean of each bucket: entry i is the mean of the non-NaN values among buckets
 * i − window + 1 … i, so the window spans `window` buckets of time and an empty bucket in it is
 * skipped rather than counted as 0; NaN when none of them has a value. One pass with a running
 * sum, so the cost does not grow with the window.
 */
export function trailingMean(values: Float64Array, window: number): Float64Array {
  const n = values.length;
  const out = new Float64Array(n);
  let sum = 0;
  let have = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === v) {
      sum += v;
      have++;
    }
    if (i >= window) {
      const gone = values[i - window];
      if (gone === gone) {
        have--;
        // Restarting at exactly 0 when the window empties keeps rounding from carrying across gaps.
        sum = have === 0 ? 0 : sum - gone;
      }
    }
    out[i] = have === 0 ? NaN : sum / have;
  }
  return out;
}
