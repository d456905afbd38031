// Pagination that finds the next page (and the totals) by JSONPath instead of a dot path, against
// a real HTTP server and the real nats-server: a filter over a list of links, a definite path, a
// recursive descent, a total; and a JSONPath a source file may not use, refused naming its field.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { compileSource, createFetcher, openLimiter, type Fetcher, type Limiter } from "@machina/fetch";
import { MachinaError } from "@machina/wire";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { ITEMS, startPagedApi, type PagedApi } from "../support/paged-api";

const LIMITER_BUCKET = `${uniquePrefix("pgjp")}_limiter`;
const ALL = ITEMS.map((i) => i.id);

const q = (path: string, paginate: Record<string, unknown>, items = "items") => ({
  path,
  paginate,
  extract: { items: { type: "item", path: items } },
});

const source = (baseUrl: string, queries: Record<string, unknown>) => ({
  name: "pages",
  limiter: "unlimited",
  manager: { type: "http", base_url: baseUrl, retries: { max: 0 } },
  queries,
});

describe("pagination by JSONPath", () => {
  let nc: NatsConnection;
  let api: PagedApi;
  let limiter: Limiter;
  let fetcher: Fetcher;
  const fetch = (query: string) => fetcher.fetch({ source: "pages", query, lead: { id: "l", args: {} } });

  before(async () => {
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    api = await startPagedApi();
    const def = compileSource(
      source(api.url, {
        // The link whose rel is next, out of a list of links: a filter, so the first match counts.
        links: q("/links-list", { type: "next_url", next: "$.meta.links[?(@.rel == 'next')].href" }),
        cursor: q("/cursor", { type: "cursor", param: "cursor", next: "$.paging.next" }),
        page: q("/page", { type: "page", param: "page", next: "$..next_page" }),
        offset: q(
          "/offset",
          { type: "offset", param: "offset", limit: 5, limit_param: "limit", total_items: "$['meta']['total']" },
          "data",
        ),
      }),
      "sources/pages.yaml",
    );
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
    ["links", "links-list", ["0", "5", "10", "15", "20"]],
    ["cursor", "cursor", ["0", "5", "10", "15", "20"]],
    ["page", "page", ["1", "2", "3", "4", "5"]],
    // The total stops it before an empty page is asked for.
    ["offset", "offset", ["0+5", "5+5", "10+5", "15+5", "20+5"]],
  ];
  for (const [query, route, positions] of cases) {
    it(`${query}: every item once, each page asked for once`, async () => {
      const res = await fetch(query);
      assert.deepEqual(
        (res.data.item ?? []).map((r) => r.id),
        ALL,
      );
      assert.deepEqual(api.served(route), positions);
      assert.equal(res.meta.pages, positions.length);
    });
  }

  it("refuses a JSONPath the source file may not run, naming the file and field", () => {
    const bad = (paginate: Record<string, unknown>) => () =>
      compileSource(source("http://x.test", { items: q("/x", paginate) }), "sources/pages.yaml");
    assert.throws(
      bad({ type: "cursor", param: "c", next: "$.items[(@.length-1)].id" }),
      (e) =>
        e instanceof MachinaError &&
        /^sources\/pages\.yaml: queries\.items\.paginate\.next: JSONPath "\$\.items\[\(@\.length-1\)\]\.id" has a script expression/.test(
          e.message,
        ),
    );
    assert.throws(
      bad({ type: "page", param: "p", total_pages: "$.meta[" }),
      (e) =>
        e instanceof MachinaError &&
        /paginate\.total_pages: JSONPath "\$\.meta\[" has unbalanced brackets/.test(e.message),
    );
  });
});
