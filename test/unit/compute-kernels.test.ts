// Covers the series kernels of @machina/compute without servers: binary-search range bounds,
// bucket alignment and the "too many buckets" step suggestion, each reducer on hand-computed
// buckets, NaN (null) points, fill modes, the trailing window's edges, growth's point picking,
// time args; then series, moving_average and growth run over a fake DataReads (what they read,
// the rows they answer, their BAD_REQUESTs); and a speed print reducing 1,000,000 points.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { field, parseDocument } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import {
  BUILTIN_COMPUTATIONS,
  ReadSet,
  bucketGrid,
  bucketReduce,
  fillGaps,
  fittingStep,
  growthPoints,
  lowerBound,
  resolveRange,
  timeArg,
  trailingMean,
  upperBound,
  type Columns,
  type ComputeDeps,
  type DataReads,
  type Reducer,
  type SeriesOptions,
} from "@machina/compute";
import { isMachinaError } from "@machina/wire";

const f64 = (xs: number[]) => Float64Array.from(xs);
const list = (a: ArrayLike<number>) => Array.from(a);
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

describe("compute kernels: sorted search", () => {
  it("finds the first index at or past a value, over duplicates, ends and empty input", () => {
    const a = f64([1, 3, 3, 3, 7]);
    assert.deepEqual(
      [0, 1, 2, 3, 4, 7, 8].map((x) => lowerBound(a, x)),
      [0, 0, 1, 1, 4, 4, 5],
    );
    assert.deepEqual(
      [0, 1, 2, 3, 4, 7, 8].map((x) => upperBound(a, x)),
      [0, 1, 1, 4, 4, 5, 5],
    );
    assert.equal(lowerBound(a, 3, 2), 2, "starts at lo");
    assert.equal(upperBound(a, 7, 0, 3), 3, "stops at hi");
    assert.equal(lowerBound(f64([]), 1), 0);
    assert.equal(upperBound(f64([]), 1), 0);
  });
});

describe("compute kernels: bucket grid", () => {
  it("aligns to multiples of step since the epoch, from the bucket of from to the bucket of to − 1", () => {
    assert.deepEqual(bucketGrid(90_000, 180_000, MIN), { start: MIN, step: MIN, count: 2 });
    assert.deepEqual(bucketGrid(90_000, 180_001, MIN), { start: MIN, step: MIN, count: 3 });
    assert.deepEqual(bucketGrid(120_000, 120_001, MIN), { start: 120_000, step: MIN, count: 1 });
    // Days start at 00:00 UTC whatever time of day from is.
    const from = Date.UTC(2024, 4, 1, 17, 30);
    const grid = bucketGrid(from, Date.UTC(2024, 4, 8, 9), DAY);
    assert.equal(new Date(grid.start).toISOString(), "2024-05-01T00:00:00.000Z");
    assert.equal(grid.count, 8);
  });

  it("suggests the smallest round step that fits", () => {
    const from = Date.UTC(2024, 0, 1);
    const to = from + 30 * DAY;
    assert.equal(bucketGrid(from, to, MIN).count, 43_200);
    assert.equal(fittingStep(from, to, 10_000), 5 * MIN); // 2m is 21,600; 5m is 8,640
    assert.equal(fittingStep(from, from + 5_000, 10_000), 1);
    assert.equal(fittingStep(from, from + 3650 * DAY, 10_000), 12 * HOUR); // 7,300
    assert.equal(fittingStep(from, from + 36_500 * DAY, 10_000), 7 * DAY); // 5,215
    const long = fittingStep(0, 1_000_000 * DAY, 10_000);
    assert.ok(bucketGrid(0, 1_000_000 * DAY, long).count <= 10_000);
    assert.ok(bucketGrid(0, 1_000_000 * DAY, long - 7 * DAY).count > 10_000, "and not a week more than needed");
  });
});

