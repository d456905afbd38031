// Workers a service starts while it runs (a live config head adds one, as fetch does for a new
// source) get what start-up workers get (in-process vertex and a small service, real
// nats-server): their consumer lag on /metrics, and the resource gate, even in a service that
// started with no worker at all. A task asking more RAM than the replica has stays on the stream;
// one that fits runs; a removed worker's lag leaves /metrics.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { headers as makeHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { codec } from "@machina/protos";
import type { ConfigPatch, RecordBatch } from "@machina/protos";
import { MeshClient, RESOURCES_HEADER, defineWorker, startService } from "@machina/runtime";
import type { RunningService, ServiceSpec, WorkerDef } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import type { MeshNames } from "@machina/subjects";
import { vertexService, type VertexConfig } from "@machina/vertex";
import { CONTENT_TYPE_PROTOBUF } from "@machina/wire";
import { eventually } from "../support/eventually";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("liveworkers");
const names = meshNames(prefix);

/** Batch ids each worker ran. */
const ran = new Map<string, string>();

function workerFor(n: MeshNames, type: string): WorkerDef {
  return defineWorker({
    name: `live-${type}`,
    stream: "AGGREGATE",
    durable: `live-${type}`,
    filter: n.task.aggregate(type),
    message: "RecordBatch",
    concurrency: 2,
    async handle(batch) {
      ran.set(batch.id, type);
    },
  });
}

// Starts with no worker; each aggregator a head has gets one, each it lost loses its own.
const spec: ServiceSpec<Record<string, never>> = {
  name: "aggregate",
  version: "9.9.9",
  description: "live workers test service",
  httpPort: 0,
  components: { kinds: ["aggregate/aggregators"], validate: () => undefined },
  async setup(ctx) {
    return {
      async applyConfig(set, workers) {
        const want = new Set(set.docs("aggregate/aggregators").map((d) => `live-${d.name}`));
        for (const name of workers.names()) if (!want.has(name)) await workers.remove(name);
        for (const d of set.docs("aggregate/aggregators"))
          if (!workers.names().includes(`live-${d.name}`)) await workers.add(workerFor(ctx.names, d.name));
      },
    };
  },
};

describe("workers added live", { timeout: 60_000 }, () => {
  let vertex: RunningService<VertexConfig>;
  let svc: RunningService<Record<string, never>>;
  let nc: NatsConnection;
  let client: MeshClient;

  const head = async () =>
    (await client.request(names.config.get, "ConfigGetRequest", { path: "" }, "ConfigDocument")).head;
  const patch = async (ops: { op: string; path: string; value?: unknown }[]): Promise<ConfigPatch> =>
    client.request(
      names.config.patch,
      "ConfigPatchRequest",
      { parent: await head(), ops: ops as never, author: "live workers test" },
      "ConfigPatch",
      { timeoutMs: 10_000 },
    );
  /** Whether /metrics has the lag of durable `consumer`. */
  const lagShown = async (consumer: string) =>
    (await (await fetch(`http://127.0.0.1:${svc.probePort}/metrics`)).text())
      .split("\n")
      .some((l) => l.startsWith("machina_consumer_pending{") && l.includes(`consumer="${consumer}"`));
  const encode = codec("RecordBatch");
  const publish = async (type: string, id: string, resources: string) => {
    const h = makeHeaders();
    h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
    h.set("Nats-Msg-Id", id);
    h.set(RESOURCES_HEADER, resources);
    const batch: Partial<RecordBatch> = { id, type, source: "s", query: "q", taskId: id, records: [] };
    await nc.request(names.task.aggregate(type), encode.encode(batch), { headers: h, timeout: 5000 });
  };

  before(async () => {
    const configDir = writeConfig({});
    const env = {
      MACHINA_NATS_URL: NATS_URL,
      MACHINA_MESH_PREFIX: prefix,
      MACHINA_HTTP_PORT: "0",
      MACHINA_LOG_LEVEL: "silent",
      MACHINA_VERTEX_HEARTBEAT_MS: "300",
      MACHINA_VERTEX_MONITORING_INTERVAL_MS: "0",
      MACHINA_VERTEX_DASHBOARD_PORT: "0",
      MACHINA_RESOURCES_RAM: "1G",
      MACHINA_RESOURCES_CPU: "2",
      MACHINA_RESOURCES_GPU: "0",
      MACHINA_RESOURCES_STORAGE: "10G",
      MACHINA_RESOURCES_NETWORK: "0",
    };
    const opts = (node: string) => ({ handleSignals: false, configDir, env: { ...env, MACHINA_MESH_NODE: node } });
    vertex = await startService(vertexService, opts("vertex-1"));
    svc = await startService(spec, opts("live-1"));
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
  });

  after(async () => {
    await svc?.stop();
    await vertex?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, names);
      await nc.close();
    }
  });

  it("gives a worker added live its lag metric and the resource gate", async () => {
    await patch([{ op: "add", path: "/aggregate", value: { aggregators: { shop: { aggregator: "passthrough" } } } }]);
    await eventually(
      "the live worker's lag on /metrics",
      async () => ((await lagShown("live-shop")) ? true : undefined),
      15_000,
    );
    await publish("shop", "too-big", "ram=2G");
    await publish("shop", "fits", "ram=512M");
    await eventually("the task that fits ran", async () => (ran.has("fits") ? true : undefined), 15_000);
    // Offered and given back, not run: the replica has 1G.
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(ran.has("too-big"), false);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.consumers.info(names.streams.AGGREGATE, "live-shop");
    assert.ok(info.num_pending + info.num_ack_pending >= 1, "the big task is still on the stream");
  });

  it("takes a removed worker's lag off /metrics", async () => {
    await patch([{ op: "remove", path: "/aggregate/aggregators/shop" }]);
    await eventually(
      "no lag of the removed worker",
      async () => (!(await lagShown("live-shop")) ? true : undefined),
      15_000,
    );
  });
});
