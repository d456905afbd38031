// The fetch service's worker on a paginated query, against the real nats-server: one FETCHED
// message per page, and a task stopped mid-way (an upstream error, then a real redelivery; a
// 429 waited out in hand) resuming at the page it stopped on, every page published once.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { fetchService, progressKey, type FetchConfig } from "@machina/fetch";
import { startService, type RunningService } from "@machina/runtime";
import { fetchedAnswers, publishFetchTask } from "../support/fetch-tasks";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { ITEMS, startPagedApi, type PagedApi } from "../support/paged-api";
import { eventually, writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("pgsvc");

const source = (baseUrl: string) => `name: pager
limiter: unlimited
manager:
  type: http
  base_url: ${baseUrl}
  retries: { max: 0 }
queries:
  items:
    path: /lists/{{lead.list}}
    paginate: { type: page, param: page, next: next_page }
    extract:
      items: { type: item, path: items }
`;

describe("fetch service: paginated tasks", () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let api: PagedApi;
  let svc: RunningService<FetchConfig>;

  before(async () => {
    api = await startPagedApi();
    svc = await startService(fetchService, {
      handleSignals: false,
      configDir: writeConfig({ "fetch/sources/pager.yaml": source(api.url) }),
      env: {
        MACHINA_NATS_URL: NATS_URL,
        MACHINA_MESH_PREFIX: prefix,
        MACHINA_HTTP_PORT: "0",
        MACHINA_LOG_LEVEL: "silent",
      },
    });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    jsm = await jetstreamManager(nc);
  });

  after(async () => {
    await svc?.stop();
    await api?.close();
    if (jsm !== undefined) {
      const names = svc.ctx.names;
      for (const s of Object.values(names.streams)) await jsm.streams.delete(s).catch(() => undefined);
      for (const b of [names.buckets.limiter, names.buckets.fetchPages, names.buckets.nodes])
        await (await new Kvm(nc).open(b)).destroy().catch(() => undefined);
    }
    await nc?.close();
  });

  const fire = (list: string) =>
    publishFetchTask(nc, svc.ctx.names, {
      id: `test@${Date.now()}/pages/${list}/items`,
      source: "pager",
      query: "items",
      lead: { id: `list ${list}`, args: { list } },
    });

  const fetched = (taskId: string) => fetchedAnswers(jsm, svc.ctx.names, taskId);

  async function assertStoredOnce(taskId: string): Promise<void> {
    const msgs = await eventually(`five pages of ${taskId} on FETCHED`, async () => {
      const m = await fetched(taskId);
      return m.length >= 5 ? m : undefined;
    });
    assert.deepEqual(
      msgs.map((m) => m.msgId),
      [1, 2, 3, 4, 5].map((p) => `${taskId}:p${p}`),
    );
    assert.deepEqual(
      msgs.map((m) => m.resp.requestId),
      msgs.map((m) => m.msgId),
    );
    const items = msgs.flatMap((m) => m.resp.data?.types.item?.records.map((r) => r.id) ?? []);
    assert.deepEqual(
      items,
      ITEMS.map((i) => i.id),
    );
    // Strictly later per page: raw rows of one entity from two pages never share a fetch time.
    const ends = msgs.map((m) => Number(m.resp.meta?.end));
    for (let i = 1; i < ends.length; i++) assert.ok(ends[i] > ends[i - 1], `page ${i + 1} ends after page ${i}`);
    // Finished: the progress key holds its delete marker, and the task left the stream.
    const kv = await new Kvm(nc).open(svc.ctx.names.buckets.fetchPages);
    const entry = await kv.get(progressKey({ id: taskId, source: "pager" }));
    assert.equal(entry?.operation, "DEL");
    await eventually("the FetchTask acked", async () => {
      const c = await jsm.consumers.info(svc.ctx.names.streams.FETCH, svc.ctx.names.consumers.fetch("pager"));
      return c.num_pending === 0 && c.num_ack_pending === 0 ? true : undefined;
    });
  }

  it("an upstream error on page 3 naks the task; its redelivery starts at page 3", async () => {
    api.faults.push({ route: "lists/a", at: "3", status: 502, times: 1 });
    const id = await fire("a");
    await assertStoredOnce(id);
    assert.deepEqual(
      api.log.filter((l) => l.route === "lists/a").map((l) => `${l.at}:${l.status}`),
      ["1:200", "2:200", "3:502", "3:200", "4:200", "5:200"],
    );
  });

  it("a 429 on page 2 is waited out and paging goes on from page 2", async () => {
    api.faults.push({ route: "lists/b", at: "2", status: 429, times: 1, headers: { "retry-after": "1" } });
    const id = await fire("b");
    await assertStoredOnce(id);
    assert.deepEqual(
      api.log.filter((l) => l.route === "lists/b").map((l) => `${l.at}:${l.status}`),
      ["1:200", "2:429", "2:200", "3:200", "4:200", "5:200"],
    );
  });
});
