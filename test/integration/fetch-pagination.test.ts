// Pagination against a real HTTP server and the real nats-server: every kind and stop
// condition through the fetcher, and a paginated task resuming where a stopped delivery left off
// (over quota, a publish that failed, an upstream error) without fetching a page twice.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { jetstream, jetstreamManager, RetentionPolicy, type JetStreamClient } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import {
  compileSource,
  createFetcher,
  createPagedTaskRunner,
  openLimiter,
  paginationFingerprint,
  ProgressStore,
  type FetchedPage,
  type Fetcher,
  type Limiter,
  type PagedTask,
  type PageIds,
} from "@machina/fetch";
import { meshNames } from "@machina/subjects";
import { isMachinaError, MachinaError } from "@machina/wire";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { ITEMS, startPagedApi, type PagedApi } from "../support/paged-api";

const prefix = uniquePrefix("pag");
const names = meshNames(prefix);
const LIMITER_BUCKET = `${prefix}_limiter`;
const STREAM = `${prefix.toUpperCase()}_PAGES`;
const ALL = ITEMS.map((i) => i.id);

const q = (path: string, paginate: Record<string, unknown>, items = "items") => ({
  path,
  paginate,
  extract: { items: { type: "item", path: items } },
});

function pagesSource(baseUrl: string) {
  return compileSource(
    {
      name: "pages",
      limiter: "unlimited",
      manager: { type: "http", base_url: baseUrl, retries: { max: 1, base_delay: "5ms" } },
      queries: {
        page: q("/page", { type: "page", param: "page", next: "next_page" }),
        page_bare: q("/page-bare", { type: "page", param: "page" }),
        page_total: q("/page-total", { type: "page", param: "page", total_pages: "meta.pages" }),
        forever: q("/forever", { type: "page", param: "page", next: "next_page", max_pages: 3 }),
        offset: q(
          "/offset",
          { type: "offset", param: "offset", limit: 5, limit_param: "limit", total_items: "meta.total" },
          "data",
        ),
        offset_empty: q("/offset", { type: "offset", param: "offset", limit: 5, limit_param: "limit" }, "data"),
        cursor: q("/cursor", { type: "cursor", param: "cursor", next: "paging.next" }),
        cursor_total: q("/cursor-total", { type: "cursor", param: "cursor", next: "next", total_items: "total" }),
        next_url: q("/next-url", { type: "next_url", next: "links.next" }),
        next_url_away: q("/next-url-away", { type: "next_url", next: "links.next" }),
        link: q("/link", { type: "link_header" }),
        header_cursor: q("/header-cursor", { type: "header_cursor", param: "cursor", header: "X-Next-Cursor" }),
        loop: q("/loop", { type: "cursor", param: "c", next: "next" }),
      },
    },
    "sources/pages.yaml",
  );
}

const ids = (records: Record<string, unknown>[] | undefined) => (records ?? []).map((r) => r.id as string);

async function failure(p: Promise<unknown>, code: string): Promise<MachinaError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  return assert.fail(`expected ${code}`);
}

