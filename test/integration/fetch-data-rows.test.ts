// Source data read from the data layer: the real data and fetch services in-process on one
// prefix, a real Cassandra and a local HTTP server. A `row` data value is read at start, used in
// requests, follows a change of its record at once (announced on data.changed.<type>, not its
// refresh timer), and a record that does not exist fails fetches as retryable, naming the value.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import cassandra from "cassandra-driver";
import { dataService, type DataConfig } from "@machina/data";
import { fetchService, type FetchConfig } from "@machina/fetch";
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { isMachinaError } from "@machina/wire";
import { adminCqlClient, dataServiceEnv } from "../support/cassandra-env";
import { NATS_URL, uniquePrefix, removeNetwork } from "../support/nats-env";
import { eventually, writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("rows");
const keyspace = `${prefix.replace(/[^a-z0-9_]/g, "_")}_ks`;

const settingsType = `key: [id]
fields: { id: text, region: text, limits: json }
merge: { default: latest_non_null }
clean_window: 1h
`;

const geoSource = (url: string) => `name: geo
limiter: unlimited
data:
  region: { row: { type: settings, key: { id: main }, field: region, refresh: 5m } }
  missing: { row: { type: settings, key: { id: nobody }, field: region } }
manager: { type: http, base_url: ${url}, retries: { max: 0 } }
queries:
  stats:
    path: /regions/{{data.region}}/stats
    extract: { stat: { type: stat, path: stat } }
  other:
    path: /regions/{{data.missing}}/stats
    extract: { stat: { type: stat, path: stat } }
`;

describe("source data read from clean records", () => {
  let api: Server;
  let url: string;
  const paths: string[] = [];
  let data: RunningService<DataConfig>;
  let fetch: RunningService<FetchConfig>;
  let nc: NatsConnection;
  let client: MeshClient;
  let admin: cassandra.Client;

  before(async () => {
    api = createServer((req, res) => {
      paths.push(req.url ?? "");
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ stat: { id: "s1", value: 1 } }));
    });
    await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
    const { client: c, localDataCenter } = await adminCqlClient();
    admin = c;
    const configDir = writeConfig({
      "data/types/settings.yaml": settingsType,
      "fetch/sources/geo.yaml": geoSource(url),
    });
    const env = dataServiceEnv(NATS_URL, prefix, keyspace, localDataCenter);
    data = await startService(dataService, { handleSignals: false, configDir, env });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
    await client.request(
      data.ctx.names.data("create", "clean", "settings"),
      "CreateRequest",
      { records: [{ id: "main", region: "eu", limits: { rps: 5 } }] },
      "WriteReply",
    );
    fetch = await startService(fetchService, { handleSignals: false, configDir, env });
  });

  after(async () => {
    await fetch?.stop();
    await data?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, data.ctx.names);
      await nc.close();
    }
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin?.shutdown();
    await new Promise<void>((r) => api?.close(() => r()));
  });

  const fetchStats = (query = "stats") =>
    client.request(fetch.ctx.names.fetch.fetch, "QueryRequest", { source: "geo", query }, "QueryResponse");

  it("uses the record's field in requests, read at start", async () => {
    await fetchStats();
    assert.equal(paths.at(-1), "/regions/eu/stats");
  });

  it("follows an update of the record as soon as data announces it, long before its refresh", async () => {
    const t0 = Date.now();
    await client.request(
      data.ctx.names.data("update", "clean", "settings"),
      "UpdateRequest",
      { key: { id: "main" }, alterations: { region: "us" } },
      "RecordReply",
    );
    await eventually(
      "fetch using the updated region",
      async () => {
        await fetchStats();
        return paths.at(-1) === "/regions/us/stats" ? true : undefined;
      },
      20_000,
      100,
    );
    // The refresh timer is 5 m: only the announcement can have brought the change this soon.
    assert.ok(Date.now() - t0 < 20_000);
  });

  it("fails fetches that need a record the data layer does not have as retryable, naming the value", async () => {
    const before = paths.length;
    await assert.rejects(fetchStats("other"), (err: unknown) => {
      assert.ok(isMachinaError(err, "UNAVAILABLE"), String(err));
      assert.equal((err as { retryable: boolean }).retryable, true);
      assert.match(
        (err as Error).message,
        /data\.missing \(field region of the clean settings record \{"id":"nobody"\}\) is not loaded yet/,
      );
      return true;
    });
    assert.equal(paths.length, before, "no request was sent without the value");
  });
});
