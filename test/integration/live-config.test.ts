// Live config against running services (in-process, real nats-server): vertex serves the chain,
// fetch validates its own part of every patch and takes it without a restart. A bad quota is
// refused with fetch's own message; a good one rules fetch.quota within seconds; a source added by
// patch is listed, fetched from and gets its own durable worker; a head fetch cannot apply (a
// missing secret) leaves it on the previous head, visible in vertex.nodes; a patch for a service
// with no replica is UNAVAILABLE; an instance started after the patches comes up at the head.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { createAggregateService, type AggregateConfig } from "@machina/aggregate";
import { fetchService, type FetchConfig } from "@machina/fetch";
import type { ConfigPatch, JsonObject, NodeInfo, QueryResponse } from "@machina/protos";
import { MeshClient, publishDurable, startService, type RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { vertexService, type VertexConfig } from "@machina/vertex";
import { decodeBody, encodingOf } from "@machina/wire";
import { expectedBusinesses, startFakeApi, type FakeApi } from "../fixtures/fake-api";
import { batch, collectStore, type StoreCollector } from "../support/aggregate-harness";
import { eventually } from "../support/eventually";
import { refused } from "../support/live-config";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const prefix = uniquePrefix("liveconf");
const names = meshNames(prefix);
const LIMIT = "/fetch/sources/directory/limiter/windows/0/limit";
// Within this long a head reaches every instance and vertex (heartbeats are 300 ms here).
const PROPAGATION_MS = 5_000;

const env = {
  MACHINA_NATS_URL: NATS_URL,
  MACHINA_MESH_PREFIX: prefix,
  MACHINA_HTTP_PORT: "0",
  MACHINA_LOG_LEVEL: "silent",
  MACHINA_VERTEX_HEARTBEAT_MS: "300",
  MACHINA_VERTEX_MONITORING_INTERVAL_MS: "0",
  MACHINA_VERTEX_DASHBOARD_PORT: "0",
  SITESTATS_API_KEY: "demo-key",
};

describe("live config: patches checked by their owner and applied without restart", () => {
  let api: FakeApi;
  let vertex: RunningService<VertexConfig>;
  const fetches: RunningService<FetchConfig>[] = [];
  let nc: NatsConnection;
  let client: MeshClient;
  let directory: Record<string, unknown>;

  const head = async () =>
    (await client.request(names.config.get, "ConfigGetRequest", { path: "" }, "ConfigDocument")).head;
  const patch = async (ops: { op: string; path: string; value?: unknown }[]): Promise<ConfigPatch> =>
    client.request(
      names.config.patch,
      "ConfigPatchRequest",
      { parent: await head(), ops: ops as never, author: "live-config test" },
      "ConfigPatch",
    );
  const nodes = async (): Promise<NodeInfo[]> =>
    (await client.request(names.vertex.nodes, "Empty", {}, "NodeList")).nodes;
  // Every running instance (vertex included) reports `want` to vertex.
  const allAt = (want: string, running: RunningService<unknown>[]) =>
    eventually(
      `every instance at head ${want.slice(0, 12)}`,
      async () => {
        const listed = await nodes();
        const ids = running.map((r) => r.ctx.node.id);
        const at = listed.filter((n) => ids.includes(n.id) && n.configHead === want);
        return at.length === ids.length ? listed : undefined;
      },
      PROPAGATION_MS,
      100,
    );
  const running = () => [vertex, ...fetches] as RunningService<unknown>[];
  const directoryLimit = async () => {
    const q = await client.request(names.fetch.quota, "QuotaRequest", { source: "directory" }, "QuotaReply");
    return q.windows.find((w) => w.perMs === 1000)?.quota;
  };

  before(async () => {
    api = await startFakeApi({ keys: { "demo-key": { limit: 100, windowMs: 1000 } } });
    const text = readFileSync(path.join(ROOT, "config/default/fetch/sources/directory.yaml"), "utf8").replace(
      "http://127.0.0.1:8787",
      api.url,
    );
    const configDir = writeConfig({ "fetch/sources/directory.yaml": text });
    // Instances in one process need their own node ids, or vertex would see one instance.
    const opts = (node: string) => ({ handleSignals: false, configDir, env: { ...env, MACHINA_MESH_NODE: node } });
    vertex = await startService(vertexService, opts("vertex-1"));
    for (const node of ["fetch-1", "fetch-2"]) fetches.push(await startService(fetchService, opts(node)));
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
    directory = (
      await client.request(names.config.get, "ConfigGetRequest", { path: "/fetch/sources/directory" }, "ConfigDocument")
    ).value as Record<string, unknown>;
  });

  after(async () => {
    for (const f of fetches) await f.stop();
    await vertex?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, names);
      await nc.close();
    }
    await api?.close();
  });

  it("starts every instance at the root and reports it to vertex", async () => {
    const root = await head();
    await allAt(root, running());
    assert.equal(await directoryLimit(), 5);
  });

  it("refuses an invalid quota with fetch's own message and stores nothing", async () => {
    const before = await head();
    const err = await refused(patch([{ op: "replace", path: LIMIT, value: "ten" }]));
    assert.equal(err.code, "BAD_REQUEST");
    assert.match(err.message, /^fetch\/sources\/directory: limiter\.windows\[0\]\.limit: expected an integer/);
    const zero = await refused(
      patch([{ op: "replace", path: "/fetch/sources/directory/limiter/windows/0/per", value: 5 }]),
    );
    assert.match(zero.message, /^fetch\/sources\/directory: limiter\.windows\[0\]\.per: /);
    assert.equal(await head(), before);
  });

  it("takes a valid quota change live: fetch.quota answers it within seconds, every instance reports the head", async () => {
    const p = await patch([{ op: "replace", path: LIMIT, value: 7 }]);
    await eventually(
      "fetch.quota shows 7 per second",
      async () => ((await directoryLimit()) === 7 ? true : undefined),
      PROPAGATION_MS,
      100,
    );
    await allAt(p.hash, running());
    // Both replicas, not one: each answers a few of the requests the queue group spreads.
    for (let i = 0; i < 6; i++) assert.equal(await directoryLimit(), 7);
  });

  it("serves a source added by patch: listed, fetched from, and its tasks worked by a new durable worker", async () => {
    const shop = { ...directory, name: "shop" };
    const p = await patch([{ op: "add", path: "/fetch/sources/shop", value: shop }]);
    await allAt(p.hash, running());
    for (let i = 0; i < 4; i++) {
      const listed = await client.request(names.fetch.sources, "Empty", {}, "SourcesReply");
      assert.deepEqual(
        listed.sources.map((s) => s.name),
        ["directory", "shop"],
      );
    }
    const res = await client.request(
      names.fetch.fetch,
      "QueryRequest",
      { source: "shop", query: "businesses", lead: { id: "springfield", args: { city: "springfield" } } },
      "QueryResponse",
    );
    assert.deepEqual(res.data?.types.business?.records, expectedBusinesses("springfield"));

    const id = `live@${Date.now()}/shop`;
    const lead = { id: "riverton", args: { city: "riverton" } };
    await publishDurable(
      jetstream(nc),
      names.task.fetch("shop", "businesses", lead.id),
      "FetchTask",
      { id, source: "shop", query: "businesses", lead, trigger: "test", tick: Date.now(), createdAt: Date.now() },
      { msgID: id },
    );
    const jsm = await jetstreamManager(nc);
    const answer = await eventually(
      "the shop task's answer on FETCHED",
      async () => {
        const m = await jsm.streams
          .getMessage(names.streams.FETCHED, { last_by_subj: names.task.fetched("shop") })
          .catch(() => null);
        if (m === null) return undefined;
        const resp: QueryResponse = decodeBody("QueryResponses", m.data, encodingOf(m.header)).responses[0];
        return resp.taskId === id ? resp : undefined;
      },
      PROPAGATION_MS * 2,
    );
    assert.deepEqual(answer.data?.types.business?.records, expectedBusinesses("riverton"));
  });

  it("keeps running the previous head when a head cannot be applied, and catches up when it is fixed", async () => {
    const good = await head();
    // Compiles (so fetch's check takes it), but its secret is missing where fetch runs.
    const broken = { ...directory, name: "broken", data: { api_key: { env: "LIVE_CONFIG_TEST_NO_SUCH_VAR" } } };
    const bad = await patch([{ op: "add", path: "/fetch/sources/broken", value: broken }]);
    await allAt(bad.hash, [vertex]);
    await new Promise((r) => setTimeout(r, 1_000));
    const listed = await nodes();
    for (const f of fetches)
      assert.equal(listed.find((n) => n.id === f.ctx.node.id)?.configHead, good, "drift shows in vertex.nodes");
    assert.equal(await directoryLimit(), 7, "the previous config still runs");
    const fixed = await patch([{ op: "remove", path: "/fetch/sources/broken" }]);
    await allAt(fixed.hash, running());
  });

  it("answers UNAVAILABLE, naming the service, for a patch no replica of its owner can check", async () => {
    const before = await head();
    const err = await refused(patch([{ op: "add", path: "/invoke", value: { ledgers: {} } }]));
    assert.equal(err.code, "UNAVAILABLE");
    assert.equal(err.retryable, true);
    assert.match(err.message, /^invoke: no invoke replica answered/);
    assert.equal(await head(), before);
  });

  it("starts a new instance at the head, with the patched quota and the added source", async () => {
    const now = await head();
    const late = await startService(fetchService, {
      handleSignals: false,
      configDir: fetches[0].ctx.configSource.configDir,
      env: { ...env, MACHINA_MESH_NODE: "fetch-3" },
    });
    fetches.push(late);
    assert.equal(late.ctx.node.configHead, now);
    await allAt(now, running());
    // Only the late instance left: what it answers is what it started with.
    for (const f of fetches.splice(0, 2)) await f.stop();
    assert.equal(await directoryLimit(), 7);
    const listed = await client.request(names.fetch.sources, "Empty", {}, "SourcesReply");
    assert.deepEqual(
      listed.sources.map((s) => s.name),
      ["directory", "shop"],
    );
  });
});