describe("pagination kinds and stop conditions", () => {
  let nc: NatsConnection;
  let api: PagedApi;
  let limiter: Limiter;
  let fetcher: Fetcher;
  const fetch = (query: string) => fetcher.fetch({ source: "pages", query, lead: { id: "l", args: {} } });

  before(async () => {
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    api = await startPagedApi();
    const def = pagesSource(api.url);
    limiter = await openLimiter(nc, { bucket: LIMITER_BUCKET, sources: [def] });
    fetcher = createFetcher({ sources: [def], limiter });
  });
  beforeEach(() => api.reset());
  after(async () => {
    await limiter?.close();
    await api?.close();
    await (await new Kvm(nc).open(LIMITER_BUCKET)).destroy().catch(() => undefined);
    await nc?.close();
  });

  const cases: [query: string, route: string, positions: string[]][] = [
    ["page", "page", ["1", "2", "3", "4", "5"]],
    // Counting up without a next field: the empty sixth page is the end.
    ["page_bare", "page-bare", ["1", "2", "3", "4", "5", "6"]],
    // The page count stops it before the empty sixth page is asked for.
    ["page_total", "page-total", ["1", "2", "3", "4", "5"]],
    ["offset", "offset", ["0+5", "5+5", "10+5", "15+5", "20+5"]],
    ["offset_empty", "offset", ["0+5", "5+5", "10+5", "15+5", "20+5", "25+5"]],
    ["cursor", "cursor", ["0", "5", "10", "15", "20"]],
    ["cursor_total", "cursor-total", ["0", "5", "10", "15", "20"]],
    ["next_url", "next-url", ["0", "5", "10", "15", "20"]],
    ["link", "link", ["1", "2", "3", "4", "5"]],
    ["header_cursor", "header-cursor", ["0", "5", "10", "15", "20"]],
  ];
  for (const [query, route, positions] of cases) {
    it(`${query}: fetches every item once and stops at the right page`, async () => {
      const res = await fetch(query);
      assert.deepEqual(ids(res.data.item), ALL);
      assert.deepEqual(api.served(route), positions);
      assert.equal(res.meta.pages, positions.length);
      assert.equal(res.meta.truncated, false);
    });
  }

  it("stops at max_pages and marks the fetch truncated", async () => {
    const res = await fetch("forever");
    assert.equal(res.meta.pages, 3);
    assert.equal(res.meta.truncated, true);
    assert.deepEqual(api.served("forever"), ["1", "2", "3"]);
  });

  it("refuses a next URL on another host before requesting it", async () => {
    const err = await failure(fetch("next_url_away"), "UPSTREAM");
    assert.match(
      err.message,
      /query pages\.next_url_away: the next page URL from response path links\.next points at http:\/\/localhost:\d+, not http:\/\/127\.0\.0\.1:\d+ \(manager\.base_url\)/,
    );
    assert.equal(err.retryable, false);
    assert.deepEqual(api.served("next-url-away"), ["0"]);
  });

  it("refuses an upstream that pages in a circle", async () => {
    const err = await failure(fetch("loop"), "UPSTREAM");
    assert.match(err.message, /pagination loops/);
    assert.deepEqual(api.served("loop"), ["", "same"]);
  });

  it("hands each page over as it is fetched when asked to", async () => {
    const pages: FetchedPage[] = [];
    const res = await fetcher.fetch(
      { source: "pages", query: "cursor", lead: { id: "l", args: {} } },
      { onPage: async (p) => void pages.push(p) },
    );
    assert.deepEqual(res.data, {});
    assert.deepEqual(
      pages.map((p) => [p.page, ids(p.data.item).length, p.next?.pages ?? null]),
      [
        [1, 5, 1],
        [2, 5, 2],
        [3, 5, 3],
        [4, 5, 4],
        [5, 3, null],
      ],
    );
    assert.deepEqual(
      pages.flatMap((p) => ids(p.data.item)),
      ALL,
    );
    for (let i = 1; i < pages.length; i++) assert.ok(pages[i].meta.end > pages[i - 1].meta.end);
  });
});

