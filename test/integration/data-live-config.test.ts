// Data takes its types live (in-process vertex and data, real nats-server and Cassandra): a type
// added by patch gets its tables and accepts writes, a field added to a type gets its column and
// is stored from then on (a new schema version), a changed key is refused before it is stored
// with data's own message naming the type, a removed type stops being served and, added back
// with another key, is refused against its recorded history, and added back as it was serves its
// old rows again. A restart comes up at the head.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import cassandra from "cassandra-driver";
import { dataService, type DataConfig } from "@machina/data";
import type { JsonObject } from "@machina/protos";
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { vertexService, type VertexConfig } from "@machina/vertex";
import { adminCqlClient, dataServiceEnv } from "../support/cassandra-env";
import { chainDriver, refused, type ChainDriver, type PatchOp } from "../support/live-config";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("datalive");
const names = meshNames(prefix);
const keyspace = `${prefix.replace(/[^a-z0-9_]/g, "_")}_ks`;

describe("live config: data types", { timeout: 120_000 }, () => {
  let vertex: RunningService<VertexConfig>;
  let data: RunningService<DataConfig>;
  let nc: NatsConnection;
  let client: MeshClient;
  let admin: cassandra.Client;
  let start: () => Promise<RunningService<DataConfig>>;

  const chain = (): ChainDriver => chainDriver(client, names, { author: "data live test", timeoutMs: 15000 });
  const head = () => chain().head();
  const patch = (ops: PatchOp[]) => chain().patch(ops);
  const applied = (ops: PatchOp[]) => chain().applied(ops, "data-1");
  const create = (type: string, record: JsonObject) =>
    client.request(names.data("create", "clean", type), "CreateRequest", { records: [record] }, "WriteReply", {
      timeoutMs: 15_000,
    });
  const readOne = async (type: string, key: JsonObject) =>
    (await client.request(names.data("readone", "clean", type), "KeyRequest", { key }, "RecordReply")).record;
  /** A shop's declared fields, as stored. */
  const shopOf = async (id: string) => {
    const r = await readOne("shop", { id });
    return { id: r.id, price: r.price };
  };

  before(async () => {
    const { client: c, localDataCenter } = await adminCqlClient();
    admin = c;
    const configDir = writeConfig({
      "data/types/site.yaml": "key: [domain]\nfields: { domain: text, visits: int }\nclean_window: 1h\n",
    });
    const env = {
      ...dataServiceEnv(NATS_URL, prefix, keyspace, localDataCenter),
      MACHINA_VERTEX_HEARTBEAT_MS: "300",
      MACHINA_VERTEX_MONITORING_INTERVAL_MS: "0",
      MACHINA_VERTEX_DASHBOARD_PORT: "0",
    };
    const opts = (node: string) => ({ handleSignals: false, configDir, env: { ...env, MACHINA_MESH_NODE: node } });
    vertex = await startService(vertexService, opts("vertex-1"));
    start = () => startService(dataService, opts("data-1"));
    data = await start();
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
  });

  after(async () => {
    await data?.stop();
    await vertex?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, names);
      await nc.close();
    }
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin?.shutdown();
  });

  it("serves a type added by patch: its tables are made and it accepts writes", async () => {
    assert.equal((await refused(create("shop", { id: "s1", price: 9.5 }))).code, "NOT_FOUND");
    await applied([
      {
        op: "add",
        path: "/data/types/shop",
        value: { key: ["id"], fields: { id: "text", price: "double" }, clean_window: "1h" },
      },
    ]);
    assert.equal((await create("shop", { id: "s1", price: 9.5 })).affected, 1);
    assert.deepEqual(await shopOf("s1"), { id: "s1", price: 9.5 });
    const tables = await admin.execute(
      "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
      [keyspace, "clean_shop"],
      { prepare: true },
    );
    assert.equal(tables.rowLength, 1);
  });

  it("stores a field added to a type by patch, as a new schema version", async () => {
    await create("site", { domain: "a.example", visits: 1, category: "news" });
    assert.equal((await readOne("site", { domain: "a.example" })).category, undefined, "undeclared: not stored");
    await applied([{ op: "add", path: "/data/types/site/fields/category", value: "text" }]);
    await create("site", { domain: "a.example", visits: 2, category: "news" });
    const row = await readOne("site", { domain: "a.example" });
    assert.deepEqual([row.visits, row.category], [2, "news"]);
    const schema = await client.request(names.dataSchema("site"), "Empty", {}, "SchemaReply");
    assert.equal(schema.version, 2);
    assert.deepEqual(Object.keys((schema.history[0].definition as { fields: JsonObject }).fields).sort(), [
      "category",
      "domain",
      "visits",
    ]);
  });

  it("refuses a changed key before it is stored, with data's own message", async () => {
    const before = await head();
    const err = await refused(patch([{ op: "replace", path: "/data/types/site/key", value: ["domain", "visits"] }]));
    assert.equal(err.code, "BAD_REQUEST");
    assert.match(err.message, /^data\/types\/site: key changed from \[domain\] to \[domain, visits\]/);
    assert.match(err.message, /declare a new type/);
    assert.equal(await head(), before);
    // The tables are as they were: writes still go in under the old key.
    assert.equal((await create("site", { domain: "b.example", visits: 3 })).affected, 1);
  });

  it("stops serving a removed type, refuses it back with another key, and serves its rows when it comes back as it was", async () => {
    const shop = (
      await client.request(names.config.get, "ConfigGetRequest", { path: "/data/types/shop" }, "ConfigDocument")
    ).value as JsonObject;
    await applied([{ op: "remove", path: "/data/types/shop" }]);
    assert.equal((await refused(readOne("shop", { id: "s1" }))).code, "NOT_FOUND");
    const err = await refused(patch([{ op: "add", path: "/data/types/shop", value: { ...shop, key: ["price"] } }]));
    assert.match(err.message, /^data\/types\/shop: key changed from \[id\] to \[price\]/);
    await applied([{ op: "add", path: "/data/types/shop", value: shop }]);
    assert.deepEqual(await shopOf("s1"), { id: "s1", price: 9.5 });
  });

  it("comes up at the head after a restart", async () => {
    const at = await head();
    await data.stop();
    data = await start();
    assert.equal(data.ctx.node.configHead, at);
    assert.deepEqual((await readOne("site", { domain: "a.example" })).category, "news");
    assert.deepEqual(await shopOf("s1"), { id: "s1", price: 9.5 });
  });
});