describe("live config: an aggregator's window changes without restart", () => {
  const aggPrefix = uniquePrefix("liveagg");
  const aggNames = meshNames(aggPrefix);
  const aggEnv = { ...env, MACHINA_MESH_PREFIX: aggPrefix };
  const T0 = 1_700_000_000_000; // a multiple of 20 s, so 10 s and 20 s windows both start on it
  const at = (s: number) => T0 + s * 1000;
  let vertex: RunningService<VertexConfig>;
  let aggregate: RunningService<AggregateConfig>;
  let nc: NatsConnection;
  let client: MeshClient;
  let store: StoreCollector;

  const save = async (id: string, records: JsonObject[]) => {
    const ack = await client.request(
      aggNames.aggregateSave("win"),
      "RecordBatch",
      batch("win", id, T0, records),
      "Ack",
    );
    assert.equal(ack.ok, true);
  };
  const windows = () =>
    store
      .batches()
      .filter((b) => b.type === "win")
      .map((b) => ({ start: (b.fetchedAt - T0) / 1000, size: b.query, v: b.records[0].v }));

  before(async () => {
    const configDir = writeConfig({
      "aggregate/aggregators/win.yaml":
        "aggregator: window\nkey: sensor\ntime_field: at\nsize: 10s\nfields: { v: sum }\n",
    });
    const opts = (node: string) => ({ handleSignals: false, configDir, env: { ...aggEnv, MACHINA_MESH_NODE: node } });
    vertex = await startService(vertexService, opts("vertex-1"));
    aggregate = await startService(createAggregateService(), opts("aggregate-1"));
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
    store = await collectStore(nc, aggNames);
  });

  after(async () => {
    await store?.stop();
    await aggregate?.stop();
    await vertex?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, aggNames);
      await nc.close();
    }
  });

  it("emits windows of the new size once a patch changes it, without a restart", async () => {
    await save("b1", [
      { sensor: "a", at: at(1), v: 1 },
      { sensor: "a", at: at(12), v: 2 },
    ]);
    await eventually("the 10 s window [0, 10)", async () => (windows().length >= 1 ? true : undefined));
    assert.deepEqual(windows(), [{ start: 0, size: "10s", v: 1 }]);

    const parent = (await client.request(aggNames.config.get, "ConfigGetRequest", { path: "" }, "ConfigDocument")).head;
    const bad = await refused(
      client.request(
        aggNames.config.patch,
        "ConfigPatchRequest",
        {
          parent,
          ops: [{ op: "add", path: "/aggregate/aggregators/win/hop", value: "30s" }] as never,
          author: "t",
        },
        "ConfigPatch",
      ),
    );
    assert.match(bad.message, /^aggregate\/aggregators\/win: hop: 30s is longer than size 10s/);
    const p = await client.request(
      aggNames.config.patch,
      "ConfigPatchRequest",
      { parent, ops: [{ op: "replace", path: "/aggregate/aggregators/win/size", value: "20s" }] as never, author: "t" },
      "ConfigPatch",
    );
    await eventually(
      "aggregate at the new head",
      async () => {
        const listed = (await client.request(aggNames.vertex.nodes, "Empty", {}, "NodeList")).nodes;
        return listed.find((n) => n.id === aggregate.ctx.node.id)?.configHead === p.hash ? true : undefined;
      },
      PROPAGATION_MS,
      100,
    );
    // [20, 40) under the new size, closed by a record at 45 s.
    await save("b2", [{ sensor: "a", at: at(25), v: 4 }]);
    await save("b3", [{ sensor: "a", at: at(45), v: 8 }]);
    const after = await eventually("the 20 s window [20, 40)", async () => {
      const w = windows().find((x) => x.start === 20);
      return w === undefined ? undefined : w;
    });
    assert.deepEqual(after, { start: 20, size: "20s", v: 4 });
    assert.ok(
      windows().every((w) => w.start === 0 || w.size === "20s"),
      `after the patch every window is 20 s: ${JSON.stringify(windows())}`,
    );
  });

  it("adds, re-partitions and retires stateful types live; one that keeps state is not retired", async () => {
    const headOf = async () =>
      (await client.request(aggNames.vertex.nodes, "Empty", {}, "NodeList")).nodes.find(
        (n) => n.id === aggregate.ctx.node.id,
      )?.configHead;
    const parent = (await client.request(aggNames.config.get, "ConfigGetRequest", { path: "" }, "ConfigDocument")).head;
    const spec = {
      aggregator: "window",
      key: "sensor",
      time_field: "at",
      size: "10s",
      fields: { v: "max" },
      partitions: 2,
    };
    const p = await client.request(
      aggNames.config.patch,
      "ConfigPatchRequest",
      { parent, ops: [{ op: "add", path: "/aggregate/aggregators/peak", value: spec }] as never, author: "t" },
      "ConfigPatch",
    );
    await eventually(
      "aggregate at the head that adds peak",
      async () => ((await headOf()) === p.hash ? true : undefined),
      PROPAGATION_MS,
      100,
    );
    assert.deepEqual(
      aggregate.ctx.node.owns?.filter((u) => u.startsWith("peak.")).sort(),
      ["peak.0", "peak.1"],
      "the only replica takes both new partitions",
    );
    const peaks = () => store.batches().filter((b) => b.type === "peak");
    const ack = await client.request(
      aggNames.aggregateSave("peak"),
      "RecordBatch",
      batch("peak", "p1", T0, [
        { sensor: "a", at: at(1), v: 3 },
        { sensor: "a", at: at(2), v: 7 },
        { sensor: "b", at: at(3), v: 5 },
        { sensor: "a", at: at(11), v: 1 },
        { sensor: "b", at: at(12), v: 1 },
      ]),
      "Ack",
    );
    assert.equal(ack.ok, true);
    const got = await eventually("both sensors' [0, 10) maxima", async () =>
      peaks().length >= 2 ? peaks() : undefined,
    );
    assert.deepEqual(
      got
        .map((b) => ({ sensor: b.records[0].sensor, v: b.records[0].v }))
        .sort((x, y) => String(x.sensor).localeCompare(String(y.sensor))),
      [
        { sensor: "a", v: 7 },
        { sensor: "b", v: 5 },
      ],
      "aggregated as windows, not passed through record by record",
    );

    // A stateful type that keeps nothing may change its partitions, or stop being stateful, live.
    const patch = async (parent: string, ops: unknown[]) => {
      const next = await client.request(
        aggNames.config.patch,
        "ConfigPatchRequest",
        { parent, ops: ops as never, author: "t" },
        "ConfigPatch",
      );
      return next.hash;
    };
    const owned = (prefix: string) => (aggregate.ctx.node.owns ?? []).filter((u) => u.startsWith(prefix)).sort();
    const idle = { ...spec, partitions: 1 };
    let head = await patch(p.hash, [{ op: "add", path: "/aggregate/aggregators/idle", value: idle }]);
    await eventually(
      "idle.0 owned",
      async () => ((await headOf()) === head && owned("idle.").length === 1 ? true : undefined),
      PROPAGATION_MS,
      100,
    );
    head = await patch(head, [{ op: "replace", path: "/aggregate/aggregators/idle/partitions", value: 3 }]);
    await eventually(
      "idle in 3 partitions",
      async () => ((await headOf()) === head && owned("idle.").length === 3 ? true : undefined),
      PROPAGATION_MS,
      100,
    );
    assert.deepEqual(owned("idle."), ["idle.0", "idle.1", "idle.2"]);
    head = await patch(head, [{ op: "remove", path: "/aggregate/aggregators/idle" }]);
    await eventually(
      "idle gone",
      async () => ((await headOf()) === head && owned("idle.").length === 0 ? true : undefined),
      PROPAGATION_MS,
      100,
    );

    // peak keeps open windows ([10, 20) of both sensors): removing it would leave them to no one,
    // so the patch is stored but aggregate stays on its head, and peak still aggregates.
    const removed = await patch(head, [{ op: "remove", path: "/aggregate/aggregators/peak" }]);
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(await headOf(), head, "drift: the removal is refused while peak keeps state");
    assert.notEqual(removed, head);
    assert.deepEqual(owned("peak."), ["peak.0", "peak.1"]);
  });
});
