// Vertex's node registry against a real NATS server: instances started with startService connect
// and beat at the interval vertex tells them (shortened here to 400 ms), vertex.nodes lists them
// with version, config head, load and uptime from the watch-fed map, a second registry on the
// same bucket sees them from its own watch, and an instance whose heartbeats stop leaves within
// three intervals while a beating one stays.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NodeInfo } from "@machina/protos";
import { MeshClient, startService, type RunningService, type ServiceSpec } from "@machina/runtime";
import { NodeRegistry, vertexService, type VertexConfig } from "@machina/vertex";
import { eventually } from "../support/eventually";
import { NATS_URL, emptyConfigDir, removeNetwork, uniquePrefix } from "../support/nats-env";

const prefix = uniquePrefix("vreg");
const HEARTBEAT_MS = 400;

// A service with no work of its own: what matters is the vertex link startService gives it.
const idle = (version: string): ServiceSpec<Record<string, never>> => ({
  name: "invoke",
  version,
  description: "idle test instance",
  httpPort: 0,
  async setup() {
    return {};
  },
});

describe("vertex: node registry", () => {
  let vertex: RunningService<VertexConfig>;
  const instances: RunningService<Record<string, never>>[] = [];
  let nc: NatsConnection;
  let client: MeshClient;
  const configDir = emptyConfigDir();
  const env = (node: string) => ({
    MACHINA_NATS_URL: NATS_URL,
    MACHINA_MESH_PREFIX: prefix,
    MACHINA_MESH_NODE: node,
    MACHINA_HTTP_PORT: "0",
    MACHINA_LOG_LEVEL: "silent",
    MACHINA_VERTEX_HEARTBEAT_MS: String(HEARTBEAT_MS),
    MACHINA_VERTEX_MONITORING_INTERVAL_MS: "0",
  });

  before(async () => {
    vertex = await startService(vertexService, { handleSignals: false, configDir, env: env("vertex-1") });
    for (const node of ["inst-a", "inst-b"])
      instances.push(await startService(idle("7.1.0"), { handleSignals: false, configDir, env: env(node) }));
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
  });

  after(async () => {
    for (const i of instances) await i.stop().catch(() => undefined);
    await vertex?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, vertex.ctx.names);
      await nc.close();
    }
  });

  const list = async () =>
    (await client.request(vertex.ctx.names.vertex.nodes, "Empty", {}, "NodeList", { timeoutMs: 5000 })).nodes;
  const ids = (nodes: NodeInfo[]) => nodes.filter((n) => n.service === "invoke").map((n) => n.id);

  it("lists every live instance with service, version, config head, load and uptime", async () => {
    const nodes = await eventually("both instances with a heartbeat's load and uptime", async () => {
      const n = await list();
      const mine = n.filter((x) => x.service === "invoke" && x.uptimeMs > 0 && x.rssBytes > 0);
      return mine.length === 2 ? n : undefined;
    });
    assert.deepEqual(ids(nodes), ["inst-a", "inst-b"]);
    const a = nodes.find((n) => n.id === "inst-a") as NodeInfo;
    assert.equal(a.version, "7.1.0");
    assert.equal(a.role, "processor");
    assert.equal(typeof a.configHead, "string");
    assert.ok(a.load1 >= 0);
    assert.ok(a.cpuPercent >= 0);
    assert.ok(a.cpuCores > 0);
    // Vertex registers itself too.
    assert.ok(nodes.some((n) => n.service === "vertex" && n.id === "vertex-1"));
    // Heartbeats refresh uptime: it grows between two lists.
    await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 2));
    const later = (await list()).find((n) => n.id === "inst-a") as NodeInfo;
    assert.ok(later.uptimeMs > a.uptimeMs, `${later.uptimeMs} > ${a.uptimeMs}`);
  });

  it("instances beat at the interval vertex gives them (so they stay past the default TTL math)", async () => {
    // Three intervals pass: an instance beating at the default 5 s would have expired by now.
    await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 4));
    assert.deepEqual(ids(await list()), ["inst-a", "inst-b"]);
  });

  it("a second registry on the bucket sees the same nodes from its own watch", async () => {
    const other = await NodeRegistry.open(new Kvm(nc), await jetstreamManager(nc), vertex.ctx.names.buckets.nodes, {
      ttlMs: HEARTBEAT_MS * 3,
    });
    try {
      assert.deepEqual(ids(other.list()), ["inst-a", "inst-b"]);
    } finally {
      other.stop();
    }
  });

  it("an instance whose heartbeats stop leaves within three intervals; the other stays", async () => {
    const stoppedAt = Date.now();
    await instances[0].stop();
    const gone = await eventually(
      "inst-a leaving vertex.nodes",
      async () => (ids(await list()).includes("inst-a") ? undefined : Date.now()),
      10_000,
      50,
    );
    // Its last beat was at most one tick before stop; expiry is 3 intervals after it.
    assert.ok(gone - stoppedAt <= 3 * HEARTBEAT_MS + 300, `left after ${gone - stoppedAt} ms`);
    await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 4));
    assert.deepEqual(ids(await list()), ["inst-b"]);
  });

  it("a connect on an unknown role is refused", async () => {
    await assert.rejects(
      client.request(`${prefix}.vertex.connect.boss`, "NodeInfo", { id: "x", service: "invoke" }, "ConnectReply"),
      /unknown role "boss"/,
    );
  });
});
