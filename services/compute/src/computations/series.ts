import * as z from "zod";
import { field, formatDuration } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import type { DataReads } from "../reads/data-reads";
import { bucketGrid, fittingStep, widenGrid, type BucketGrid } from "../kernels/bucket-grid";
import { bucketReduce, REDUCERS, type Reduced } from "../kernels/bucket-reduce";
import { fillGaps, FILLS } from "../kernels/gap-fill";
import { resolveRange, timeArg } from "../kernels/time-args";
import { defineComputation } from "./define";
import { checkFields } from "./type-fields";

/** The most buckets one series answers: enough for a chart, small enough for one reply. */
export const MAX_BUCKETS = 10_000;

/** How far back `from` reaches when it is not given. */
const DEFAULT_SPAN = 24 * 3_600_000;

/** The args of `series`, which moving_average shares. */
export const seriesArgs = {
  type: field.name().describe('The entity type, e.g. "website"'),
  key: field.names(z.json()).describe('The entity key: its key fields and values, e.g. {"domain": "example.com"}'),
  field: field
    .name()
    .describe(
      "The numeric field (int, bigint, double; boolean as 0/1, timestamp as epoch ms); null values are skipped",
    ),
  from: timeArg()
    .optional()
    .describe(
      'Start, inclusive, aligned down to the start of its bucket: epoch ms, ISO-8601 text (UTC unless it names a zone) or a duration before to such as "7d"; default 24h before to',
    ),
  to: timeArg()
    .optional()
    .describe(
      'End, exclusive: epoch ms, ISO-8601 text or a duration before now such as "1d"; default now, so the last bucket is the one in progress',
    ),
  step: field
    .duration()
    .describe(
      `Bucket width, e.g. "1m", "1h", "1d"; buckets start at multiples of it since the epoch (UTC); at most ${MAX_BUCKETS.toLocaleString("en-US")} buckets from..to`,
    ),
  reducer: field
    .oneOf(REDUCERS)
    .default("mean")
    .describe(
      "What a bucket's points become: mean, sum, min, max, count (0 for an empty bucket), first or last (by time); default mean",
    ),
  store: field
    .oneOf(["clean", "dump"])
    .default("clean")
    .describe(
      "clean: one point per merged window, at its start; dump: one per raw record, at its fetched_at (never cached: dump writes are not announced); default clean",
    ),
  fill: field
    .oneOf(FILLS)
    .default("null")
    .describe(
      "An empty bucket's value: null, previous (the last earlier bucket's value; null before the first) or zero; default null",
    ),
};

/** The parsed args of `series`. */
export type SeriesArgs = z.output<z.ZodObject<typeof seriesArgs>>;

/** Buckets of one entity's field: the grid, its reduced and filled values, and how many lead as warm-up. */
export interface BucketedSeries {
  /** The buckets read, the warm-up ones included. */
  grid: BucketGrid;
  reduced: Reduced;
  /** Buckets before `from`'s, read only so a trailing window is full at the first row. */
  warmup: number;
}

/**
 * Checks and reads a series' buckets: the range (BAD_REQUEST naming args.from), the bucket count
 * (naming args.step, with a step that fits), the field (declared and numeric), then one read of
 * the points and one pass reducing them; `warmup` more buckets are read before the first.
 */
export async function readBuckets(
  origin: string,
  args: SeriesArgs,
  data: DataReads,
  warmup = 0,
): Promise<BucketedSeries> {
  const range = resolveRange(origin, args.from, args.to, Date.now(), DEFAULT_SPAN);
  const grid = bucketGrid(range.from, range.to, args.step);
  if (grid.count > MAX_BUCKETS) {
    const fits = formatDuration(fittingStep(range.from, range.to, MAX_BUCKETS));
    throw new MachinaError(
      "BAD_REQUEST",
      `${origin}: args.step: ${formatDuration(args.step)} from ${new Date(range.from).toISOString()} to ` +
        `${new Date(range.to).toISOString()} is ${grid.count.toLocaleString("en-US")} buckets, more than ` +
        `${MAX_BUCKETS.toLocaleString("en-US")}; use a step of ${fits} or more, or a shorter from..to`,
      { details: { field: "args.step", buckets: grid.count, max: MAX_BUCKETS, fits } },
    );
  }
  await checkFields(origin, data, args.type, [["args.field", args.field]], { numeric: ["args.field"] });
  // The cache drops entries when data changes; a range tied to the clock also changes when it ticks.
  if (range.relative) data.reads.unannounced("its time range ends relative to now");
  const read = widenGrid(grid, warmup);
  const columns = await data.series(args.type, args.key as JsonObject, args.field, {
    from: Math.max(0, read.start),
    to: range.to,
    store: args.store,
  });
  const reduced = bucketReduce(columns.times, columns.values, read, args.reducer, range.to);
  fillGaps(reduced.values, args.fill);
  return { grid: read, reduced, warmup };
}

/** A bucket's value as JSON: null for an empty (NaN) one. */
export const valueOf = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** `series`: one entity's numeric field in equal time buckets. */
export const series = defineComputation("series", {
  description:
    "One entity's numeric field in equal time buckets: args {type, key, field, from?, to?, step, reducer?, store?, fill?}. " +
    "Buckets are aligned to multiples of step since the epoch (UTC), from the one holding from (default 24h before to) " +
    "to the one holding to − 1ms (default now); the first bucket is whole, points at or after to are left out. " +
    "One row per bucket, oldest first: {t: bucket start ISO-8601, ts: epoch ms, value: reducer over its points " +
    "(null when empty, unless fill), n: its points}. Null points count as absent. At most 10,000 buckets; " +
    "the field must be numeric. Not cached when to is relative to now or store is dump",
  args: field.object(seriesArgs),
  async run(args, { data }) {
    const { grid, reduced } = await readBuckets('computation "series"', args, data);
    const rows: JsonObject[] = new Array(grid.count);
    for (let i = 0; i < grid.count; i++) {
      const ts = grid.start + i * grid.step;
      rows[i] = { t: new Date(ts).toISOString(), ts, value: valueOf(reduced.values[i]), n: reduced.counts[i] };
    }
    return rows;
  },
});
