import type { BucketGrid } from "./bucket-grid";
import { lowerBound } from "./sorted-search";

/** How the points of one bucket become its value. */
export const REDUCERS = ["mean", "sum", "min", "max", "count", "first", "last"] as const;

/** One of {@link REDUCERS}. */
export type Reducer = (typeof REDUCERS)[number];

/** Buckets reduced: `values[b]` per the reducer (NaN when bucket b has no point), `counts[b]` its points. */
export interface Reduced {
  values: Float64Array;
  counts: Uint32Array;
}

// The reducer as a small integer: the hot loop switches on a number, not a string.
const OP: Record<Reducer, number> = { mean: 0, sum: 0, min: 1, max: 2, count: 3, first: 3, last: 4 };

/**
 * Reduces ascending `times`/`values` (NaN = null) into the buckets of `grid` in one pass, over
 * the points in [grid start, min(`to`, grid end)). NaN points are skipped: they count as not
 * there, so a bucket of only nulls is empty. Empty buckets are NaN, except under `count`, where
 * they are 0. Allocates the two output arrays and nothing per point.
 */
export function bucketReduce(
  times: Float64Array,
  values: Float64Array,
  grid: BucketGrid,
  reducer: Reducer,
  to = Infinity,
): Reduced {
  const { start, step, count } = grid;
  const out = new Float64Array(count).fill(NaN);
  const counts = new Uint32Array(count);
  const lo = lowerBound(times, start);
  const hi = lowerBound(times, Math.min(to, start + count * step), lo);
  const op = OP[reducer];
  // The open bucket lives in locals and is written out when the next one starts: times ascend,
  // so each bucket is visited once, and the loop touches the output arrays once per bucket.
  let b = 0;
  let end = start; // the first point opens its bucket
  let acc = NaN;
  let n = 0;
  for (let i = lo; i < hi; i++) {
    const v = values[i];
    if (v !== v) continue; // NaN: a null field
    const t = times[i];
    if (t >= end) {
      if (n > 0) {
        out[b] = acc;
        counts[b] = n;
      }
      b = Math.floor((t - start) / step);
      end = start + (b + 1) * step;
      acc = v;
      n = 1;
      continue;
    }
    if (op === 0) acc += v;
    else if (op === 1) {
      if (v < acc) acc = v;
    } else if (op === 2) {
      if (v > acc) acc = v;
    } else if (op === 4) acc = v;
    n++;
  }
  if (n > 0) {
    out[b] = acc;
    counts[b] = n;
  }
  if (reducer === "mean")
    for (let k = 0; k < count; k++) out[k] /= counts[k]; // an empty bucket stays NaN / 0 = NaN
  else if (reducer === "count") for (let k = 0; k < count; k++) out[k] = counts[k];
  return { values: out, counts };
}
