import { field } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import { trailingMean } from "../kernels/moving-window";
import { defineComputation } from "./define";
import { readBuckets, seriesArgs, valueOf } from "./series";

/** `moving_average`: series buckets with the trailing mean over the last `window` of them. */
export const moving_average = defineComputation("moving_average", {
  description:
    "A series with its trailing mean: args are series' plus window (buckets, 2-1000). Each row is a series bucket " +
    "{t, ts, value: the mean of the values of this bucket and the window − 1 before it, raw: this bucket's value, " +
    "n: its points}. The window spans window buckets of time, not points: empty buckets in it are skipped " +
    "(fill: zero or previous fills them first, and then they count); value is null when none in it has a value. " +
    "window − 1 buckets before from are read too, so the first row already averages a full window",
  args: field.object({
    ...seriesArgs,
    window: field
      .int(2, 1000)
      .describe("How many buckets (of step each) the mean spans, this one included; empty ones are skipped"),
  }),
  async run(args, { data }) {
    const { grid, reduced, warmup } = await readBuckets('computation "moving_average"', args, data, args.window - 1);
    const mean = trailingMean(reduced.values, args.window);
    const rows: JsonObject[] = new Array(grid.count - warmup);
    for (let i = warmup; i < grid.count; i++) {
      const ts = grid.start + i * grid.step;
      rows[i - warmup] = {
        t: new Date(ts).toISOString(),
        ts,
        value: valueOf(mean[i]),
        raw: valueOf(reduced.values[i]),
        n: reduced.counts[i],
      };
    }
    return rows;
  },
});
