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
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { vertexService, type VertexConfig } from "@machina/vertex";
import { chainDriver, liveEnv, refused, type ChainDriver, type PatchOp } from "../support/live-config";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("cmplive");
const names = meshNames(prefix);
const MiB = 1024 ** 2;

const env = liveEnv(prefix, { MACHINA_COMPUTE_CACHE: "fast" });

describe("live config: compute caches, and explain's schema defaults", { timeout: 60_000 }, () => {
  let vertex: RunningService<VertexConfig>;
  let compute: RunningService<ComputeConfig> | undefined;
  let nc: NatsConnection;
  let client: MeshClient;
  let configDir: string;

  const chain = (): ChainDriver => chainDriver(client, names, { author: "compute live test", timeoutMs: 10000 });
  const head = () => chain().head();
  const patch = (ops: PatchOp[]) => chain().patch(ops);
  const stats = () => client.request(names.computeCache("stats"), "Empty", {}, "CacheStats");
  const explain = (key: string) =>
    client.request(names.config.explain, "ConfigExplainRequest", { key }, "ConfigExplainReply");
  const applied = (ops: PatchOp[]) => chain().applied(ops, "compute-1");

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
