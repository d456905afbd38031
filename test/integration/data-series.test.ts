// data.series.<type> against the real servers: the data service (real Cassandra) in-process on
// its own prefix and keyspace. Clean rows created with explicit window starts over several days
// with gaps, dump rows sharing fetched_at through data.create.dump; ranges (from inclusive, to
// exclusive, 0 = horizon / now), empty and one-point series, nulls as NaN, paging across days and
// through ties (every point once, in order), read-your-writes through the operation queue, the
// BAD_REQUESTs and NOT_FOUND naming what to fix, and a timing print of 100,000 points.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import cassandra from "cassandra-driver";
import { DataLayer, compileTypeDef, dataService, entityBucketOf, type DataConfig } from "@machina/data";
import type { JsonObject, SeriesReply, SeriesRequest } from "@machina/protos";
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { isMachinaError } from "@machina/wire";
import { CQL_CONTACT_POINTS, adminCqlClient, dataServiceEnv } from "../support/cassandra-env";
import { NATS_URL, uniquePrefix, removeNetwork } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("series");
const keyspace = `${prefix.replace(/[^a-z0-9_]/g, "_")}_ks`;

const readingDef = {
  key: ["site", "sensor"],
  fields: {
    site: "text",
    sensor: "int",
    temp: "double",
    count: "int",
    total: "bigint",
    up: "boolean",
    seen: "timestamp",
    label: "text",
    meta: "json",
  },
  merge: { default: "latest_non_null" },
  clean_window: "1h",
  dump_ttl: "30d",
};
const NUMERIC = "temp, count, total, up, seen";

const DAY = 86_400_000;
const HOUR = 3_600_000;
const today = Math.floor(Date.now() / DAY) * DAY;
/** `h` hours into the UTC day `n` days before today. */
const at = (n: number, h: number): number => today - n * DAY + h * HOUR;
const iso = (t: number) => new Date(t).toISOString();

// Entity a/1 in the clean store: days 5, 3 and 1 back (gaps on 4 and 2), one point 12 days back
// (outside the 7-day clean horizon, so only an explicit from reaches it), a null temp on day 3.
const CLEAN: Array<[number, number | null, JsonObject]> = [
  [at(12, 10), 0.5, {}],
  [at(5, 0), 1, { count: 3, total: 12_345_678_901, up: true, seen: iso(at(5, 0) + 1) }],
  [at(5, 6), 2, { up: false }],
  [at(5, 12), 3, {}],
  [at(5, 18), 4, {}],
  [at(3, 1), 5, {}],
  [at(3, 2), null, { label: "no temp" }],
  [at(1, 23), 7, {}],
];
const HORIZON = CLEAN.slice(1);

// Dump rows of a/1 in one create: seq is each record's position, so ties at T1 and T2 differ by
// query and seq. In clustering order (source, query, seq) their values read 10..16.
const T0 = at(4, 5);
const T1 = at(2, 10);
const T2 = at(2, 11);
const DUMP: JsonObject[] = [
  { fetched_at: iso(T0), query: "q", temp: 10 },
  { fetched_at: iso(T1), query: "q", temp: 11 },
  { fetched_at: iso(T1), query: "q", temp: 12 },
  { fetched_at: iso(T1), query: "z", temp: 14 },
  { fetched_at: iso(T1), query: "q", temp: 13 },
  { fetched_at: iso(T2), query: "b", temp: 16 },
  { fetched_at: iso(T2), query: "a", temp: 15 },
].map((r) => ({ site: "a", sensor: 1, ...r }));
const DUMP_TIMES = [T0, T1, T1, T1, T1, T2, T2];
const DUMP_VALUES = [10, 11, 12, 13, 14, 15, 16];
// Records of one entity sharing one fetched_at: more than a page, and than one read (100 rows) of a page's tail.
const TIE_RUN = 250;

const BULK = 100_000;
const BULK_STEP = 5_000;
const BULK_START = today - DAY - BULK * BULK_STEP;

/** A little-endian float64 column. */
function column(bytes: Uint8Array): number[] {
  assert.equal(bytes.byteLength % 8, 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: bytes.byteLength / 8 }, (_, i) => view.getFloat64(i * 8, true));
}

