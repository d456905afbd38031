/** Equal time buckets: `count` of them, `step` ms wide, the first starting at `start` (epoch ms). */
export interface BucketGrid {
  start: number;
  step: number;
  count: number;
}

/**
 * The buckets covering [from, to): aligned to multiples of `step` since the epoch (so in UTC,
 * and the same buckets whatever from is), from the one holding `from` to the one holding `to − 1`.
 */
export function bucketGrid(from: number, to: number, step: number): BucketGrid {
  const first = Math.floor(from / step);
  const last = Math.floor((to - 1) / step);
  return { start: first * step, step, count: last - first + 1 };
}

/** `grid` with `extra` more buckets before its first (a moving window's warm-up). */
export function widenGrid(grid: BucketGrid, extra: number): BucketGrid {
  return { start: grid.start - extra * grid.step, step: grid.step, count: grid.count + extra };
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// Steps a person would choose, so a "too many buckets" error can name one that reads well.
const ROUND_STEPS = [
  ...[1, 2, 5, 10, 20, 50, 100, 200, 500],
  ...[1, 2, 5, 10, 15, 30].map((n) => n * SECOND),
  ...[1, 2, 5, 10, 15, 30].map((n) => n * MINUTE),
  ...[1, 2, 3, 6, 12].map((n) => n * HOUR),
  ...[1, 2, 7].map((n) => n * DAY),
];

/** The smallest round step (1ms … 7d, then whole weeks) that covers [from, to) in at most `max` buckets. */
export function fittingStep(from: number, to: number, max: number): number {
  for (const step of ROUND_STEPS) if (bucketGrid(from, to, step).count <= max) return step;
  let weeks = Math.max(2, Math.ceil((to - from) / (max - 1) / (7 * DAY)));
  while (bucketGrid(from, to, weeks * 7 * DAY).count > max) weeks++;
  return weeks * 7 * DAY;
}
