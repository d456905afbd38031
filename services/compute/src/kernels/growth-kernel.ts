import { upperBound } from "./sorted-search";

/** The two points growth compares, as indexes (-1 when there is none), and the points from one to the other. */
export interface GrowthPoints {
  start: number;
  end: number;
  /** Non-NaN points from start through end, both included; 0 when there is no end. */
  points: number;
}

/**
 * Picks growth's points over ascending `times`/`values`, skipping NaN (null) values: the end is
 * the newest point at or before `at`; the start the newest at or before `at − window` (the value
 * as of the window's start), or, when there is none, the oldest point inside the window.
 */
export function growthPoints(times: Float64Array, values: Float64Array, at: number, window: number): GrowthPoints {
  let end = upperBound(times, at) - 1;
  while (end >= 0 && values[end] !== values[end]) end--;
  if (end < 0) return { start: -1, end: -1, points: 0 };
  const edge = upperBound(times, at - window, 0, end + 1);
  let start = edge - 1;
  while (start >= 0 && values[start] !== values[start]) start--;
  if (start < 0) {
    // Nothing before the window: its oldest point; the end itself is one, so this stops there.
    start = edge;
    while (values[start] !== values[start]) start++;
  }
  let points = 0;
  for (let i = start; i <= end; i++) if (values[i] === values[i]) points++;
  return { start, end, points };
}
