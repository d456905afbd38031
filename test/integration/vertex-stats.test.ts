// vertex.stats against the real services: data (real Cassandra) and vertex in-process on one
// prefix, vertex sampling every 500 ms. Known samples written through data.create.clean come
// back in the right buckets with each series' reducer; the live sampler stores endpoint calls,
// node memory and DLQ size; retention deletes whole old days; with data stopped, vertex.nodes
// still answers and vertex.stats is a retryable UNAVAILABLE.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import cassandra from "cassandra-driver";
import { dataService, type DataConfig } from "@machina/data";
import type { JsonObject, StatsReply, StatsRequest } from "@machina/protos";
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { Retention, SampleStore, vertexService, type VertexConfig } from "@machina/vertex";
import { isMachinaError } from "@machina/wire";
import { adminCqlClient, dataServiceEnv } from "../support/cassandra-env";
import { eventually } from "../support/eventually";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const prefix = uniquePrefix("vstats");
const keyspace = `${prefix.replace(/[^a-z0-9_]/g, "_")}_ks`;
const MIN = 60_000;
const DAY = 86_400_000;

describe("vertex: monitoring history (vertex.stats)", () => {
  let data: RunningService<DataConfig> | undefined;
  let vertex: RunningService<VertexConfig>;
  let nc: NatsConnection;
  let client: MeshClient;
  let admin: cassandra.Client;
  // Ten minutes ago, aligned to the minute: today's or yesterday's day partition, inside retention.
  const T0 = Math.floor((Date.now() - 10 * MIN) / MIN) * MIN;

  before(async () => {
    const { client: c, localDataCenter } = await adminCqlClient();
    admin = c;
    const configDir = writeConfig({
      "data/types/vertex_sample.yaml": readFileSync(
        path.join(ROOT, "config/default/data/types/vertex_sample.yaml"),
        "utf8",
      ),
    });
    const env = {
      ...dataServiceEnv(NATS_URL, prefix, keyspace, localDataCenter),
      MACHINA_VERTEX_HEARTBEAT_MS: "500",
      MACHINA_VERTEX_MONITORING_INTERVAL_MS: "500",
    };
    data = await startService(dataService, {
      handleSignals: false,
      configDir,
      env: { ...env, MACHINA_MESH_NODE: "d1" },
    });
    vertex = await startService(vertexService, {
      handleSignals: false,
      configDir,
      env: { ...env, MACHINA_MESH_NODE: "v1" },
    });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
    // Two series of known samples: counts (summed per bucket) and a p99 (its worst sample per bucket).
    const records: JsonObject[] = [];
    const day = (t: number) => new Date(t).toISOString().slice(0, 10);
    [1, 2, 3, 4, 5, 6].forEach((v, i) => {
      const t = T0 + i * 20_000; // 0s, 20s, 40s | 60s, 80s, 100s
      records.push({ series: "test.a.requests", utc_day: day(t), value: v, window_start: t });
      records.push({ series: "test.a.p99_ms", utc_day: day(t), value: v * 10, window_start: t });
      records.push({ series: "test.a.load", utc_day: day(t), value: v, window_start: t });
    });
    await client.request(
      vertex.ctx.names.data("create", "clean", "vertex_sample"),
      "CreateRequest",
      { records },
      "WriteReply",
    );
  });

  after(async () => {
    await vertex?.stop();
    await data?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, vertex.ctx.names);
      await nc.close();
    }
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin?.shutdown();
  });

  const stats = (req: Partial<StatsRequest>): Promise<StatsReply> =>
    client.request(vertex.ctx.names.vertex.stats, "StatsRequest", req, "StatsReply", { timeoutMs: 20_000 });

  it("buckets known samples over a range: sum for counts, max for p99, mean otherwise, empty buckets without value", async () => {
    const r = await stats({ from: T0, to: T0 + 3 * MIN, stepMs: MIN, prefix: "test.a." });
    assert.equal(r.from, T0);
    assert.equal(r.stepMs, MIN);
    const by = Object.fromEntries(r.series.map((s) => [s.name, s]));
    assert.deepEqual(Object.keys(by), ["test.a.load", "test.a.p99_ms", "test.a.requests"]);
    assert.equal(by["test.a.requests"].reducer, "sum");
    assert.deepEqual(by["test.a.requests"].buckets, [
      { t: T0, value: 6, n: 3 },
      { t: T0 + MIN, value: 15, n: 3 },
      { t: T0 + 2 * MIN, n: 0 },
    ]);
    assert.equal(by["test.a.p99_ms"].reducer, "max");
    assert.deepEqual(
      by["test.a.p99_ms"].buckets.map((b) => b.value),
      [30, 60, undefined],
    );
    assert.deepEqual(
      by["test.a.load"].buckets.map((b) => b.value),
      [2, 5, undefined],
    );
  });

  it("names series exactly, aligns from down to the step, and takes an explicit reducer", async () => {
    const r = await stats({
      from: T0 + 30_000,
      to: T0 + 2 * MIN,
      stepMs: 40_000,
      series: ["test.a.load"],
      reducer: "last",
    });
    // T0 is a whole minute, so a multiple of 40 s only when the epoch minute is even: align as vertex does.
    const first = Math.floor((T0 + 30_000) / 40_000) * 40_000;
    assert.equal(r.from, first);
    assert.equal(r.series.length, 1);
    assert.equal(r.series[0].reducer, "last");
    const points = [1, 2, 3, 4, 5, 6].map((v, i) => ({ t: T0 + i * 20_000, v }));
    const want = r.series[0].buckets.map((b) => {
      const inB = points.filter((p) => p.t >= b.t && p.t < b.t + 40_000);
      return inB.length === 0 ? undefined : inB[inB.length - 1].v;
    });
    assert.deepEqual(
      r.series[0].buckets.map((b) => b.value),
      want,
    );
    assert.ok(want.some((v) => v !== undefined));
  });

  it("refuses a range with too many buckets, an unknown reducer and an empty selection, naming the field", async () => {
    const refused = (field: string) => (err: unknown) =>
      isMachinaError(err, "BAD_REQUEST") && (err.details as JsonObject).field === field;
    await assert.rejects(stats({ from: T0, to: T0 + DAY, stepMs: 1000, series: ["x"] }), refused("stepMs"));
    await assert.rejects(stats({ from: T0, to: T0 + MIN, series: ["x"], reducer: "median" }), refused("reducer"));
    await assert.rejects(stats({ from: T0, to: T0 + MIN }), refused("series"));
  });

  it("the live sampler stores endpoint calls, node memory and DLQ size", async () => {
    const since = Date.now() - 1000;
    for (let i = 0; i < 5; i++) await client.request(vertex.ctx.names.vertex.nodes, "Empty", {}, "NodeList");
    const r = await eventually(
      "sampled vertex.nodes calls",
      async () => {
        const s = await stats({ from: since, to: Date.now() + 1000, stepMs: 60_000, prefix: "endpoint.vertex.nodes." });
        const req = s.series.find((x) => x.name === "endpoint.vertex.nodes.requests");
        const total = req?.buckets.reduce((a, b) => a + (b.value ?? 0), 0) ?? 0;
        // The percentiles come from heartbeat histograms, so they may land a tick after the counts.
        const p99 = s.series.find((x) => x.name === "endpoint.vertex.nodes.p99_ms");
        return total >= 5 && p99 !== undefined ? s : undefined;
      },
      20_000,
      500,
    );
    assert.ok(
      r.series.some((s) => s.name === "endpoint.vertex.nodes.p99_ms" && s.buckets.some((b) => (b.value ?? 0) > 0)),
    );
    const gauges = await stats({
      from: since,
      to: Date.now() + 1000,
      stepMs: 60_000,
      series: ["node.vertex.v1.rss_bytes", "dlq.messages"],
    });
    const rss = gauges.series.find((s) => s.name === "node.vertex.v1.rss_bytes");
    assert.ok(
      rss?.buckets.some((b) => (b.value ?? 0) > 1_000_000),
      JSON.stringify(rss),
    );
    const dlq = gauges.series.find((s) => s.name === "dlq.messages");
    assert.ok(
      dlq?.buckets.some((b) => b.n > 0 && b.value === 0),
      JSON.stringify(dlq),
    );
  });

  it("retention deletes whole days older than it, and keeps the rest", async () => {
    const store = new SampleStore(client, vertex.ctx.names, "vertex_sample");
    const old = Math.floor((Date.now() - 3 * DAY) / DAY) * DAY + 3_600_000;
    await store.write([{ series: "test.old.load", t: old, value: 9 }]);
    assert.equal((await store.read("test.old.load", old - 1, old + 1)).values[0], 9);
    const deleted = await new Retention(store, DAY).run();
    assert.ok(
      deleted.some((d) => d.series === "test.old.load"),
      JSON.stringify(deleted),
    );
    assert.ok(!deleted.some((d) => d.series === "test.a.load"));
    assert.equal((await store.read("test.old.load", old - 1, old + 1)).values.length, 0);
    assert.equal((await store.read("test.a.load", T0, T0 + 2 * MIN)).values.length, 6);
  });

  it("with data stopped, vertex.nodes still answers and vertex.stats is a retryable UNAVAILABLE", async () => {
    await data?.stop();
    data = undefined;
    const nodes = await client.request(vertex.ctx.names.vertex.nodes, "Empty", {}, "NodeList");
    assert.ok(nodes.nodes.some((n) => n.service === "vertex"));
    await assert.rejects(stats({ from: T0, to: T0 + MIN, series: ["test.a.load"] }), (err: unknown) => {
      assert.ok(isMachinaError(err, "UNAVAILABLE"), String(err));
      assert.equal(err.retryable, true);
      assert.match(err.message, /data/);
      return true;
    });
  });
});