describe("data: series", () => {
  let data: RunningService<DataConfig>;
  let nc: NatsConnection;
  let client: MeshClient;
  let admin: cassandra.Client;
  let localDataCenter = "datacenter1";

  before(async () => {
    ({ client: admin, localDataCenter } = await adminCqlClient());
    const configDir = writeConfig({ "data/types/reading.yaml": JSON.stringify(readingDef) });
    const env = dataServiceEnv(NATS_URL, prefix, keyspace, localDataCenter);
    data = await startService(dataService, { handleSignals: false, configDir, env });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
    const names = data.ctx.names;
    const clean = CLEAN.map(([t, temp, rest]) => ({ site: "a", sensor: 1, window_start: iso(t), temp, ...rest }));
    clean.push({ site: "b", sensor: 2, window_start: iso(at(2, 3)), temp: 42 });
    await client.request(names.data("create", "clean", "reading"), "CreateRequest", { records: clean }, "WriteReply");
    await client.request(names.data("create", "dump", "reading"), "CreateRequest", { records: DUMP }, "WriteReply");
  });

  after(async () => {
    await data?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, data.ctx.names);
      await nc.close();
    }
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin?.shutdown();
  });

  const request = (req: Partial<SeriesRequest>, type = "reading"): Promise<SeriesReply> =>
    client.request(
      data.ctx.names.dataSeries(type),
      "SeriesRequest",
      { key: { site: "a", sensor: 1 }, field: "temp", ...req },
      "SeriesReply",
      { timeoutMs: 60_000 },
    );

  async function series(req: Partial<SeriesRequest>): Promise<{ times: number[]; values: number[]; next: string }> {
    const reply = await request(req);
    const times = column(reply.times);
    const values = column(reply.values);
    assert.equal(reply.count, times.length);
    assert.equal(values.length, times.length);
    return { times, values, next: reply.next };
  }

  // Every page, following next until "": each at most `limit` points.
  async function allPages(req: Partial<SeriesRequest>, limit: number) {
    const pages: Array<{ times: number[]; values: number[] }> = [];
    let page = "";
    do {
      const p = await series({ ...req, limit, page });
      assert.ok(p.times.length <= limit, `a page holds at most ${limit} points`);
      assert.ok(p.times.length > 0 || pages.length === 0, "only a first page may be empty");
      pages.push(p);
      page = p.next;
      assert.ok(pages.length <= 1000, "paging does not terminate");
    } while (page !== "");
    return pages;
  }

  const refused = (code: "BAD_REQUEST" | "NOT_FOUND", message: RegExp) => (err: unknown) => {
    assert.ok(isMachinaError(err, code), String(err));
    assert.match((err as Error).message, message);
    return true;
  };

  it("answers a clean series over the horizon, oldest first, with gaps between days and NaN for null", async () => {
    const s = await series({});
    assert.deepEqual(
      s.times,
      HORIZON.map(([t]) => t),
    );
    assert.deepEqual(
      s.values,
      HORIZON.map(([, v]) => v ?? NaN),
    );
    assert.equal(s.next, "");
    // An explicit from reaches past the horizon, through the days the entity index names.
    const older = await series({ from: at(13, 0) });
    assert.deepEqual(
      older.times,
      CLEAN.map(([t]) => t),
    );
  });

  it("keeps from inclusive and to exclusive", async () => {
    const s = await series({ from: at(5, 6), to: at(3, 2) });
    assert.deepEqual(s.times, [at(5, 6), at(5, 12), at(5, 18), at(3, 1)]);
    assert.deepEqual(s.values, [2, 3, 4, 5]);
    const onlyTo = await series({ to: at(5, 12) });
    assert.deepEqual(onlyTo.values, [1, 2]);
    const onlyFrom = await series({ from: at(3, 2) });
    assert.deepEqual(onlyFrom.values, [NaN, 7]);
  });

  it("answers count 0 and empty columns for no data, and one point for one", async () => {
    for (const req of [
      { key: { site: "nobody", sensor: 1 } },
      { from: at(4, 0), to: at(3, 0) },
      { from: at(0, 0) + DAY },
    ]) {
      const reply = await request(req);
      assert.equal(reply.count, 0);
      assert.equal(reply.times.byteLength, 0);
      assert.equal(reply.values.byteLength, 0);
      assert.equal(reply.next, "");
    }
    const one = await series({ key: { site: "b", sensor: 2 } });
    assert.deepEqual(one, { times: [at(2, 3)], values: [42], next: "" });
  });

  it("reads int, bigint, boolean (0/1) and timestamp (epoch ms) fields as float64", async () => {
    const range = { from: at(5, 0), to: at(5, 7) };
    assert.deepEqual((await series({ ...range, field: "count" })).values, [3, NaN]);
    assert.deepEqual((await series({ ...range, field: "total" })).values, [12_345_678_901, NaN]);
    assert.deepEqual((await series({ ...range, field: "up" })).values, [1, 0]);
    assert.deepEqual((await series({ ...range, field: "seen" })).values, [at(5, 0) + 1, NaN]);
  });

  it("pages with a small limit: every point once, in order, across day boundaries", async () => {
    for (const limit of [1, 2, 3]) {
      const pages = await allPages({ from: at(13, 0) }, limit);
      assert.deepEqual(
        pages.flatMap((p) => p.times),
        CLEAN.map(([t]) => t),
      );
      assert.deepEqual(
        pages.flatMap((p) => p.values),
        CLEAN.map(([, v]) => v ?? NaN),
      );
      assert.equal(pages.length, Math.ceil(CLEAN.length / limit));
    }
    // A limit that ends exactly on the last point answers next "" with it.
    const exact = await series({ limit: HORIZON.length });
    assert.equal(exact.times.length, HORIZON.length);
    assert.equal(exact.next, "");
  });

  it("keeps every dump record sharing a fetched_at, ties in stored order, and pages through the ties", async () => {
    const s = await series({ store: "dump" });
    assert.deepEqual(s.times, DUMP_TIMES);
    assert.deepEqual(s.values, DUMP_VALUES);
    for (const limit of [1, 2, 3, 4]) {
      const pages = await allPages({ store: "dump" }, limit);
      assert.deepEqual(
        pages.flatMap((p) => p.times),
        DUMP_TIMES,
        `limit ${limit}`,
      );
      assert.deepEqual(
        pages.flatMap((p) => p.values),
        DUMP_VALUES,
        `limit ${limit}`,
      );
    }
    // A range that starts on a tie holds all of it.
    assert.deepEqual((await series({ store: "dump", from: T1, to: T2 })).values, [11, 12, 13, 14]);
  });

  it("pages through a run of ties longer than a page and than a read of the database", async () => {
    const key = { site: "ties", sensor: 1 };
    const run = Array.from({ length: TIE_RUN }, (_, i) => ({ ...key, fetched_at: iso(T1), query: "q", temp: i }));
    const around = (t: number, base: number) =>
      [0, 1, 2].map((i) => ({ ...key, fetched_at: iso(t + i), query: "q", temp: base + i }));
    const records = [...around(T0, -3), ...run, ...around(T2, TIE_RUN)];
    await client.request(data.ctx.names.data("create", "dump", "reading"), "CreateRequest", { records }, "WriteReply");
    const times = [T0, T0 + 1, T0 + 2, ...run.map(() => T1), T2, T2 + 1, T2 + 2];
    const values = records.map((r) => r.temp);
    for (const limit of [7, 100, TIE_RUN - 1, TIE_RUN, TIE_RUN + 1, 50_000]) {
      const pages = await allPages({ key, store: "dump" }, limit);
      assert.deepEqual(
        pages.flatMap((p) => p.times),
        times,
        `limit ${limit}`,
      );
      assert.deepEqual(
        pages.flatMap((p) => p.values),
        values,
        `limit ${limit}`,
      );
      assert.equal(pages.length, Math.ceil(times.length / limit), `limit ${limit}`);
    }
  });

  it("shows writes still in the operation queue (read-your-writes)", async () => {
    const layer = await DataLayer.open({
      contactPoints: CQL_CONTACT_POINTS,
      localDataCenter,
      keyspace,
      replication: { [localDataCenter]: 1 },
      types: [compileTypeDef({ name: "reading", ...readingDef }, "reading.yaml")],
    });
    try {
      const key = { site: "queued", sensor: 1 };
      await layer.create("clean", "reading", [{ ...key, window_start: iso(at(3, 4)), temp: 1 }]);
      const cleanWrite = layer.create("clean", "reading", [
        { ...key, window_start: iso(at(3, 5)), temp: 2 },
        { ...key, window_start: iso(at(2, 5)), temp: 3 },
      ]);
      const dumpWrite = layer.create("dump", "reading", [
        { ...key, fetched_at: iso(at(1, 1)), temp: 8 },
        { ...key, fetched_at: iso(at(1, 1)), temp: 9 },
      ]);
      // One turn: the writes are queued and their batches sent, none stored yet.
      await new Promise((resolve) => setImmediate(resolve));
      // Both asked in this turn, so both see the writes queued (or just stored), never neither.
      const [clean, dump] = await Promise.all([
        layer.series("reading", { key, field: "temp" }),
        layer.series("reading", { key, field: "temp", store: "dump" }),
      ]);
      await Promise.all([cleanWrite, dumpWrite]);
      assert.deepEqual([...clean.times], [at(3, 4), at(3, 5), at(2, 5)]);
      assert.deepEqual([...clean.values], [1, 2, 3]);
      assert.deepEqual([...dump.times], [at(1, 1), at(1, 1)]);
      assert.deepEqual([...dump.values], [8, 9]);
      // Stored, they read the same through the service.
      assert.deepEqual((await series({ key })).values, [1, 2, 3]);
    } finally {
      await layer.close();
    }
  });

  it("refuses what it cannot read with a BAD_REQUEST naming the request field, NOT_FOUND for an unknown type", async () => {
    const bad = (req: Partial<SeriesRequest>, message: RegExp, type?: string) =>
      assert.rejects(request(req, type), refused("BAD_REQUEST", message));
    await bad(
      { field: "label" },
      new RegExp(`^type reading: field: "label" is text; .*numeric fields of reading: ${NUMERIC}$`),
    );
    await bad({ field: "meta" }, /field: "meta" is json/);
    await bad(
      { field: "tmp" },
      new RegExp(
        `field: type reading has no field "tmp" \\(did you mean "temp"\\?\\); numeric fields of reading: ${NUMERIC}`,
      ),
    );
    await bad({ field: "__proto__" }, /field: type reading has no field "__proto__"; numeric fields/);
    await bad({ field: "constructor" }, /field: type reading has no field "constructor"/);
    await bad({ field: "sensor" }, /field: "sensor" is a key field/);
    await bad({ field: "" }, /field: name the numeric field to read/);
    await bad({ key: { site: "a" } }, /missing sensor/);
    await bad({ key: {} }, /missing site, sensor/);
    await bad({ key: { site: "a", sensor: 1, temp: 3 } }, /key: "temp" is not a key field/);
    await bad({ key: { site: "a", sensor: "one" } }, /field "sensor"/);
    await bad({ store: "raw" }, /store: unknown store "raw"; expected "clean" .* or "dump"/);
    await bad({ limit: 50_001 }, /limit: expected an integer from 1 to 50000/);
    await bad({ limit: -1 }, /limit: expected an integer from 1 to 50000/);
    await bad({ from: 10, to: 5 }, /to: 5 is not after from 10/);
    await bad({ from: -1 }, /from: expected epoch milliseconds/);
    const first = await series({ limit: 2 });
    assert.notEqual(first.next, "");
    for (const page of ["not a token!", "Zm9v", Buffer.from(JSON.stringify([1, -1, 1, 5, "x"])).toString("base64url")])
      await bad({ page }, /page: .* is not a page token of a series; pass the "next" of the previous reply/);
    await bad({ page: first.next, field: "count" }, /page: .* is a page token of another series/);
    await bad({ page: first.next, from: at(5, 1) }, /page: .* is a page token of another series/);
    await assert.rejects(
      request({}, "nosuch"),
      refused("NOT_FOUND", /unknown type "nosuch" \(known: reading, website\)/),
    );
    // Still answering, and the token still good.
    const second = await series({ limit: 2, page: first.next });
    assert.deepEqual(second.values, [3, 4]);
  });

  it("reads 100,000 points (timing, printed)", async () => {
    const key = { site: "bulk", sensor: 1 };
    const days = new Set<string>();
    const byDay = new Map<string, Array<[number, number]>>();
    for (let i = 0; i < BULK; i++) {
      const t = BULK_START + i * BULK_STEP;
      const day = iso(t).slice(0, 10);
      days.add(day);
      let list = byDay.get(day);
      if (list === undefined) byDay.set(day, (list = []));
      list.push([t, i / 2]);
    }
    const insert = `INSERT INTO ${keyspace}.clean_reading (site, sensor, bucket, window_start, temp) VALUES (?, ?, ?, ?, ?)`;
    const batches: Array<Array<{ query: string; params: unknown[] }>> = [];
    for (const [day, list] of byDay)
      for (let i = 0; i < list.length; i += 100)
        batches.push(
          list.slice(i, i + 100).map(([t, v]) => ({ query: insert, params: ["bulk", 1, day, new Date(t), v] })),
        );
    const loading = performance.now();
    for (let i = 0; i < batches.length; i += 32)
      await Promise.all(batches.slice(i, i + 32).map((b) => admin.batch(b, { prepare: true, logged: false })));
    await admin.execute(
      `UPDATE ${keyspace}.entity_index_reading SET clean_days = clean_days + ? WHERE bucket = ? AND site = ? AND sensor = ?`,
      [[...days], entityBucketOf(JSON.stringify({ site: "bulk", sensor: 1 })), "bulk", 1],
      { prepare: true },
    );
    const loaded = performance.now() - loading;

    const from = BULK_START;
    const to = BULK_START + BULK * BULK_STEP;
    for (let round = 0; round < 3; round++) {
      const started = performance.now();
      let n = 0;
      let page = "";
      let pages = 0;
      let last = -Infinity;
      let sorted = true;
      do {
        const reply = await request({ key, from, to, page });
        const times = column(reply.times);
        for (const t of times) {
          if (t <= last) sorted = false;
          last = t;
        }
        n += reply.count;
        pages++;
        page = reply.next;
      } while (page !== "");
      const ms = performance.now() - started;
      assert.equal(n, BULK);
      assert.ok(sorted, "times ascend");
      console.log(
        `series: ${n} clean points over ${days.size} day partitions in ${pages} pages: ${ms.toFixed(0)} ms ` +
          `(${(n / ms / 1000).toFixed(2)} M points/s)${round === 0 ? `; loaded in ${loaded.toFixed(0)} ms` : ""}`,
      );
    }
  });
});
