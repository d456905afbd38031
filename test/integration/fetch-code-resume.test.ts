// A code-defined query's FetchTask stopped mid-way resumes at the page it stopped on, like a
// declared paginated query: the fetch service (in this process) on the real nats-server, a module
// paging a cursor API through the source's manager. An upstream error on page 3 naks the task and
// its redelivery asks for page 3 (with the module's token) next, not page 1; a 429 on page 2 is
// waited out in hand. Every page is one FETCHED message, each published once.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { fetchService, progressKey, type FetchConfig } from "@machina/fetch";
import { startService, type RunningService } from "@machina/runtime";
import { Kvm } from "@nats-io/kv";
import { fetchedAnswers, publishFetchTask } from "../support/fetch-tasks";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { ITEMS, startPagedApi, type PagedApi } from "../support/paged-api";
import { eventually, writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("coderes");

const yaml = (baseUrl: string) => `name: coded
limiter: unlimited
manager: { type: http, base_url: ${baseUrl}, retries: { max: 0 } }
code: { module: ./coded.ts, max_pages: 20 }
`;

// Pages through /cursor with the token each answer names; every record says which page it came from.
const MODULE = `export default {
  queries: {
    items: {
      buildRequest(ctx) {
        return { url: "/cursor", params: ctx.cursor === null ? {} : { cursor: String(ctx.cursor) } };
      },
      parseResponse(ctx, res) {
        const body = res.body;
        return { records: { item: body.items.map((i) => ({ ...i, page: ctx.page })) }, next: body.paging.next };
      },
    },
  },
};
`;

describe("fetch service: code queries resume mid-pagination", () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let api: PagedApi;
  let svc: RunningService<FetchConfig>;

  before(async () => {
    api = await startPagedApi();
    svc = await startService(fetchService, {
      handleSignals: false,
      configDir: writeConfig({ "fetch/sources/coded.yaml": yaml(api.url), "fetch/sources/coded.ts": MODULE }),
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
    if (nc !== undefined) await removeNetwork(nc, svc.ctx.names);
    await nc?.close();
  });

  const fire = (tag: string) =>
    publishFetchTask(nc, svc.ctx.names, {
      id: `test@${Date.now()}/${tag}`,
      source: "coded",
      query: "items",
      lead: { id: tag, args: {} },
    });

  const fetched = (taskId: string) => fetchedAnswers(jsm, svc.ctx.names, taskId);

  async function assertPagedOnce(taskId: string): Promise<void> {
    const msgs = await eventually(`five pages of ${taskId} on FETCHED`, async () => {
      const m = await fetched(taskId);
      return m.length >= 5 ? m : undefined;
    });
    assert.deepEqual(
      msgs.map((m) => m.msgId),
      [1, 2, 3, 4, 5].map((p) => `${taskId}:p${p}`),
    );
    const records = msgs.flatMap((m) => m.resp.data?.types.item?.records ?? []);
    assert.deepEqual(
      records.map((r) => r.id),
      ITEMS.map((i) => i.id),
    );
    // The module's ctx.page counts pages across deliveries: the resumed page is still page 3.
    assert.deepEqual([...new Set(records.map((r) => r.page))], [1, 2, 3, 4, 5]);
    const ends = msgs.map((m) => Number(m.resp.meta?.end));
    for (let i = 1; i < ends.length; i++) assert.ok(ends[i] > ends[i - 1], `page ${i + 1} is stamped after page ${i}`);
    const kv = await new Kvm(nc).open(svc.ctx.names.buckets.fetchPages);
    assert.equal((await kv.get(progressKey({ id: taskId, source: "coded" })))?.operation, "DEL", "finished");
    await eventually("the FetchTask acked", async () => {
      const c = await jsm.consumers.info(svc.ctx.names.streams.FETCH, svc.ctx.names.consumers.fetch("coded"));
      return c.num_pending === 0 && c.num_ack_pending === 0 ? true : undefined;
    });
  }

  it("an upstream error on page 3 naks the task; the redelivery goes on at page 3 with the module's token", async () => {
    api.reset();
    // Cursor position 10 is the third page.
    api.faults.push({ route: "cursor", at: "10", status: 502, times: 1 });
    const id = await fire("a");
    await assertPagedOnce(id);
    assert.deepEqual(
      api.log.filter((l) => l.route === "cursor").map((l) => `${l.at}:${l.status}`),
      ["0:200", "5:200", "10:502", "10:200", "15:200", "20:200"],
    );
  });

  it("a 429 on page 2 is waited out and paging goes on from page 2", async () => {
    api.reset();
    api.faults.push({ route: "cursor", at: "5", status: 429, times: 1, headers: { "retry-after": "1" } });
    const id = await fire("b");
    await assertPagedOnce(id);
    assert.deepEqual(
      api.log.filter((l) => l.route === "cursor").map((l) => `${l.at}:${l.status}`),
      ["0:200", "5:429", "5:200", "10:200", "15:200", "20:200"],
    );
  });
});
