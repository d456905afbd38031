import * as z from "zod";
import { field } from "@machina/config";
import type { JsonObject } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { growthPoints } from "../kernels/growth-kernel";
import { resolveTime, timeArg } from "../kernels/time-args";
import { concatColumns, type Columns } from "../reads/series-columns";
import { defineComputation } from "./define";
import { checkFields } from "./type-fields";

/** How much further back than the window the start is looked for, read by read, before the rest of the store. */
const LOOKBACK = [1, 8];

const iso = (ms: number) => new Date(ms).toISOString();

/** `growth`: how much one entity's numeric field changed over a window ending at `at`. */
export const growth = defineComputation("growth", {
  description:
    "How much one entity's numeric field changed over a window: args {type, key, field, window, at?, store?}. " +
    "end is the newest point at or before at (default now); start the newest at or before at − window (the value " +
    "as of the window's start), or, when there is none, the oldest point inside the window. One row " +
    "{start_t, start, end_t, end, change: end − start, percent: change / |start| × 100, points: non-null points " +
    "from start through end, note}. change and percent are null with fewer than 2 points, percent also when start " +
    "is 0; note says why (null otherwise). No data answers that row with nulls and points 0",
  args: field.object({
    type: field.name().describe('The entity type, e.g. "website"'),
    key: field.names(z.json()).describe('The entity key: its key fields and values, e.g. {"domain": "example.com"}'),
    field: field
      .name()
      .describe(
        "The numeric field (int, bigint, double; boolean as 0/1, timestamp as epoch ms); null values are skipped",
      ),
    window: field.duration().describe('How far back the start is taken from at, e.g. "7d"'),
    at: timeArg()
      .optional()
      .describe('The end of the window: epoch ms, ISO-8601 text or a duration before now such as "1d"; default now'),
    store: field
      .oneOf(["clean", "dump"])
      .default("clean")
      .describe("clean: one point per merged window; dump: one per raw record (never cached); default clean"),
  }),
  async run({ type, key, field: name, window, at, store }, { data }) {
    const origin = 'computation "growth"';
    const now = Date.now();
    const end = at === undefined ? now : resolveTime(at, now);
    if (end <= 0)
      throw new MachinaError(
        "BAD_REQUEST",
        `${origin}: args.at: ${end} ms is not after 1970, where the store has no data`,
        {
          details: { field: "args.at", at: end },
        },
      );
    await checkFields(origin, data, type, [["args.field", name]], { numeric: ["args.field"] });
    if (at === undefined || "back" in at) data.reads.unannounced("its window ends relative to now");
    const read = (from: number, to: number) => data.series(type, key as JsonObject, name, { from, to, store });
    const edge = end - window;
    let low = Math.max(0, edge);
    let columns: Columns = await read(low, end + 1);
    let picked = growthPoints(columns.times, columns.values, end, window);
    // The start is the value as of the window's start, which may be far older than the window:
    // look back a little first, and read the rest of the store only when that finds nothing.
    for (let i = 0; i <= LOOKBACK.length; i++) {
      if (low <= 0 || (picked.start >= 0 && columns.times[picked.start] <= edge)) break;
      const from = i < LOOKBACK.length ? Math.max(0, low - LOOKBACK[i] * window) : 0;
      columns = concatColumns([await read(from, low), columns]);
      low = from;
      picked = growthPoints(columns.times, columns.values, end, window);
    }
    const { times, values } = columns;
    if (picked.end < 0)
      return [
        {
          start_t: null,
          start: null,
          end_t: null,
          end: null,
          change: null,
          percent: null,
          points: 0,
          note: `no points at or before ${iso(end)}`,
        },
      ];
    const start = values[picked.start];
    const last = values[picked.end];
    const one = picked.points < 2;
    const note = one
      ? `only one point (at ${iso(times[picked.end])}): no change can be measured`
      : start === 0
        ? "start is 0: percent is undefined"
        : null;
    return [
      {
        start_t: iso(times[picked.start]),
        start,
        end_t: iso(times[picked.end]),
        end: last,
        change: one ? null : last - start,
        percent: one || start === 0 ? null : ((last - start) / Math.abs(start)) * 100,
        points: picked.points,
        note,
      },
    ];
  },
});