describe("compute kernels: bucket reduce", () => {
  // Buckets of 10 from 0: [1, NaN, 3] | [4] | [10, -2, 6] | empty; 40 and 45 lie past the grid.
  const times = f64([0, 3, 5, 12, 25, 27, 29, 40, 45]);
  const values = f64([1, NaN, 3, 4, 10, -2, 6, 100, 100]);
  const grid = { start: 0, step: 10, count: 4 };
  const expected: Record<Reducer, number[]> = {
    mean: [2, 4, 14 / 3, NaN],
    sum: [4, 4, 14, NaN],
    min: [1, 4, -2, NaN],
    max: [3, 4, 10, NaN],
    count: [2, 1, 3, 0],
    first: [1, 4, 10, NaN],
    last: [3, 4, 6, NaN],
  };

  for (const [reducer, want] of Object.entries(expected) as [Reducer, number[]][])
    it(`${reducer}: hand-computed buckets, NaN points skipped, an empty bucket ${reducer === "count" ? "0" : "NaN"}`, () => {
      const r = bucketReduce(times, values, grid, reducer);
      assert.deepEqual(list(r.values), want);
      assert.deepEqual(list(r.counts), [2, 1, 3, 0]);
    });

  it("leaves out points before the grid and at or after to", () => {
    const r = bucketReduce(f64([-5, 5, 15, 19, 21]), f64([9, 1, 2, 3, 4]), { start: 0, step: 10, count: 3 }, "sum", 19);
    assert.deepEqual(list(r.values), [1, 2, NaN]);
    assert.deepEqual(list(r.counts), [1, 1, 0]);
  });

  it("treats a bucket of only NaN points as empty", () => {
    const r = bucketReduce(f64([0, 1, 10]), f64([NaN, NaN, 5]), { start: 0, step: 10, count: 2 }, "mean");
    assert.deepEqual(list(r.values), [NaN, 5]);
    assert.deepEqual(list(r.counts), [0, 1]);
  });

  it("reduces one point, no points, and jumps over long gaps", () => {
    const one = bucketReduce(f64([35]), f64([7]), { start: 0, step: 10, count: 5 }, "mean");
    assert.deepEqual(list(one.values), [NaN, NaN, NaN, 7, NaN]);
    const none = bucketReduce(f64([]), f64([]), { start: 0, step: 10, count: 3 }, "max");
    assert.deepEqual(list(none.values), [NaN, NaN, NaN]);
    assert.deepEqual(list(none.counts), [0, 0, 0]);
    const gap = bucketReduce(f64([0, 9_999_995]), f64([1, 2]), { start: 0, step: 10, count: 1_000_000 }, "last");
    assert.equal(gap.values[0], 1);
    assert.equal(gap.values[999_999], 2);
    assert.equal(gap.counts[500_000], 0);
  });

  it("keeps a negative minimum and maximum (the first point seeds each bucket)", () => {
    const t = f64([0, 1]);
    assert.equal(bucketReduce(t, f64([-3, -5]), { start: 0, step: 10, count: 1 }, "max").values[0], -3);
    assert.equal(bucketReduce(t, f64([3, 5]), { start: 0, step: 10, count: 1 }, "min").values[0], 3);
  });
});

describe("compute kernels: fill", () => {
  const gappy = () => f64([NaN, 1, NaN, NaN, 3, NaN]);
  it("null leaves gaps, zero writes 0, previous carries the last value (none before the first)", () => {
    assert.deepEqual(list(fillGaps(gappy(), "null")), [NaN, 1, NaN, NaN, 3, NaN]);
    assert.deepEqual(list(fillGaps(gappy(), "zero")), [0, 1, 0, 0, 3, 0]);
    assert.deepEqual(list(fillGaps(gappy(), "previous")), [NaN, 1, 1, 1, 3, 3]);
    assert.deepEqual(list(fillGaps(f64([]), "previous")), []);
  });
});

