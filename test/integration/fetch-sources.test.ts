// fetch.sources against the real nats-server: the fetch service in-process on the example
// network's own source files (config/default, base URLs moved to an in-process fake API) lists
// every source it serves with its queries, sorted by name; and the directory source it lists
// fetches a city's businesses, whose websites sitestats then answers for.
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { fetchService, type FetchConfig } from "@machina/fetch";
import { MeshClient, startService, type RunningService } from "@machina/runtime";
import { expectedBusinesses, expectedSite, startFakeApi, type FakeApi } from "../fixtures/fake-api";
import { NATS_URL, uniquePrefix, removeNetwork } from "../support/nats-env";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const prefix = uniquePrefix("sources");

describe("fetch service: fetch.sources", () => {
  let api: FakeApi;
  let svc: RunningService<FetchConfig>;
  let nc: NatsConnection;
  let client: MeshClient;

  before(async () => {
    api = await startFakeApi({ keys: { "demo-key": { limit: 100, windowMs: 1000 } } });
    svc = await startService(fetchService, {
      handleSignals: false,
      configDir: path.join(ROOT, "config"),
      env: {
        MACHINA_NATS_URL: NATS_URL,
        MACHINA_MESH_PREFIX: prefix,
        MACHINA_HTTP_PORT: "0",
        MACHINA_LOG_LEVEL: "silent",
        MACHINA_FETCH_SOURCES_DIRECTORY_MANAGER_BASE_URL: api.url,
        MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL: api.url,
        MACHINA_FETCH_SOURCES_TRAFFIC_MANAGER_BASE_URL: api.url,
        MACHINA_FETCH_SOURCES_RANKINGS_MANAGER_BASE_URL: api.url,
        SITESTATS_API_KEY: "demo-key",
        TRAFFIC_API_KEY: "demo-key",
        RANKINGS_SIGNING_SECRET: "demo-signing-secret",
      },
    });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    client = new MeshClient(nc);
  });

  after(async () => {
    await svc?.stop();
    client?.close();
    if (nc !== undefined) {
      await removeNetwork(nc, svc.ctx.names);
      await nc.close();
    }
    await api?.close();
  });

  it("lists every source with its query names, sorted by name", async () => {
    const reply = await client.request(svc.ctx.names.fetch.sources, "Empty", {}, "SourcesReply");
    assert.deepEqual(reply, {
      sources: [
        { name: "directory", queries: ["businesses"] },
        { name: "rankings", queries: ["top"] },
        { name: "sitestats", queries: ["site", "sites", "changes"] },
        { name: "traffic", queries: ["traffic"] },
      ],
    });
  });

  it("fetches a city's businesses from the directory it lists, and sitestats knows their websites", async () => {
    const res = await client.request(
      svc.ctx.names.fetch.fetch,
      "QueryRequest",
      { source: "directory", query: "businesses", lead: { id: "springfield", args: { city: "springfield" } } },
      "QueryResponse",
    );
    const businesses = expectedBusinesses("springfield");
    assert.deepEqual(res.data?.types.business?.records, businesses);
    const domain = businesses[0].domain;
    const site = await client.request(
      svc.ctx.names.fetch.fetch,
      "QueryRequest",
      { source: "sitestats", query: "site", lead: { id: domain, args: { domain } } },
      "QueryResponse",
    );
    assert.deepEqual(site.data?.types.website?.records, [expectedSite(domain)]);
  });
});
