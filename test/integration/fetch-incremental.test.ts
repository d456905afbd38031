// Incremental queries in the fetch service (in this process) against the real nats-server and a
// feed that filters by `since`: the first fetch renders the declared initial value, an operator
// reads and resets cursors (fetch.cursors, fetch.cursors.reset), and a paginated task keeps the
// value its first page used on every page, even when the cursor changes under it mid-way. With no
// data service running nothing stores the records, so no cursor ever moves by itself here.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { fetchService, type FetchConfig } from "@machina/fetch";
import type { CursorsReply, JsonObject, QueryResponse, RecordBatch } from "@machina/protos";
import { MeshClient, publishDurable, startService, type RunningService } from "@machina/runtime";
import { decodeBody, encodingOf, isMachinaError, type ErrorCode } from "@machina/wire";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { CHANGED_ITEMS, startPagedApi, type PagedApi } from "../support/paged-api";
import { eventually, writeConfig } from "../support/service-procs";

const prefix = uniquePrefix("incr");
const INITIAL = "2024-01-05T00:00:00.000Z";

const yaml = (baseUrl: string) => `name: feed
limiter: unlimited
manager: { type: http, base_url: ${baseUrl}, retries: { max: 0 } }
queries:
  changes:
    path: /changes
    params: { since: "{{incremental.value}}" }
    paginate: { type: page, param: page, next: next_page }
    incremental: { field: updated_at, initial: "${INITIAL}" }
    extract:
      items: { type: item, path: items }
  latest:
    path: /changes
    params: { since: "{{incremental.value}}" }
    incremental: { field: updated_at, initial: "${INITIAL}" }
    extract:
      items: { type: item, path: items }
  plain:
    path: /changes
    params: { since: "2024-01-01T00:00:00Z" }
    extract:
      items: { type: item, path: items }
`;

const after_ = (since: string) => CHANGED_ITEMS.filter((i) => Date.parse(i.updated_at) > Date.parse(since));

