// Incremental fetching through the whole pipeline, every hop a real process on the real
// nats-server and Cassandra: a cursor moves only once the data service has stored the records of
// its task (a forward_fill type, so each page is split across two partitions); with data killed
// (-9) the cursor stays put and the next tasks fetch the same window again; and a fetch process
// killed (-9) mid-pagination resumes at the page it stopped on with the value its first page
// used. No change is ever skipped: every touched record ends up in the dump.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import cassandra from "cassandra-driver";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { CursorStore } from "@machina/fetch";
import type { RecordBatch } from "@machina/protos";
import { MeshClient } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { decodeBody, encodingOf } from "@machina/wire";
import { SITE_DOMAINS, expectedSite, startFakeApi, type FakeApi } from "../fixtures/fake-api";
import { publishFetchTask } from "../support/fetch-tasks";
import { CQL_CONTACT_POINTS } from "../support/cassandra-env";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { eventually, startServiceProc, writeConfig, type ServiceProc } from "../support/service-procs";

const prefix = uniquePrefix("incrash");
const names = meshNames(prefix);
const keyspace = `${prefix}_ks`;
const INITIAL = "2024-01-01T00:00:00Z";

const source = (baseUrl: string) => `name: feed
limiter: unlimited
data:
  api_key: { env: FEED_KEY }
manager:
  type: http-auth
  base_url: ${baseUrl}
  auth: { type: api_key, header: X-Api-Key, value: "{{data.api_key}}" }
  retries: { max: 2, base_delay: 100ms }
queries:
  changes:
    path: /v1/changes
    params: { since: "{{incremental.value}}", per_page: "10" }
    paginate: { type: page, param: page, next: next_page, max_pages: 50 }
    incremental: { field: updated_at, initial: "${INITIAL}" }
    extract:
      items: { type: website, path: items }
`;