describe("compute kernels: trailing window", () => {
  it("averages the values among the last window buckets, skipping empty ones", () => {
    const v = f64([1, 2, NaN, 4, NaN, NaN, NaN, 8]);
    assert.deepEqual(list(trailingMean(v, 3)), [1, 1.5, 1.5, 3, 4, 4, NaN, 8]);
    assert.deepEqual(list(trailingMean(v, 2)), [1, 1.5, 2, 4, 4, NaN, NaN, 8]);
  });

  it("handles a window longer than the series, all-empty input, and no input", () => {
    assert.deepEqual(list(trailingMean(f64([2, 4, 6]), 1000)), [2, 3, 4]);
    assert.deepEqual(list(trailingMean(f64([NaN, NaN]), 2)), [NaN, NaN]);
    assert.deepEqual(list(trailingMean(f64([]), 2)), []);
  });

  it("does not drift over a long run (the sum restarts when the window empties)", () => {
    const n = 100_000;
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = i % 50 < 45 ? 0.1 * (i % 7) + 1e6 : NaN;
    const fast = trailingMean(v, 10);
    for (const i of [9, 44, 45, 49, 50, 99_994, 99_999]) {
      let s = 0;
      let k = 0;
      for (let j = Math.max(0, i - 9); j <= i; j++)
        if (!Number.isNaN(v[j])) {
          s += v[j];
          k++;
        }
      assert.ok(Math.abs(fast[i] - s / k) < 1e-6, `bucket ${i}: ${fast[i]} vs ${s / k}`);
    }
  });
});

describe("compute kernels: growth points", () => {
  const times = f64([0, 10, 20, 30]);
  const values = f64([5, NaN, 7, 9]);
  it("takes the newest point at or before at and at or before at − window", () => {
    assert.deepEqual(growthPoints(times, values, 30, 10), { start: 2, end: 3, points: 2 });
    assert.deepEqual(growthPoints(times, values, 29, 10), { start: 0, end: 2, points: 2 }, "null at 10 skipped");
    assert.deepEqual(growthPoints(times, values, 25, 15), { start: 0, end: 2, points: 2 });
  });

  it("falls back to the oldest point inside the window when none is before it", () => {
    assert.deepEqual(growthPoints(times, values, 30, 100), { start: 0, end: 3, points: 3 });
    assert.deepEqual(growthPoints(f64([0, 10, 20]), f64([NaN, 4, 6]), 20, 15), { start: 1, end: 2, points: 2 });
  });

  it("answers one point when nothing is newer than the window's start, none when nothing is at or before at", () => {
    assert.deepEqual(growthPoints(times, values, 35, 3), { start: 3, end: 3, points: 1 });
    assert.deepEqual(growthPoints(times, values, -1, 10), { start: -1, end: -1, points: 0 });
    assert.deepEqual(growthPoints(f64([]), f64([]), 10, 10), { start: -1, end: -1, points: 0 });
    assert.deepEqual(growthPoints(f64([0, 1]), f64([NaN, NaN]), 10, 10), { start: -1, end: -1, points: 0 });
    assert.deepEqual(growthPoints(f64([0, 10, 20]), f64([5, 7, NaN]), 20, 5), { start: 1, end: 1, points: 1 });
  });
});

