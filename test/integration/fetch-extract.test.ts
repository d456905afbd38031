import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import {
  compileSource,
  createFetcher,
  openLimiter,
  type Fetcher,
  type Limiter,
  type RejectedRecord,
  type SourceDef,
} from "@machina/fetch";
import { MachinaError } from "@machina/wire";

const NATS_URL = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:4222";
const BUCKET = `fetch_extract_test_${process.pid}_${Date.now()}`;

// What the local API answers, by path: a catalogue with nested items and page metadata.
const ROUTES: Record<string, unknown> = {
  "/catalog": {
    meta: { currency: "EUR", generated: "2024-05-01T00:00:00Z" },
    sections: [
      {
        name: "fruit",
        items: [
          { id: "a1", title: "Apple", price: "1.25", stock: 4, added: 1_714_000_000_000 },
          { id: "b2", title: "Banana", price: 0.5, stock: 0, added: "2024-04-02T08:00:00Z" },
        ],
      },
      {
        name: "veg",
        items: [
          { id: "c3", title: "Carrot", price: "cheap", stock: 9, added: "2024-04-03" },
          { id: "d4", title: "Daikon", price: 2, stock: 1, added: "2024-04-04T00:00:00Z" },
        ],
      },
    ],
    owner: { shop: { id: "s9", title: "Corner shop" } },
  },
};

function shop(baseUrl: string): SourceDef {
  return compileSource(
    {
      name: "shop",
      limiter: "unlimited",
      manager: { type: "http", base_url: baseUrl, retries: { max: 0 } },
      queries: {
        // JSONPath filter across nested lists, with a full mapping.
        in_stock: {
          path: "/catalog",
          extract: {
            items: {
              type: "product",
              path: "$.sections[*].items[?(@.stock > 0)]",
              fields: {
                sku: "id",
                name: { path: "title" },
                price: { path: "$.price", type: "double" },
                currency: { path: "meta.currency", from: "body" },
                source: { const: "shop" },
                link: { template: "https://shop.example/{{lead.region}}/{{record.id}}" },
                added: { path: "added", type: "timestamp" },
              },
            },
          },
        },
        // Recursive descent: every object with a title anywhere in the body.
        titled: {
          path: "/catalog",
          extract: { all: { type: "thing", path: "$..[?(@.title)]", fields: { id: "id", title: "title" } } },
        },
        // The original dot-path form next to a JSONPath entry in one query.
        mixed: {
          path: "/catalog",
          extract: {
            owner: { type: "shop", path: "owner.shop" },
            fruit: { type: "product", path: "$.sections[?(@.name == 'fruit')].items", fields: { sku: "id" } },
          },
        },
      },
    },
    "sources/shop.yaml",
  );
}

describe("fetch extraction: JSONPath and field mapping against a local API", () => {
  let nc: NatsConnection;
  let server: Server;
  let limiter: Limiter;
  let fetcher: Fetcher;
  let calls = 0;
  const rejected: { r: RejectedRecord; at: { source: string; query: string; lead: string } }[] = [];
  const lead = { id: "lead-7", args: { region: "eu" } };

  before(async () => {
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    server = createServer((req, res) => {
      calls++;
      const body = ROUTES[req.url ?? ""];
      res.setHeader("content-type", "application/json");
      if (body === undefined) res.writeHead(404).end('{"error":"no such path"}');
      else res.end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const def = shop(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    limiter = await openLimiter(nc, { bucket: BUCKET, sources: [def] });
    fetcher = createFetcher({ sources: [def], limiter, env: {}, onRejected: (r, at) => rejected.push({ r, at }) });
  });

  after(async () => {
    await limiter?.close();
    await new Promise<void>((resolve) => {
      server?.close(() => resolve());
      server?.closeAllConnections();
    });
    if (nc !== undefined) await (await new Kvm(nc).open(BUCKET)).destroy().catch(() => undefined);
    await nc?.close();
  });

  it("selects with a filter, maps every kind of field, and leaves out only the record that does not coerce", async () => {
    rejected.length = 0;
    const res = await fetcher.fetch({ source: "shop", query: "in_stock", lead });
    assert.deepEqual(res.data, {
      product: [
        {
          sku: "a1",
          name: "Apple",
          price: 1.25,
          currency: "EUR",
          source: "shop",
          link: "https://shop.example/eu/a1",
          added: "2024-04-24T23:06:40.000Z",
        },
        {
          sku: "d4",
          name: "Daikon",
          price: 2,
          currency: "EUR",
          source: "shop",
          link: "https://shop.example/eu/d4",
          added: "2024-04-04T00:00:00.000Z",
        },
      ],
    });
    // c3's price "cheap" is not a double: it alone is left out, reported with where it was.
    assert.equal(res.rejected?.length, 1);
    const r = res.rejected?.[0] as RejectedRecord;
    assert.equal(r.field, "price");
    assert.equal(r.index, 1);
    assert.equal(r.page, null);
    assert.equal(
      r.error.message,
      'query shop.in_stock: extract items (type product): record 1: field "price" (from path "$.price"): "cheap" is not a finite number; fix the field\'s type in the mapping or check the upstream API',
    );
    assert.deepEqual(
      rejected.map((x) => x.at),
      [{ source: "shop", query: "in_stock", lead: "lead-7" }],
    );
  });

  it("selects with recursive descent", async () => {
    const res = await fetcher.fetch({ source: "shop", query: "titled", lead });
    // The order recursive descent visits in is the library's; what it finds is the contract.
    assert.deepEqual(res.data.thing.map((t) => t.id).sort(), ["a1", "b2", "c3", "d4", "s9"]);
    assert.deepEqual(
      res.data.thing.find((t) => t.id === "s9"),
      { id: "s9", title: "Corner shop" },
    );
  });

  it("keeps the dot-path form working beside a JSONPath entry", async () => {
    const res = await fetcher.fetch({ source: "shop", query: "mixed", lead });
    assert.deepEqual(res.data, {
      shop: [{ id: "s9", title: "Corner shop" }],
      product: [{ sku: "a1" }, { sku: "b2" }],
    });
  });

  it("fails before any call when a mapping template needs a lead field the lead lacks", async () => {
    const before = calls;
    await assert.rejects(
      fetcher.fetch({ source: "shop", query: "in_stock", lead: { id: "lead-8", args: {} } }),
      (err: unknown) =>
        err instanceof MachinaError &&
        err.code === "BAD_REQUEST" &&
        /needs lead field "region" \(extract items field link/.test(err.message),
    );
    assert.equal(calls, before);
  });
});
