// Compute takes its cache config live (in-process vertex and compute, real nats-server): a patch
// to the chosen cache's size, then its kind and ttl, shows in compute.cache.stats within seconds;
// a bad size is refused with compute's own message; removing the cache compute.cache names is
// refused by the replica that runs it. config.explain through vertex answers the schema default
// for a key no file or patch sets (vertex asks compute, which declares the schema), and says
// so when compute is not there to ask.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { computeService, type ComputeConfig } from "@machina/compute";
import type { ConfigPatch, NodeInfo } from "@machina/protos";
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { vertexService, type VertexConfig } from "@machina/vertex";
import { MachinaError } from "@machina/wire";
import { eventually } from "../support/eventually";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("cmplive");
const names = meshNames(prefix);
const PROPAGATION_MS = 10_000;
const MiB = 1024 ** 2;

const env = {
  MACHINA_NATS_URL: NATS_URL,
  MACHINA_MESH_PREFIX: prefix,
  MACHINA_HTTP_PORT: "0",
  MACHINA_LOG_LEVEL: "silent",
  MACHINA_VERTEX_HEARTBEAT_MS: "300",
  MACHINA_VERTEX_MONITORING_INTERVAL_MS: "0",
  MACHINA_VERTEX_DASHBOARD_PORT: "0",
  MACHINA_COMPUTE_CACHE: "fast",
};

async function refused(p: Promise<unknown>): Promise<MachinaError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MachinaError, String(err));
    return err;
  }
  assert.fail("expected an error reply");
}

describe("live config: compute caches, and explain's schema defaults", { timeout: 60_000 }, () => {
  let vertex: RunningService<VertexConfig>;
  let compute: RunningService<ComputeConfig> | undefined;
  let nc: NatsConnection;
  let client: MeshClient;
  let configDir: string;

  const head = async () =>
    (await client.request(names.config.get, "ConfigGetRequest", { path: "" }, "ConfigDocument")).head;
  const patch = async (ops: { op: string; path: string; value?: unknown }[]): Promise<ConfigPatch> =>
    client.request(
      names.config.patch,
      "ConfigPatchRequest",
      { parent: await head(), ops: ops as never, author: "compute live test" },
      "ConfigPatch",
      { timeoutMs: 10_000 },
    );
  const computeHead = async () =>
    (await client.request(names.vertex.nodes, "Empty", {}, "NodeList")).nodes.find(
      (n: NodeInfo) => n.id === "compute-1",
    )?.configHead;
  const stats = () => client.request(names.computeCache("stats"), "Empty", {}, "CacheStats");
  const explain = (key: string) =>
    client.request(names.config.explain, "ConfigExplainRequest", { key }, "ConfigExplainReply");
  const applied = async (ops: { op: string; path: string; value?: unknown }[]) => {
    const p = await patch(ops);
    await eventually(
      "compute at the new head",
      async () => ((await computeHead()) === p.hash ? true : undefined),
      PROPAGATION_MS,
      50,
    );
  };

  before(async () => {
    configDir = writeConfig({ "compute/caches/fast.yaml": "max_size: 64M\n" });
    const opts = (node: string) => ({ handleSignals: false, configDir, env: { ...env, MACHINA_MESH_NODE: node } });
    vertex = await startService(vertexService, opts("vertex-1"));
    compute = await startService(computeService, opts("compute-1"));
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
  });

  after(async () => {
    await compute?.stop();
    await vertex?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, names);
      await nc.close();
    }
  });

  it("shows a patched cache size, then kind and ttl, in compute.cache.stats", async () => {
    assert.deepEqual([(await stats()).kind, (await stats()).maxBytes], ["memory", 64 * MiB]);
    await applied([{ op: "add", path: "/compute/caches/fast/max_size", value: "1M" }]);
    assert.deepEqual([(await stats()).kind, (await stats()).maxBytes], ["memory", MiB]);
    await applied([
      { op: "add", path: "/compute/caches/fast/kind", value: "ttl" },
      { op: "add", path: "/compute/caches/fast/ttl", value: "5m" },
    ]);
    assert.deepEqual([(await stats()).kind, (await stats()).maxBytes], ["ttl", MiB]);
  });

  it("refuses a bad size with compute's message, and the removal of the cache compute.cache names", async () => {
    const before = await head();
    const bad = await refused(patch([{ op: "replace", path: "/compute/caches/fast/max_size", value: "lots" }]));
    assert.equal(bad.code, "BAD_REQUEST");
    assert.match(bad.message, /^compute\/caches\/fast: max_size: /);
    const gone = await refused(patch([{ op: "remove", path: "/compute/caches/fast" }]));
    assert.match(gone.message, /^compute\.cache: no compute\/caches\/fast\.yaml/);
    assert.equal(await head(), before);
    assert.equal((await stats()).kind, "ttl");
  });

  it("explains a key only the schema sets as the schema default, asking its owner", async () => {
    await applied([{ op: "remove", path: "/compute/caches/fast/kind" }]);
    const kind = await explain("compute.caches.fast.kind");
    assert.deepEqual([kind.layer, kind.origin, kind.value], ["schema default", "schema default", "memory"]);
    const size = await explain("compute.caches.fast.max_size");
    assert.equal(size.layer, "patch");
    assert.equal((await refused(explain("compute.caches.fast.nothing_here"))).code, "NOT_FOUND");
    await compute?.stop();
    compute = undefined;
    const away = await refused(explain("compute.caches.fast.kind"));
    assert.deepEqual([away.code, away.retryable], ["UNAVAILABLE", true]);
    assert.match(away.message, /^compute: no compute replica answered/);
  });
});