describe("compute kernels: time args", () => {
  const parse = (v: unknown) => parseDocument(field.object({ from: timeArg() }), { from: v }, "t");
  const refused = (v: unknown, message: RegExp) =>
    assert.throws(
      () => parse(v),
      (err: unknown) => isMachinaError(err, "BAD_REQUEST") && message.test((err as Error).message),
    );

  it("reads epoch ms, ISO-8601 (UTC unless zoned) and durations back", () => {
    assert.deepEqual(parse(1_714_564_800_000).from, { at: 1_714_564_800_000 });
    assert.deepEqual(parse("1714564800000").from, { at: 1_714_564_800_000 });
    assert.deepEqual(parse("2024-05-01").from, { at: Date.UTC(2024, 4, 1) });
    assert.deepEqual(parse("2024-05-01T12:00").from, { at: Date.UTC(2024, 4, 1, 12) });
    assert.deepEqual(parse("2024-05-01 12:00:30.5").from, { at: Date.UTC(2024, 4, 1, 12, 0, 30, 500) });
    assert.deepEqual(parse("2024-05-01T12:00:00+02:00").from, { at: Date.UTC(2024, 4, 1, 10) });
    assert.deepEqual(parse("7d").from, { back: 7 * DAY });
    assert.deepEqual(parse("-90m").from, { back: 90 * MIN });
  });

  it("refuses other text, impossible dates, negative and fractional ms", () => {
    refused("May 1", /^t: from: expected epoch ms, ISO-8601 text .* got "May 1"/);
    refused("2024-02-30", /is not a valid date and time/);
    refused("2024-13-01", /is not a valid date and time/);
    refused("1969-12-31", /before 1970/);
    refused(-5, /expected whole epoch ms from 0/);
    refused(1.5, /expected whole epoch ms from 0/);
    refused(true, /expected epoch ms, ISO-8601 text/);
    refused("7 weeks", /expected epoch ms/);
  });

  it("resolves from back from to and to back from now; an empty range names args.from", () => {
    const now = 10 * DAY;
    assert.deepEqual(resolveRange("c", undefined, undefined, now, DAY), { from: 9 * DAY, to: now, relative: true });
    assert.deepEqual(resolveRange("c", { back: 2 * DAY }, { at: 5 * DAY }, now, DAY), {
      from: 3 * DAY,
      to: 5 * DAY,
      relative: false,
    });
    assert.deepEqual(resolveRange("c", { at: DAY }, { back: DAY }, now, DAY), {
      from: DAY,
      to: 9 * DAY,
      relative: true,
    });
    assert.throws(
      () => resolveRange("c", { at: 5 * DAY }, { at: 5 * DAY }, now, DAY),
      (err: unknown) =>
        isMachinaError(err, "BAD_REQUEST") && /^c: args\.from: .* is not before args\.to/.test(err.message),
    );
    assert.throws(() => resolveRange("c", { back: 20 * DAY }, undefined, now, DAY), /args\.from: .* before 1970/);
    assert.throws(() => resolveRange("c", undefined, { back: 20 * DAY }, now, DAY), /args\.to: .* not after 1970/);
  });
});

/** A DataReads answering from fixed columns, noting every series read. */
function fakeData(fields: Record<string, string>, columns: Columns) {
  const reads: SeriesOptions[] = [];
  const data = {
    reads: new ReadSet(),
    async fields() {
      return fields;
    },
    async series(_type: string, _key: JsonObject, _field: string, opts: SeriesOptions = {}): Promise<Columns> {
      reads.push(opts);
      const lo = lowerBound(columns.times, opts.from ?? 0);
      const hi = lowerBound(columns.times, opts.to ?? Infinity);
      return { times: columns.times.slice(lo, hi), values: columns.values.slice(lo, hi) };
    },
  };
  const deps: ComputeDeps = {
    data: data as unknown as DataReads,
    call: () => Promise.reject(new Error("no calls")),
  };
  return { deps, reads, readSet: data.reads };
}

const computation = (name: string) => {
  const c = BUILTIN_COMPUTATIONS.find((x) => x.name === name);
  assert.ok(c !== undefined, `${name} is a built-in`);
  return c;
};

