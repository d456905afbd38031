// Compute's result cache against the real services: one data service (real Cassandra) and two
// compute replicas on one prefix, in one process. A repeated request answers from the cache
// (cached: true) on each replica; a clean write through data reaches both replicas as a change
// event and neither serves the old value afterwards; compute.cache.drop empties every replica;
// a type scan (distinct) is dropped by a change of any entity of its type.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import cassandra from "cassandra-driver";
import { computeService, type ComputeConfig } from "@machina/compute";
import { dataService, type DataConfig } from "@machina/data";
import type { ComputeReply, JsonObject } from "@machina/protos";
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { adminCqlClient, dataServiceEnv } from "../support/cassandra-env";
import { eventually } from "../support/eventually";
import { NATS_URL, uniquePrefix, removeNetwork } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("ccache");
const keyspace = `${prefix.replace(/[^a-z0-9_]/g, "_")}_ks`;

const siteType = `key: [domain]
fields: { domain: text, visits: int, category: text }
merge: { default: latest_non_null }
clean_window: 1h
`;

/** One sample of a replica's metrics from its /metrics page: the series of `name` carrying every
 * label in `labels` (comma-separated `k="v"`; the registry adds its own, e.g. `service`). */
async function counter(svc: RunningService<ComputeConfig>, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${svc.probePort}/metrics`)).text();
  const wanted = labels === "" ? [] : labels.split(",");
  const line = text.split("\n").find((l) => {
    if (!l.startsWith(`${name}{`) && !l.startsWith(`${name} `)) return false;
    const inside = l.slice(name.length).match(/^\{(.*)\} /)?.[1] ?? "";
    const have = inside === "" ? [] : inside.split(",");
    return wanted.every((w) => have.includes(w));
  });
  return line === undefined ? 0 : Number(line.split(" ").pop());
}

describe("compute: cache across replicas", () => {
  let data: RunningService<DataConfig>;
  const replicas: RunningService<ComputeConfig>[] = [];
  let nc: NatsConnection;
  let client: MeshClient;
  let admin: cassandra.Client;

  before(async () => {
    const { client: c, localDataCenter } = await adminCqlClient();
    admin = c;
    const configDir = writeConfig({
      "data/types/site.yaml": siteType,
      "compute/caches/results.yaml": "kind: memory\nmax_size: 64M\n",
    });
    const env = dataServiceEnv(NATS_URL, prefix, keyspace, localDataCenter);
    data = await startService(dataService, { handleSignals: false, configDir, env });
    for (let i = 0; i < 2; i++)
      replicas.push(await startService(computeService, { handleSignals: false, configDir, env }));
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
    await write({ domain: "a.example", visits: 100, category: "news" });
    await write({ domain: "b.example", visits: 200, category: "shop" });
  });

  after(async () => {
    for (const r of replicas) await r.stop();
    await data?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, data.ctx.names);
      await nc.close();
    }
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin?.shutdown();
  });

  function write(record: JsonObject): Promise<unknown> {
    return client.request(
      data.ctx.names.data("create", "clean", "site"),
      "CreateRequest",
      { records: [record] },
      "WriteReply",
    );
  }

  const get = (name: string, args: JsonObject): Promise<ComputeReply> =>
    client.request(replicas[0].ctx.names.computeGet(name), "ComputeRequest", { args }, "ComputeReply", {
      timeoutMs: 30_000,
    });

  const latestOf = (domain: string) => get("latest", { type: "site", key: { domain } });

  // Requests go to either replica (one queue group): asks until each replica has answered from
  // its cache at least once, so both hold the entry.
  async function warmBoth(ask: () => Promise<ComputeReply>, counterLabels: string): Promise<ComputeReply[]> {
    const replies: ComputeReply[] = [];
    await eventually(
      "both replicas answering from their cache",
      async () => {
        for (let i = 0; i < 10; i++) replies.push(await ask());
        const hits = await Promise.all(
          replicas.map((r) => counter(r, "machina_compute_requests_total", counterLabels)),
        );
        return hits.every((h) => h > 0) ? true : undefined;
      },
      20_000,
      0,
    );
    return replies;
  }

  it("answers a repeated request from the cache on every replica, saying so", async () => {
    const first = await latestOf("a.example");
    assert.equal(first.cached, false);
    assert.equal(first.rows[0].visits, 100);
    const replies = await warmBoth(() => latestOf("a.example"), 'name="latest",from="cache"');
    assert.ok(replies.some((r) => r.cached));
    for (const r of replies) assert.equal(r.rows[0].visits, 100);
    const stats = await client.request(replicas[0].ctx.names.computeCache("stats"), "Empty", {}, "CacheStats");
    assert.equal(stats.kind, "memory");
    assert.equal(Number(stats.maxBytes), 64 * 1024 * 1024);
    assert.ok(Number(stats.entries) >= 1 && Number(stats.bytes) > 0 && Number(stats.hits) >= 1);
  });

  it("serves the new value on both replicas once a clean write's change event arrives", async () => {
    await warmBoth(() => latestOf("a.example"), 'name="latest",from="cache"');
    const dropsBefore = await Promise.all(
      replicas.map((r) => counter(r, "machina_compute_cache_invalidated_total", 'cause="data"')),
    );
    const written = Date.now();
    await write({ domain: "a.example", visits: 101, category: "news" });
    // The event is core NATS on the same server: it reaches the replicas within milliseconds.
    const seen = await eventually(
      "the new value from compute",
      async () => ((await latestOf("a.example")).rows[0].visits === 101 ? Date.now() : undefined),
      5_000,
      1,
    );
    // From then on no replica answers the old value, cached or not.
    for (let i = 0; i < 40; i++) assert.equal((await latestOf("a.example")).rows[0].visits, 101);
    const dropsAfter = await Promise.all(
      replicas.map((r) => counter(r, "machina_compute_cache_invalidated_total", 'cause="data"')),
    );
    for (let i = 0; i < replicas.length; i++)
      assert.ok(dropsAfter[i] > dropsBefore[i], `replica ${i} dropped its entry on the change event`);
    assert.ok(seen - written < 5_000);
    // The other entity's entry was not touched by the change.
    const b = await latestOf("b.example");
    assert.equal(b.rows[0].visits, 200);
  });

  it("drops a type scan when any entity of its type changes", async () => {
    const distinct = () => get("distinct", { type: "site", field: "category" });
    await warmBoth(distinct, 'name="distinct",from="cache"');
    assert.deepEqual((await distinct()).rows, [{ category: "news" }, { category: "shop" }]);
    await write({ domain: "c.example", visits: 5, category: "arts" });
    await eventually(
      "the scan to see the new entity",
      async () => ((await distinct()).rows.length === 3 ? true : undefined),
      5_000,
      1,
    );
    for (let i = 0; i < 20; i++) assert.equal((await distinct()).rows.length, 3);
  });

  it("empties every replica on compute.cache.drop", async () => {
    await warmBoth(() => latestOf("b.example"), 'name="latest",from="cache"');
    const runs = () =>
      Promise.all(replicas.map((r) => counter(r, "machina_compute_requests_total", 'name="latest",from="run"')));
    const runsBefore = await runs();
    const dropped = await client.request(
      replicas[0].ctx.names.computeCache("drop"),
      "CacheInvalidate",
      { type: "" },
      "CacheStats",
    );
    assert.equal(Number(dropped.entries), 0);
    await eventually(
      "both replicas empty",
      async () => {
        const counts = await Promise.all(replicas.map((r) => counter(r, "machina_compute_cache_entries", "")));
        return counts.every((c) => c === 0) ? true : undefined;
      },
      2_000,
      20,
    );
    // The next answer is a fresh run, and each replica runs it again rather than serving a copy.
    assert.equal((await latestOf("b.example")).cached, false);
    await eventually(
      "a fresh run on each replica",
      async () => {
        await latestOf("b.example");
        const now = await runs();
        return now.every((n, i) => n > runsBefore[i]) ? true : undefined;
      },
      10_000,
      0,
    );
  });
});
