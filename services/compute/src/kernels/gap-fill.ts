/** What an empty bucket's value is: null (left empty), the previous bucket's value, or zero. */
export const FILLS = ["null", "previous", "zero"] as const;

/** One of {@link FILLS}. */
export type Fill = (typeof FILLS)[number];

/**
 * Fills the empty (NaN) entries of `values` in place: `zero` with 0, `previous` with the nearest
 * earlier value (those before the first value stay NaN: nothing earlier was read), `null` leaves
 * them.
 */
export function fillGaps(values: Float64Array, fill: Fill): Float64Array {
  const n = values.length;
  if (fill === "zero") {
    for (let i = 0; i < n; i++) if (values[i] !== values[i]) values[i] = 0;
  } else if (fill === "previous") {
    let last = NaN;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v !== v) values[i] = last;
      else last = v;
    }
  }
  return values;
}