describe("fetch service: incremental queries", () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let client: MeshClient;
  let api: PagedApi;
  let svc: RunningService<FetchConfig>;

  before(async () => {
    api = await startPagedApi();
    svc = await startService(fetchService, {
      handleSignals: false,
      configDir: writeConfig({ "fetch/sources/feed.yaml": yaml(api.url) }),
      env: {
        MACHINA_NATS_URL: NATS_URL,
        MACHINA_MESH_PREFIX: prefix,
        MACHINA_HTTP_PORT: "0",
        MACHINA_LOG_LEVEL: "silent",
      },
    });
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    jsm = await jetstreamManager(nc);
    client = new MeshClient(nc);
  });

  after(async () => {
    await svc?.stop();
    client?.close();
    await api?.close();
    if (nc !== undefined) await removeNetwork(nc, svc.ctx.names);
    await nc?.close();
  });

  const names = () => svc.ctx.names;
  const sinceOf = (query: string) => new URLSearchParams(query).get("since");
  const fetchNow = (query: string, lead: string) =>
    client.request(
      names().fetch.fetch,
      "QueryRequest",
      { source: "feed", query, lead: { id: lead, args: {} } },
      "QueryResponse",
    );
  const cursors = (query: string, lead = "") =>
    client.request(names().fetch.cursors, "CursorsRequest", { source: "feed", query, lead }, "CursorsReply");
  const reset = (body: Record<string, unknown>) =>
    client.request(
      names().fetch.cursorsReset,
      "CursorResetRequest",
      { source: "feed", query: "latest", ...body },
      "CursorResetReply",
    );
  async function refused(p: Promise<unknown>, code: ErrorCode, re: RegExp): Promise<void> {
    await assert.rejects(p, (e) => isMachinaError(e, code) && re.test(e.message));
  }

  it("renders the initial value on a lead's first fetch; an interactive answer moves no cursor", async () => {
    api.reset();
    const res = await fetchNow("latest", "news");
    assert.deepEqual(
      api.log.map((l) => sinceOf(l.query)),
      [INITIAL],
    );
    assert.deepEqual(
      res.data?.types.item?.records.map((r) => r.id),
      after_(INITIAL)
        .slice(0, 5)
        .map((i) => i.id),
    );
    assert.equal(res.cursor, undefined, "only a task's answer is stored, so only it carries a mark");
    const c: CursorsReply = await cursors("latest", "news");
    assert.deepEqual(c.cursors, [
      {
        source: "feed",
        query: "latest",
        lead: "news",
        value: INITIAL,
        initial: INITIAL,
        stored: false,
        updatedAt: 0,
        answer: "",
      },
    ]);
  });

  it("fetch.cursors.reset sets a lead's cursor, which the next fetch renders, or puts it back to the initial value", async () => {
    const at = "2024-01-20T00:00:00.000Z";
    const set = await reset({ lead: "news", value: at });
    assert.equal(set.reset, 1);
    assert.deepEqual([set.cursors[0].value, set.cursors[0].stored, set.cursors[0].answer], [at, true, "reset"]);
    api.reset();
    const res = await fetchNow("latest", "news");
    assert.deepEqual(
      api.log.map((l) => sinceOf(l.query)),
      [at],
    );
    assert.deepEqual(
      res.data?.types.item?.records.map((r) => r.id),
      ["item-21", "item-22", "item-23"],
    );
    // Another lead's cursor is its own.
    await reset({ lead: "sports", value: "2024-01-10T00:00:00Z" });
    const all = await cursors("latest");
    assert.deepEqual(all.cursors.map((x) => [x.lead, x.value]).sort(), [
      ["news", at],
      ["sports", "2024-01-10T00:00:00Z"],
    ]);
    const back = await reset({ lead: "news" });
    assert.deepEqual([back.reset, back.cursors[0].value, back.cursors[0].stored], [1, INITIAL, false]);
    const none = await reset({ allLeads: true });
    assert.equal(none.reset, 1, "only sports had one left");
    assert.deepEqual((await cursors("latest")).cursors, []);
  });

  it("refuses what cannot be a cursor or names no cursor, saying what to send", async () => {
    await refused(
      reset({ lead: "news", value: "soon" }),
      "BAD_REQUEST",
      /value: expected an ISO 8601 timestamp .*got "soon" \(query feed\.latest compares by timestamp\)/,
    );
    await refused(reset({}), "BAD_REQUEST", /name the lead whose cursor to reset, or set allLeads/);
    await refused(reset({ lead: "news", allLeads: true }), "BAD_REQUEST", /give lead .* or allLeads .*, not both/);
    await refused(reset({ allLeads: true, value: INITIAL }), "BAD_REQUEST", /change incremental\.initial/);
    await refused(
      cursors("plain"),
      "BAD_REQUEST",
      /query feed\.plain is not incremental, so it has no cursors; incremental queries of feed: changes, latest/,
    );
    await refused(
      cursors("nope"),
      "NOT_FOUND",
      /source feed has no query "nope"; its incremental queries: changes, latest/,
    );
    await refused(
      client.request(names().fetch.cursors, "CursorsRequest", { source: "nope", query: "x" }, "CursorsReply"),
      "UNKNOWN_SOURCE",
      /unknown source "nope"; known sources: feed/,
    );
  });

  async function fire(query: string, lead: string): Promise<string> {
    const id = `test@${Date.now()}/${query}/${lead}`;
    await publishDurable(
      jetstream(nc),
      names().task.fetch("feed", query, lead),
      "FetchTask",
      {
        id,
        source: "feed",
        query,
        lead: { id: lead, args: {} },
        trigger: "test",
        tick: Date.now(),
        createdAt: Date.now(),
      },
      { msgID: id },
    );
    return id;
  }

  async function messages<T>(stream: string, decode: (data: Uint8Array, h: { get(k: string): string }) => T[]) {
    const info = await jsm.streams.info(stream);
    const out: T[] = [];
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (m !== null) out.push(...decode(m.data, m.header));
    }
    return out;
  }
  const answers = (taskId: string) =>
    messages<QueryResponse>(names().streams.FETCHED, (d, h) =>
      decodeBody("QueryResponses", d, encodingOf(h as never)).responses.filter((r) => r.taskId === taskId),
    );
  const closings = (taskId: string) =>
    messages<RecordBatch>(names().streams.STORE, (d, h) =>
      decodeBody("RecordBatches", d, encodingOf(h as never)).batches.filter((b) => b.taskId === taskId),
    );

  it("a paginated task keeps its first page's value on every page, even after the cursor changed mid-way", async () => {
    api.reset();
    // Page 2 answers 429 for 2 s: the task waits in hand, and resumes from its stored progress.
    api.faults.push({ route: "changes", at: "2", status: 429, times: 1, headers: { "retry-after": "2" } });
    const id = await fire("changes", "all");
    await eventually(
      "the 429 on page 2",
      async () => (api.log.some((l) => l.status === 429) ? true : undefined),
      30_000,
      10,
    );
    // The cursor moves under the task (an operator, or another task's records stored meanwhile).
    await client.request(
      names().fetch.cursorsReset,
      "CursorResetRequest",
      { source: "feed", query: "changes", lead: "all", value: "2024-01-15T00:00:00Z" },
      "CursorResetReply",
    );
    const pages = await eventually("four pages on FETCHED", async () => {
      const a = await answers(id);
      return a.length >= 4 ? a : undefined;
    });
    assert.deepEqual(
      api.log.map((l) => `${l.at}:${l.status}:${sinceOf(l.query)}`),
      ["1:200", "2:429", "2:200", "3:200", "4:200"].map((p) => `${p}:${INITIAL}`),
    );
    const items = pages.flatMap((p) => p.data?.types.item?.records.map((r) => r.id) ?? []);
    assert.deepEqual(
      items,
      after_(INITIAL).map((i) => i.id),
      "every item after the initial value once",
    );
    // Each page says which of the task's records it carries; none says where the cursor moves.
    const marks = pages.map((p) => p.cursor as JsonObject);
    assert.deepEqual(
      marks.map((m) => [m.task, m.since, m.page, m.total, m.expect]),
      [1, 2, 3, 4].map((n) => [id, INITIAL, n, n < 4 ? 5 : 3, undefined]),
    );
    // After the last page a record-less STORE batch says what to expect, for data to move the cursor once all is stored.
    const [closing] = await eventually("the closing batch on STORE", async () => {
      const c = await closings(id);
      return c.length > 0 ? c : undefined;
    });
    assert.deepEqual(closing.records, []);
    assert.deepEqual((closing.cursor as JsonObject).expect, {
      pages: { "1": 5, "2": 5, "3": 5, "4": 3 },
      value: CHANGED_ITEMS[22].updated_at,
      order: Date.parse(CHANGED_ITEMS[22].updated_at),
    });
    // Nothing was stored, so the cursor is where the operator put it.
    assert.equal((await cursors("changes", "all")).cursors[0].value, "2024-01-15T00:00:00Z");
  });

  it("a one-request task's answer carries what it expects itself", async () => {
    await client.request(
      names().fetch.cursorsReset,
      "CursorResetRequest",
      { source: "feed", query: "latest", lead: "one", value: "2024-01-19T00:00:00Z" },
      "CursorResetReply",
    );
    const id = await fire("latest", "one");
    const [answer] = await eventually("the answer on FETCHED", async () => {
      const a = await answers(id);
      return a.length > 0 ? a : undefined;
    });
    const mark = answer.cursor as JsonObject;
    assert.deepEqual([mark.since, mark.page, mark.total], ["2024-01-19T00:00:00Z", 1, 4]);
    assert.deepEqual(mark.expect, {
      pages: { "1": 4 },
      value: CHANGED_ITEMS[22].updated_at,
      order: Date.parse(CHANGED_ITEMS[22].updated_at),
    });
    assert.deepEqual(await closings(id), [], "no closing batch for a one-request task");
  });
});