describe("compute kernels: the series computations over a fake data service", () => {
  const T0 = Date.UTC(2024, 4, 1);
  const FIELDS = { id: "text", visits: "int", label: "text" };
  // Hourly points on day 0 and day 3 (visits = hour), none on days 1-2, one null at 05:00 on day 0.
  const times: number[] = [];
  const values: number[] = [];
  for (const day of [0, 3])
    for (let h = 0; h < 24; h++) {
      times.push(T0 + day * DAY + h * HOUR);
      values.push(day === 0 && h === 5 ? NaN : h);
    }
  const columns = { times: f64(times), values: f64(values) };
  const base = { type: "site", key: { id: "a" }, field: "visits" };

  it("series: one row per day with n, fill previous across the gap, only one read, cacheable", async () => {
    const { deps, reads, readSet } = fakeData(FIELDS, columns);
    const args = { ...base, from: "2024-05-01T06:00:00Z", to: T0 + 4 * DAY, step: "1d", fill: "previous" };
    const { rows } = await computation("series").run(args, deps);
    const dayMean = (276 - 5) / 23;
    assert.deepEqual(rows, [
      { t: "2024-05-01T00:00:00.000Z", ts: T0, value: dayMean, n: 23 },
      { t: "2024-05-02T00:00:00.000Z", ts: T0 + DAY, value: dayMean, n: 0 },
      { t: "2024-05-03T00:00:00.000Z", ts: T0 + 2 * DAY, value: dayMean, n: 0 },
      { t: "2024-05-04T00:00:00.000Z", ts: T0 + 3 * DAY, value: 11.5, n: 24 },
    ]);
    assert.deepEqual(reads, [{ from: T0, to: T0 + 4 * DAY, store: "clean" }], "the first bucket is read whole");
    assert.equal(readSet.uncacheable, null);
  });

  it("series: a to relative to now is not cached", async () => {
    const { deps, readSet } = fakeData(FIELDS, columns);
    const { rows } = await computation("series").run({ ...base, step: "1h" }, deps);
    assert.ok(rows.length === 24 || rows.length === 25);
    assert.ok(rows.every((r) => r.value === null && r.n === 0));
    assert.match(String(readSet.uncacheable), /relative to now/);
  });

  it("series: refuses too many buckets naming args.step with a step that fits, before reading", async () => {
    const { deps, reads } = fakeData(FIELDS, columns);
    await assert.rejects(
      computation("series").run({ ...base, from: T0, to: T0 + 30 * DAY, step: "1m" }, deps),
      (err: unknown) => {
        assert.ok(isMachinaError(err, "BAD_REQUEST"), String(err));
        assert.match(
          err.message,
          /^computation "series": args\.step: 1m from 2024-05-01T00:00:00\.000Z to 2024-05-31T00:00:00\.000Z is 43,200 buckets, more than 10,000; use a step of 5m or more/,
        );
        assert.equal((err.details as JsonObject).field, "args.step");
        return true;
      },
    );
    assert.equal(reads.length, 0);
  });

  it("series: refuses a text field, an unknown field, a bad reducer and a bare-number step", async () => {
    const { deps } = fakeData(FIELDS, columns);
    const run = (args: JsonObject) => computation("series").run({ ...base, step: "1h", ...args }, deps);
    await assert.rejects(
      run({ field: "label" }),
      /args\.field: field "label" of type site is text, not a number; its numeric fields: visits/,
    );
    await assert.rejects(
      run({ field: "visit" }),
      /args\.field: type site has no field "visit" \(did you mean "visits"\?\)/,
    );
    await assert.rejects(
      run({ reducer: "median" }),
      /args\.reducer: expected one of mean, sum, min, max, count, first, last/,
    );
    await assert.rejects(run({ step: 60 }), /args\.step: expected a duration with a unit/);
  });

  it("moving_average: reads window − 1 buckets before from so the first row averages a full window", async () => {
    const { deps, reads } = fakeData(FIELDS, columns);
    const from = T0 + 3 * DAY + 2 * HOUR;
    const args = { ...base, from, to: from + 3 * HOUR, step: "1h", window: 4 };
    const { rows } = await computation("moving_average").run(args, deps);
    assert.deepEqual(
      rows.map((r) => [r.value, r.raw, r.n]),
      [
        [1, 2, 1], // hours 0..2 of day 3; the window reaches into day 2, which is empty
        [1.5, 3, 1],
        [2.5, 4, 1],
      ],
    );
    assert.equal(reads[0].from, from - 3 * HOUR);
    const zero = await computation("moving_average").run({ ...args, fill: "zero", window: 6 }, deps);
    assert.deepEqual(
      zero.rows.map((r) => r.value),
      [3 / 6, 6 / 6, 10 / 6],
      "fill zero counts the gap's buckets",
    );
  });

  it("moving_average: refuses a window outside 2..1000", async () => {
    const { deps } = fakeData(FIELDS, columns);
    for (const window of [1, 1001, 2.5])
      await assert.rejects(
        computation("moving_average").run({ ...base, step: "1h", window }, deps),
        /computation "moving_average": args\.window: expected an integer from 2 to 1000/,
      );
  });

  it("growth: start as of the window's start, found by looking back past a gap", async () => {
    const { deps, reads } = fakeData(FIELDS, columns);
    const at = T0 + 3 * DAY + 10 * HOUR;
    const { rows } = await computation("growth").run({ ...base, window: "2d", at }, deps);
    assert.deepEqual(rows, [
      {
        start_t: "2024-05-01T23:00:00.000Z",
        start: 23,
        end_t: "2024-05-04T10:00:00.000Z",
        end: 10,
        change: -13,
        percent: (-13 / 23) * 100,
        points: 12,
        note: null,
      },
    ]);
    assert.deepEqual(
      reads.map((r) => [r.from, r.to]),
      [
        [at - 2 * DAY, at + 1],
        [at - 4 * DAY, at - 2 * DAY],
      ],
    );
  });

  it("growth: the oldest point inside the window when none is before it; start 0 has no percent", async () => {
    const { deps } = fakeData(FIELDS, columns);
    const { rows } = await computation("growth").run({ ...base, window: "30d", at: T0 + 2 * HOUR }, deps);
    assert.deepEqual(rows[0], {
      start_t: "2024-05-01T00:00:00.000Z",
      start: 0,
      end_t: "2024-05-01T02:00:00.000Z",
      end: 2,
      change: 2,
      percent: null,
      points: 3,
      note: "start is 0: percent is undefined",
    });
  });

  it("growth: one point, and no data at all (a row of nulls, not an error)", async () => {
    const { deps } = fakeData(FIELDS, columns);
    const one = await computation("growth").run({ ...base, window: "1h", at: T0 + 30 * 60_000 }, deps);
    assert.equal(one.rows[0].points, 1);
    assert.equal(one.rows[0].change, null);
    assert.equal(one.rows[0].percent, null);
    assert.match(String(one.rows[0].note), /only one point/);
    await assert.rejects(
      computation("growth").run({ ...base, window: "1d", at: "100000d" }, deps),
      /computation "growth": args\.at: .* not after 1970/,
    );
    const none = await computation("growth").run({ ...base, window: "1d", at: T0 - 1 }, deps);
    assert.deepEqual(none.rows, [
      {
        start_t: null,
        start: null,
        end_t: null,
        end: null,
        change: null,
        percent: null,
        points: 0,
        note: "no points at or before 2024-04-30T23:59:59.999Z",
      },
    ]);
  });
});

