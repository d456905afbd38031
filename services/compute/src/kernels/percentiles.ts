/**
 * Percentiles of `values` by linear interpolation between the two nearest ranks (the "inclusive"
 * definition of numpy's default, R's type 7 and spreadsheets' PERCENTILE.INC): percentile p of n
 * sorted values is at rank h = (n − 1) × p / 100, x[⌊h⌋] + (h − ⌊h⌋) × (x[⌊h⌋ + 1] − x[⌊h⌋]), so
 * p 0 is the minimum, p 100 the maximum and p 50 the median. Sorts `values` in place (a typed
 * array's sort is numeric, without a comparator); NaN for each p when there are no values.
 */
export function percentiles(values: Float64Array, ps: readonly number[]): number[] {
  values.sort();
  return ps.map((p) => percentileOfSorted(values, p));
}

/** Percentile p (0..100) of values sorted ascending, interpolated as {@link percentiles} says. */
export function percentileOfSorted(sorted: Float64Array, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = ((n - 1) * p) / 100;
  const lo = Math.floor(h);
  if (lo >= n - 1) return sorted[n - 1];
  return sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo]);
}

/** A Float64Array that grows as values are pushed (doubling), so a scan holds 8 bytes a value. */
export class FloatBuffer {
  private buf = new Float64Array(1024);
  private n = 0;

  /** Appends one value. */
  push(v: number): void {
    if (this.n === this.buf.length) {
      const bigger = new Float64Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.n++] = v;
  }

  /** How many values were pushed. */
  get length(): number {
    return this.n;
  }

  /** The values pushed, as a view (not a copy) of the buffer. */
  values(): Float64Array {
    return this.buf.subarray(0, this.n);
  }
}
