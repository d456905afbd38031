// series, moving_average and growth against the real services: data (real Cassandra) and compute
// in-process on one prefix, clean rows written through data.create.clean with explicit
// window_start over five days with gaps (and one null), read back through data.series. Bucket
// alignment, every reducer and fill, the trailing window over a gap, growth's start as of the
// window's start, no data and one point, and the BAD_REQUESTs naming args.<field>.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import cassandra from "cassandra-driver";
import { computeService, type ComputeConfig } from "@machina/compute";
import { dataService, type DataConfig } from "@machina/data";
import type { ComputeReply, JsonObject } from "@machina/protos";
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { isMachinaError } from "@machina/wire";
import { adminCqlClient, dataServiceEnv } from "../support/cassandra-env";
import { NATS_URL, uniquePrefix, removeNetwork } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("series");
const keyspace = `${prefix.replace(/[^a-z0-9_]/g, "_")}_ks`;

const metricType = `key: [id]
fields: { id: text, visits: int, ratio: double, label: text }
merge: { default: latest_non_null }
clean_window: 1h
`;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const D0 = Date.UTC(2024, 4, 1); // 2024-05-01, a Wednesday
const at = (day: number, hour = 0) => D0 + day * DAY + hour * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

// Entity a: four hours on day 0 (and a row at 06:00 with visits null), two on day 2, one on
// day 4; days 1 and 3 are empty. Entity one has a single point; zero starts at 0; none has no rows.
const ROWS: JsonObject[] = [
  { id: "a", visits: 10, window_start: at(0, 0) },
  { id: "a", visits: 20, window_start: iso(at(0, 1)) },
  { id: "a", visits: 30, window_start: at(0, 2) },
  { id: "a", visits: 40, window_start: iso(at(0, 3)) },
  { id: "a", ratio: 0.5, window_start: at(0, 6) },
  { id: "a", visits: 100, window_start: at(2, 12) },
  { id: "a", visits: 200, window_start: at(2, 13) },
  { id: "a", visits: 50, window_start: at(4, 0) },
  { id: "one", visits: 7, window_start: at(2, 3) },
  { id: "zero", visits: 0, window_start: at(0, 0) },
  { id: "zero", visits: 5, window_start: at(1, 0) },
];