describe("a paginated task resumes where its last delivery stopped", () => {
  let nc: NatsConnection;
  let js: JetStreamClient;
  let api: PagedApi;
  let limiter: Limiter;
  let fetcher: Fetcher;
  let store: ProgressStore;
  let seq = 0;
  const task = (query = "page"): PagedTask => ({
    id: `tick@${Date.now()}/qs/lead ${++seq}/${query}`,
    source: "pages",
    query,
    lead: { id: `lead ${seq}`, args: {} },
  });
  const subject = (t: PagedTask) => `${prefix}.pages.${seq}.${t.query}`;
  // Publishes a page as fetch does: deterministic id per (task, page), stored before it returns.
  const publisher =
    (t: PagedTask, failOnPage?: { page: number }) =>
    async (page: FetchedPage, pageIds: PageIds): Promise<void> => {
      if (failOnPage?.page === page.page) {
        failOnPage.page = -1;
        throw new MachinaError("UNAVAILABLE", "NATS went away (injected)", { details: { dependency: "nats" } });
      }
      const body = JSON.stringify({ taskId: t.id, requestId: pageIds.requestId, items: ids(page.data.item) });
      await js.publish(subject(t), body, { msgID: pageIds.msgID });
    };
  async function published(t: PagedTask): Promise<{ msgIds: string[]; items: string[] }> {
    const jsm = await jetstreamManager(nc);
    const msgIds: string[] = [];
    const items: string[] = [];
    const info = await jsm.streams.info(STREAM, { subjects_filter: subject(t) });
    for (let s = info.state.first_seq; s <= info.state.last_seq && info.state.messages > 0; s++) {
      const m = await jsm.streams.getMessage(STREAM, { seq: s }).catch(() => null);
      if (m === null || m.subject !== subject(t)) continue;
      msgIds.push(m.header.get("Nats-Msg-Id"));
      items.push(...m.json<{ items: string[] }>().items);
    }
    return { msgIds, items };
  }
  // A redelivery comes after the quota reopens; this one waits out the limiter's pause the same way.
  async function untilAdmitted<T>(attempt: () => Promise<T>): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await attempt();
      } catch (err) {
        if (!isMachinaError(err, "OVER_QUOTA") || i > 40) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  before(async () => {
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: STREAM,
      subjects: [`${prefix}.pages.>`],
      retention: RetentionPolicy.Limits,
      duplicate_window: 60_000_000_000,
    });
    api = await startPagedApi();
    const def = pagesSource(api.url);
    limiter = await openLimiter(nc, { bucket: `${LIMITER_BUCKET}2`, sources: [def] });
    fetcher = createFetcher({ sources: [def], limiter });
    store = await ProgressStore.open(nc, { bucket: names.buckets.fetchPages, ttlMs: 60_000 });
  });
  beforeEach(() => api.reset());
  after(async () => {
    await limiter?.close();
    await api?.close();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(STREAM).catch(() => undefined);
    for (const b of [`${LIMITER_BUCKET}2`, names.buckets.fetchPages])
      await (await new Kvm(nc).open(b)).destroy().catch(() => undefined);
    await nc?.close();
  });

  it("over quota on page 3: pages 1-2 stay stored, the redelivery starts at page 3", async () => {
    const runner = createPagedTaskRunner({ fetcher, store });
    const t = task();
    api.faults.push({ route: "page", at: "3", status: 429, times: 1, headers: { "retry-after": "1" } });
    await failure(runner.run(t, publisher(t)), "OVER_QUOTA");
    const mid = await store.load(t, fingerprintOf(t));
    assert.equal(mid.state, "resume");
    assert.equal(mid.state === "resume" && mid.progress.pages, 2);
    assert.deepEqual((await published(t)).msgIds, [`${t.id}:p1`, `${t.id}:p2`]);

    const out = await untilAdmitted(() => runner.run(t, publisher(t)));
    assert.deepEqual([out.startedAt, out.fetched, out.alreadyDone], [3, 3, false]);
    assert.deepEqual(
      api.log.map((l) => `${l.at}:${l.status}`),
      ["1:200", "2:200", "3:429", "3:200", "4:200", "5:200"],
    );
    const all = await published(t);
    assert.deepEqual(
      all.msgIds,
      [1, 2, 3, 4, 5].map((p) => `${t.id}:p${p}`),
    );
    assert.deepEqual(all.items, ALL);
    assert.deepEqual(await store.load(t, fingerprintOf(t)), { state: "done" });

    // The ack of the finished task got lost: its redelivery fetches nothing and publishes nothing.
    const again = await runner.run(t, publisher(t));
    assert.equal(again.alreadyDone, true);
    assert.equal(api.log.length, 6);
    assert.equal((await published(t)).msgIds.length, 5);
  });

  it("a page whose publish failed is handed on again from memory, not fetched again", async () => {
    const runner = createPagedTaskRunner({ fetcher, store });
    const t = task("cursor");
    await failure(runner.run(t, publisher(t, { page: 3 })), "UNAVAILABLE");
    const out = await runner.run(t, publisher(t));
    assert.deepEqual([out.startedAt, out.replayed, out.fetched], [3, 1, 2]);
    assert.deepEqual(api.served("cursor"), ["0", "5", "10", "15", "20"]);
    assert.deepEqual((await published(t)).items, ALL);
  });

  it("another replica (no memory of the page) fetches only the page that was not stored", async () => {
    const t = task("link");
    await failure(createPagedTaskRunner({ fetcher, store }).run(t, publisher(t, { page: 3 })), "UNAVAILABLE");
    const out = await createPagedTaskRunner({ fetcher, store }).run(t, publisher(t));
    assert.deepEqual([out.startedAt, out.replayed, out.fetched], [3, 0, 3]);
    assert.deepEqual(api.served("link"), ["1", "2", "3", "3", "4", "5"]);
    const all = await published(t);
    assert.deepEqual(all.items, ALL);
    assert.equal(new Set(all.msgIds).size, 5);
  });

  it("an upstream error after retries on a next-URL page resumes at that URL", async () => {
    const runner = createPagedTaskRunner({ fetcher, store });
    const t = task("next_url");
    // One try and one retry fail; the redelivery's request succeeds.
    api.faults.push({ route: "next-url", at: "10", status: 503, times: 2 });
    const err = await failure(runner.run(t, publisher(t)), "UPSTREAM");
    assert.equal(err.retryable, true);
    await runner.run(t, publisher(t));
    assert.deepEqual(api.served("next-url"), ["0", "5", "10", "15", "20"]);
    assert.deepEqual((await published(t)).items, ALL);
  });

  it("starts over, and says why, when the query's pagination changed since the progress was stored", async () => {
    const reasons: string[] = [];
    const runner = createPagedTaskRunner({ fetcher, store, onRestart: (_t, reason) => reasons.push(reason) });
    const t = task("offset");
    await store.save(t, "an-older-config", {
      next: { kind: "params", params: { offset: "15" } },
      pages: 3,
      items: 15,
      lastEnd: 1,
    });
    const out = await runner.run(t, publisher(t));
    assert.equal(out.startedAt, 1);
    assert.deepEqual(reasons, ["the query's pagination changed since the progress was stored"]);
    assert.deepEqual(api.served("offset"), ["0+5", "5+5", "10+5", "15+5", "20+5"]);
  });

  function fingerprintOf(t: PagedTask): string {
    return paginationFingerprint(t.source, t.query, fetcher.pagination(t.source, t.query));
  }
});