describe("incremental fetching across crashes", { timeout: 300_000 }, () => {
  let api: FakeApi;
  let nc: NatsConnection;
  let client: MeshClient;
  let cql: cassandra.Client;
  let cursors: CursorStore;
  let configDir: string;
  const procs = new Map<string, ServiceProc>();
  const env = {
    FEED_KEY: "feed-key",
    MACHINA_DATA_CASSANDRA_KEYSPACE: keyspace,
    MACHINA_DATA_CLEAN_INTERVAL_MS: "0",
    MACHINA_INVOKE_SCHEDULER: "false",
  };
  const start = async (service: string) =>
    procs.set(service, await startServiceProc(service, { configDir, prefix, env }));
  const cursor = async () => (await cursors.read("feed", "changes", "all"))?.value ?? null;

  // Dump rows of the feed query, per domain.
  async function dumpRows(): Promise<Map<string, number>> {
    const rows = new Map<string, number>();
    let page: string | undefined;
    do {
      const rs = await cql.execute(`SELECT domain, query FROM ${keyspace}.dump_website`, [], {
        fetchSize: 5000,
        pageState: page,
        prepare: true,
      });
      for (const r of rs.rows) if (r.query === "changes") rows.set(r.domain, (rows.get(r.domain) ?? 0) + 1);
      page = rs.pageState ?? undefined;
    } while (page);
    return rows;
  }

  // The record-less batch fetch sends after a task's last page, once it is on STORE.
  async function closed(taskId: string): Promise<boolean> {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(names.streams.STORE);
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(names.streams.STORE, { seq }).catch(() => null);
      if (m === null) continue;
      const batches: RecordBatch[] = decodeBody("RecordBatches", m.data, encodingOf(m.header)).batches;
      if (batches.some((b) => b.taskId === taskId && b.records.length === 0 && b.cursor)) return true;
    }
    return false;
  }

  const fire = (tag: string) =>
    publishFetchTask(nc, names, {
      id: `test@${tag}/feed/changes/all`,
      source: "feed",
      query: "changes",
      lead: { id: "all", args: {} },
    });

  before(async () => {
    api = await startFakeApi({ keys: { "feed-key": { limit: 10_000, windowMs: 1000 } } });
    configDir = writeConfig({
      "fetch/sources/feed.yaml": source(api.url),
      "aggregate/aggregators/website.yaml": "aggregator: forward_fill\nmax_age: 1d\npartitions: 2\n",
    });
    nc = await connect({ servers: NATS_URL, maxReconnectAttempts: -1, noAsyncTraces: true });
    client = new MeshClient(nc);
    cql = new cassandra.Client({ contactPoints: CQL_CONTACT_POINTS, localDataCenter: "datacenter1" });
    await cql.connect();
    // Data starts later: first the cursor must be seen not to move while nothing stores.
    for (const s of ["aggregate", "invoke", "fetch"]) await start(s);
    cursors = await CursorStore.open(nc, { bucket: names.buckets.fetchCursors });
  });

  after(async () => {
    if (process.env.MACHINA_TEST_VERBOSE)
      for (const p of procs.values()) process.stderr.write(`--- ${p.service}\n${p.output().slice(-4000)}\n`);
    await Promise.allSettled([...procs.values()].map((p) => p.stop()));
    await api?.close();
    await cql?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await cql?.shutdown();
    client?.close();
    if (nc !== undefined) await removeNetwork(nc, names);
    await nc?.close();
  });

  it("the first task asks from the initial value; its cursor moves only once data has stored every record", async () => {
    const t1 = await fire("1");
    await eventually("task 1 closed on STORE", async () => ((await closed(t1)) ? true : undefined), 60_000, 500);
    assert.deepEqual([...new Set(api.changeRequests.map((r) => r.since))], [INITIAL]);
    assert.equal(api.changeRequests.length, 5, "50 sites, 10 a page");
    assert.equal(await cursor(), null, "nothing is stored yet, so the cursor has not moved");
    await start("data");
    const newest = SITE_DOMAINS.map((d) => expectedSite(d).updated_at)
      .sort()
      .at(-1);
    await eventually("the cursor at the newest stored change", async () =>
      (await cursor()) === newest ? true : undefined,
    );
    const rows = await dumpRows();
    assert.equal(rows.size, SITE_DOMAINS.length);
    assert.ok([...rows.values()].every((n) => n === 1));
    const seen = await client.request(
      names.fetch.cursors,
      "CursorsRequest",
      { source: "feed", query: "changes", lead: "all" },
      "CursorsReply",
    );
    assert.deepEqual([seen.cursors[0].value, seen.cursors[0].stored, seen.cursors[0].answer], [newest, true, t1]);
  });

  it("with data killed (-9) the cursor stays, the next tasks ask for the same window, and once data is back nothing is skipped", async () => {
    const before = await cursor();
    await procs.get("data")!.kill();
    const now = Date.now();
    const early = api.touch(["example.com", "site-07.test", "site-19.test"], new Date(now).toISOString());
    api.changeRequests.length = 0;
    const t2 = await fire("2");
    await eventually("task 2 closed on STORE", async () => ((await closed(t2)) ? true : undefined), 60_000, 500);
    assert.equal(await cursor(), before, "task 2's records are not stored: the cursor has not moved");
    const late = api.touch(["site-30.test"], new Date(now + 1000).toISOString());
    const t3 = await fire("3");
    await eventually("task 3 closed on STORE", async () => ((await closed(t3)) ? true : undefined), 60_000, 500);
    // Both asked from the same cursor; the second found the first one's changes again, and one more.
    assert.deepEqual(
      api.changeRequests.map((r) => r.since),
      [before, before],
    );
    await start("data");
    await eventually("the cursor at the newest change", async () =>
      (await cursor()) === late[0].updated_at ? true : undefined,
    );
    const rows = await dumpRows();
    for (const s of early) assert.equal(rows.get(s.domain), 3, `${s.domain}: tasks 1, 2 and 3 stored it`);
    assert.equal(rows.get("site-30.test"), 2, "tasks 1 and 3 stored it");
  });

  it("a fetch killed (-9) mid-pagination resumes at its page with its first page's value; the cursor moves after the last page is stored", async () => {
    const from = await cursor();
    const touched = SITE_DOMAINS.slice(20, 45);
    const base = Date.now() + 5000;
    const changed = touched.map((d, i) => api.touch([d], new Date(base + i * 1000).toISOString())[0]);
    api.changeRequests.length = 0;
    // Slow pages, so the process can be killed while it is on page 2.
    api.setBehaviour({ latencyMs: 1500 });
    await fire("4");
    await eventually("page 2 asked for", async () => (api.changeRequests.some((r) => r.page === 2) ? true : undefined));
    await procs.get("fetch")!.kill();
    api.setBehaviour({ latencyMs: 0 });
    await start("fetch");
    // The task comes back once its ack wait (30 s) ends.
    await eventually(
      "the cursor at the newest change",
      async () => ((await cursor()) === changed.at(-1)!.updated_at ? true : undefined),
      120_000,
      500,
    );
    assert.deepEqual(
      api.changeRequests.map((r) => r.page),
      [1, 2, 2, 3],
      "page 1 was not fetched again",
    );
    assert.deepEqual([...new Set(api.changeRequests.map((r) => r.since))], [from]);
    const rows = await dumpRows();
    for (const d of touched) assert.ok((rows.get(d) ?? 0) >= 2, `${d} stored again after its change`);
  });
});