describe("compute: series, moving_average, growth", () => {
  let data: RunningService<DataConfig>;
  let compute: RunningService<ComputeConfig>;
  let nc: NatsConnection;
  let client: MeshClient;
  let admin: cassandra.Client;

  before(async () => {
    const { client: c, localDataCenter } = await adminCqlClient();
    admin = c;
    const configDir = writeConfig({ "data/types/metric.yaml": metricType });
    const env = dataServiceEnv(NATS_URL, prefix, keyspace, localDataCenter);
    data = await startService(dataService, { handleSignals: false, configDir, env });
    compute = await startService(computeService, { handleSignals: false, configDir, env });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
    await client.request(
      data.ctx.names.data("create", "clean", "metric"),
      "CreateRequest",
      { records: ROWS },
      "WriteReply",
    );
  });

  after(async () => {
    await compute?.stop();
    await data?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, data.ctx.names);
      await nc.close();
    }
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin?.shutdown();
  });

  const get = (name: string, args: Record<string, unknown>): Promise<ComputeReply> =>
    client.request(compute.ctx.names.computeGet(name), "ComputeRequest", { args: args as JsonObject }, "ComputeReply", {
      timeoutMs: 30_000,
    });
  const rowsOf = async (name: string, args: Record<string, unknown>) => (await get(name, args)).rows;

  const refused = (message: RegExp, field: string) => (err: unknown) => {
    assert.ok(isMachinaError(err, "BAD_REQUEST"), String(err));
    assert.match(err.message, message);
    assert.equal((err.details as JsonObject | undefined)?.field, field);
    return true;
  };

  const a = { type: "metric", key: { id: "a" }, field: "visits" };
  const fiveDays = { ...a, from: D0, to: iso(at(5)), step: "1d" };
  const values = (rows: JsonObject[]) => rows.map((r) => r.value);

  it("series: daily means over the gaps, rows {t, ts, value, n}, empty days null", async () => {
    const rows = await rowsOf("series", fiveDays);
    assert.deepEqual(rows, [
      { t: "2024-05-01T00:00:00.000Z", ts: at(0), value: 25, n: 4 },
      { t: "2024-05-02T00:00:00.000Z", ts: at(1), value: null, n: 0 },
      { t: "2024-05-03T00:00:00.000Z", ts: at(2), value: 150, n: 2 },
      { t: "2024-05-04T00:00:00.000Z", ts: at(3), value: null, n: 0 },
      { t: "2024-05-05T00:00:00.000Z", ts: at(4), value: 50, n: 1 },
    ]);
  });

  it("series: fill previous and zero", async () => {
    assert.deepEqual(values(await rowsOf("series", { ...fiveDays, fill: "previous" })), [25, 25, 150, 150, 50]);
    assert.deepEqual(values(await rowsOf("series", { ...fiveDays, fill: "zero" })), [25, 0, 150, 0, 50]);
    assert.deepEqual(values(await rowsOf("series", { ...fiveDays, fill: "null" })), [25, null, 150, null, 50]);
  });

  it("series: every reducer", async () => {
    const want: Record<string, (number | null)[]> = {
      sum: [100, null, 300, null, 50],
      min: [10, null, 100, null, 50],
      max: [40, null, 200, null, 50],
      count: [4, 0, 2, 0, 1],
      first: [10, null, 100, null, 50],
      last: [40, null, 200, null, 50],
    };
    for (const [reducer, expected] of Object.entries(want))
      assert.deepEqual(values(await rowsOf("series", { ...fiveDays, reducer })), expected, reducer);
  });

  it("series: hourly, the first bucket aligned down to the hour and read whole; a null point counts as absent", async () => {
    const rows = await rowsOf("series", { ...a, from: "2024-05-01T01:30:00Z", to: "2024-05-01T07:00:00Z", step: "1h" });
    assert.deepEqual(
      rows.map((r) => [r.t, r.value, r.n]),
      [
        ["2024-05-01T01:00:00.000Z", 20, 1],
        ["2024-05-01T02:00:00.000Z", 30, 1],
        ["2024-05-01T03:00:00.000Z", 40, 1],
        ["2024-05-01T04:00:00.000Z", null, 0],
        ["2024-05-01T05:00:00.000Z", null, 0],
        ["2024-05-01T06:00:00.000Z", null, 0], // its row has ratio but visits null
      ],
    );
    const ratio = await rowsOf("series", { ...a, field: "ratio", from: at(0, 6), to: at(0, 7), step: "1h" });
    assert.deepEqual(ratio, [{ t: "2024-05-01T06:00:00.000Z", ts: at(0, 6), value: 0.5, n: 1 }]);
  });

  it("series: from as a duration before to, and to leaving out what is at or after it", async () => {
    const rows = await rowsOf("series", { ...a, from: "3h", to: at(0, 3), step: "1h", reducer: "count" });
    assert.deepEqual(values(rows), [1, 1, 1]);
  });

  it("series: no data (every bucket null) and one point", async () => {
    const none = await rowsOf("series", { ...fiveDays, key: { id: "none" } });
    assert.equal(none.length, 5);
    assert.ok(none.every((r) => r.value === null && r.n === 0));
    const one = await rowsOf("series", { ...fiveDays, key: { id: "one" }, fill: "previous" });
    assert.deepEqual(
      one.map((r) => [r.value, r.n]),
      [
        [null, 0],
        [null, 0],
        [7, 1],
        [7, 0],
        [7, 0],
      ],
    );
  });

  it("moving_average: the trailing mean over 3 days, gaps skipped, raw the day's mean", async () => {
    const rows = await rowsOf("moving_average", { ...fiveDays, window: 3 });
    assert.deepEqual(
      rows.map((r) => [r.t, r.value, r.raw, r.n]),
      [
        ["2024-05-01T00:00:00.000Z", 25, 25, 4],
        ["2024-05-02T00:00:00.000Z", 25, null, 0],
        ["2024-05-03T00:00:00.000Z", 87.5, 150, 2],
        ["2024-05-04T00:00:00.000Z", 150, null, 0],
        ["2024-05-05T00:00:00.000Z", 100, 50, 1],
      ],
    );
    // The warm-up: from day 2, the first row still averages days 0-2.
    const late = await rowsOf("moving_average", { ...fiveDays, from: at(2), window: 3 });
    assert.deepEqual(values(late), [87.5, 150, 100]);
    const zero = await rowsOf("moving_average", { ...fiveDays, window: 2, fill: "zero" });
    // fill zero makes every empty day 0, the one before from included.
    assert.deepEqual(values(zero), [12.5, 12.5, 75, 75, 25]);
  });

  it("growth: start as of the window's start (looked up before a gap), end the newest at or before at", async () => {
    const [row] = await rowsOf("growth", { ...a, window: "2d", at: at(4) });
    assert.deepEqual(row, {
      start_t: "2024-05-01T03:00:00.000Z",
      start: 40,
      end_t: "2024-05-05T00:00:00.000Z",
      end: 50,
      change: 10,
      percent: 25,
      points: 4,
      note: null,
    });
    // Before the day-4 point, and with a window reaching before the first point.
    const [early] = await rowsOf("growth", { ...a, window: "30d", at: iso(at(3)) });
    assert.deepEqual(
      [early.start_t, early.start, early.end, early.change, early.points],
      [iso(at(0)), 10, 200, 190, 6],
    );
  });

  it("growth: one point, start 0, and no data are rows with a note, not errors", async () => {
    const [one] = await rowsOf("growth", { ...a, key: { id: "one" }, window: "1d", at: at(3) });
    assert.deepEqual([one.start, one.end, one.change, one.percent, one.points], [7, 7, null, null, 1]);
    assert.match(String(one.note), /only one point/);
    const [zero] = await rowsOf("growth", { ...a, key: { id: "zero" }, window: "1d", at: at(1) });
    assert.deepEqual([zero.start, zero.end, zero.change, zero.percent, zero.points], [0, 5, 5, null, 2]);
    assert.equal(zero.note, "start is 0: percent is undefined");
    const [none] = await rowsOf("growth", { ...a, key: { id: "none" }, window: "7d", at: at(5) });
    assert.deepEqual(none, {
      start_t: null,
      start: null,
      end_t: null,
      end: null,
      change: null,
      percent: null,
      points: 0,
      note: `no points at or before ${iso(at(5))}`,
    });
  });

  it("refuses a non-numeric field, an unknown field with a suggestion, and an unknown type", async () => {
    for (const name of ["series", "moving_average", "growth"] as const) {
      const args = { series: fiveDays, moving_average: { ...fiveDays, window: 2 }, growth: { ...a, window: "1d" } }[
        name
      ];
      await assert.rejects(
        get(name, { ...args, field: "label" }),
        refused(
          new RegExp(
            `^computation "${name}": args\\.field: field "label" of type metric is text, not a number; its numeric fields: ratio, visits`,
          ),
          "args.field",
        ),
      );
      await assert.rejects(
        get(name, { ...args, field: "visit" }),
        refused(/args\.field: type metric has no field "visit" \(did you mean "visits"\?\)/, "args.field"),
      );
    }
    await assert.rejects(get("series", { ...fiveDays, type: "nosuch" }), (err: unknown) =>
      isMachinaError(err, "NOT_FOUND"),
    );
  });

  it("refuses a bad step, a bad reducer, fill and time, and an empty range", async () => {
    await assert.rejects(
      get("series", { ...fiveDays, step: 60 }),
      refused(/^computation "series": args\.step: expected a duration with a unit/, "args.step"),
    );
    await assert.rejects(
      get("series", { ...fiveDays, step: "1 week" }),
      refused(/args\.step: expected a duration such as/, "args.step"),
    );
    await assert.rejects(
      get("series", { ...fiveDays, step: undefined }),
      refused(/args\.step: is required/, "args.step"),
    );
    await assert.rejects(
      get("series", { ...fiveDays, reducer: "median" }),
      refused(/args\.reducer: expected one of mean, sum/, "args.reducer"),
    );
    await assert.rejects(
      get("series", { ...fiveDays, fill: "linear" }),
      refused(/args\.fill: expected one of null, previous, zero/, "args.fill"),
    );
    await assert.rejects(
      get("series", { ...fiveDays, from: "last week" }),
      refused(/args\.from: expected epoch ms, ISO-8601 text/, "args.from"),
    );
    await assert.rejects(
      get("series", { ...fiveDays, from: at(5) }),
      refused(/args\.from: 2024-05-06T00:00:00\.000Z is not before args\.to/, "args.from"),
    );
    await assert.rejects(
      get("moving_average", { ...fiveDays, window: 1 }),
      refused(/args\.window: expected an integer from 2 to 1000, got 1/, "args.window"),
    );
    await assert.rejects(
      get("growth", { ...a, window: "7" }),
      refused(/args\.window: expected a duration/, "args.window"),
    );
  });

  it("refuses more than 10,000 buckets naming args.step and a step that fits", async () => {
    await assert.rejects(
      get("series", { ...fiveDays, step: "1s" }),
      refused(
        /^computation "series": args\.step: 1s from 2024-05-01T00:00:00\.000Z to 2024-05-06T00:00:00\.000Z is 432,000 buckets, more than 10,000; use a step of 1m or more, or a shorter from\.\.to$/,
        "args.step",
      ),
    );
    await assert.rejects(
      get("moving_average", { ...fiveDays, step: "30s", window: 5 }),
      refused(/^computation "moving_average": args\.step: 30s .* is 14,400 buckets/, "args.step"),
    );
    // Exactly 10,000 is allowed.
    const rows = await rowsOf("series", { ...a, from: D0, to: D0 + 10_000 * 60_000, step: "1m", reducer: "count" });
    assert.equal(rows.length, 10_000);
    assert.equal(
      rows.reduce((s, r) => s + Number(r.value), 0),
      7,
    );
  });
});