describe("compute kernels: speed", () => {
  it("reduces 1,000,000 points (printed, not asserted)", (t) => {
    const n = 1_000_000;
    const times = new Float64Array(n);
    const values = new Float64Array(n);
    const T = Date.UTC(2024, 0, 1);
    for (let i = 0; i < n; i++) {
      times[i] = T + i * 1000;
      values[i] = i % 97 === 0 ? NaN : (i * 7919) % 1000;
    }
    const grid = bucketGrid(times[0], times[n - 1] + 1, 2 * MIN); // 8,334 buckets
    const best = (fn: () => void) => {
      let ms = Infinity;
      for (let r = 0; r < 7; r++) {
        const t0 = performance.now();
        fn();
        ms = Math.min(ms, performance.now() - t0);
      }
      return ms.toFixed(2);
    };
    const reducers: Reducer[] = ["mean", "sum", "min", "max", "count", "first", "last"];
    const parts = reducers.map((r) => `${r} ${best(() => bucketReduce(times, values, grid, r))}ms`);
    const buckets = bucketReduce(times, values, grid, "mean").values;
    parts.push(`fill previous ${best(() => fillGaps(buckets.slice(), "previous"))}ms`);
    parts.push(`trailing mean w=1000 ${best(() => trailingMean(buckets, 1000))}ms`);
    parts.push(`growth points ${best(() => growthPoints(times, values, times[n - 1], 7 * DAY))}ms`);
    t.diagnostic(`1,000,000 points into ${grid.count} buckets (best of 7): ${parts.join(", ")}`);
  });
});
