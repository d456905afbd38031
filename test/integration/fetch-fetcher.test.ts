import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { compileSource, createFetcher, openLimiter, type Fetcher, type Limiter, type SourceDef } from "@machina/fetch";
import { isMachinaError, MachinaError } from "@machina/wire";
import { expectedSite, expectedTraffic, sliceSites, startFakeApi, type FakeApi } from "../fixtures/fake-api";

const NATS_URL = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:4222";
const BUCKET = `fetch_fetcher_test_${process.pid}_${Date.now()}`;
const KEY = "fetch-test-key-0123";

function sitestats(
  baseUrl: string,
  name = "sitestats",
  extra: { timeout?: string; retries?: number; limit?: number } = {},
): SourceDef {
  return compileSource(
    {
      name,
      limiter: {
        windows: [
          { limit: extra.limit ?? 1000, per: "1s" },
          { limit: 5000, per: "1d" },
        ],
      },
      data: { api_key: { env: "SITESTATS_API_KEY" } },
      manager: {
        type: "http-auth",
        base_url: baseUrl,
        timeout: extra.timeout ?? "5s",
        auth: { type: "api_key", header: "X-Api-Key", value: "{{data.api_key}}" },
        retries: { max: extra.retries ?? 3, base_delay: "10ms" },
      },
      queries: {
        site: {
          method: "GET",
          path: "/v1/sites/{{lead.domain}}",
          params: {},
          headers: {},
          extract: { site: { type: "website", path: "site" } },
        },
        sites: {
          method: "GET",
          path: "/v1/sites",
          params: { per_page: "20" },
          paginate: { type: "page", param: "page", next: "next_page", max_pages: 20 },
          extract: { items: { type: "website", path: "items" } },
        },
        sites_capped: {
          path: "/v1/sites",
          params: { per_page: "10" },
          paginate: { type: "page", param: "page", next: "next_page", max_pages: 2 },
          extract: { items: { type: "website", path: "items" } },
        },
        traffic: { path: "/v2/traffic/{{lead.domain}}", extract: { traffic: { type: "traffic", path: "data" } } },
      },
    },
    `sources/${name}.yaml`,
  );
}

async function failure(p: Promise<unknown>, code: string): Promise<MachinaError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

// The fake API counts small-key in fixed windows aligned to the epoch minute. A test that spends
// it must not straddle a window's end: the reset would admit calls it expects refused (and a
// 429's Retry-After would be under a second). It starts once at least 10 s of the window remain.
const SMALL_KEY_WINDOW_MS = 60_000;
async function clearOfSmallKeyWindowEdge(): Promise<void> {
  const left = SMALL_KEY_WINDOW_MS - (Date.now() % SMALL_KEY_WINDOW_MS);
  if (left < 10_000) await new Promise((r) => setTimeout(r, left + 50));
}

describe("fetcher against the fake API", () => {
  let nc: NatsConnection;
  let api: FakeApi;
  let limiter: Limiter;
  let fetcher: Fetcher;
  const lead = (args: Record<string, unknown>) => ({ id: "lead-1", args });

  before(async () => {
    try {
      nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    } catch (err) {
      throw new Error(
        `cannot reach NATS at ${NATS_URL} (${(err as Error).message}); start it with test/harness/nats.sh start and set MACHINA_NATS_URL`,
      );
    }
    api = await startFakeApi({
      port: 0,
      keys: { [KEY]: { limit: 1000, windowMs: 1000 }, "small-key": { limit: 3, windowMs: SMALL_KEY_WINDOW_MS } },
    });
    const defs = [
      sitestats(api.url),
      sitestats(api.url, "slow", { timeout: "100ms", retries: 1 }),
      sitestats(api.url, "greedy", { limit: 100 }),
      sitestats(api.url, "frugal", { limit: 100 }),
    ];
    limiter = await openLimiter(nc, { bucket: BUCKET, sources: defs });
    fetcher = createFetcher({ sources: defs.slice(0, 2), limiter, env: { SITESTATS_API_KEY: KEY } });
  });

  beforeEach(() => {
    api.reset();
    api.setBehaviour({ latencyMs: 0, failRate: 0, failNext: 0 });
  });

  after(async () => {
    await limiter?.close();
    await api?.close();
    if (nc !== undefined) await (await new Kvm(nc).open(BUCKET)).destroy().catch(() => undefined);
    await nc?.close();
  });

  it("fetches one record with meta", async () => {
    const res = await fetcher.fetch({ source: "sitestats", query: "site", lead: lead({ domain: "example.com" }) });
    assert.deepEqual(res.data, { website: [expectedSite("example.com")] });
    const m = res.meta;
    assert.equal(m.attempts, 1);
    assert.equal(m.pages, 1);
    assert.equal(m.truncated, false);
    assert.equal(m.limiterQuota, 1000);
    assert.ok(m.limiterUsage !== null && m.limiterUsage >= 1);
    assert.equal(m.percentQuota, (m.limiterUsage as number) / 1000);
    assert.ok(m.end >= m.start && m.start > Date.now() - 10_000);
    assert.ok(m.sourceTime > 0 && m.requestTime >= 0 && m.responseTime >= 0);
    assert.deepEqual(api.stats().byPath, { "/v1/sites/:domain": 1 });
    const traffic = await fetcher.fetch({
      source: "sitestats",
      query: "traffic",
      lead: lead({ domain: "example.org" }),
    });
    assert.deepEqual(traffic.data, { traffic: [expectedTraffic("example.org")] });
  });

  it("follows pagination across all pages, one limiter admission per page", async () => {
    const before = await limiter.report("sitestats");
    const res = await fetcher.fetch({ source: "sitestats", query: "sites", lead: lead({}) });
    assert.deepEqual(res.data.website, sliceSites(0, 50));
    assert.equal(res.meta.pages, 3);
    assert.equal(res.meta.attempts, 3);
    assert.deepEqual(api.stats().byPath, { "/v1/sites": 3 });
    const after = await limiter.report("sitestats");
    assert.equal(after.windows[1].used - before.windows[1].used, 3);
  });

  it("stops at max_pages and says so", async () => {
    const res = await fetcher.fetch({ source: "sitestats", query: "sites_capped", lead: lead({}) });
    assert.equal(res.data.website.length, 20);
    assert.equal(res.meta.pages, 2);
    assert.equal(res.meta.truncated, true);
  });

  it("fails early on a missing lead field, before any quota or upstream call", async () => {
    const before = await limiter.report("sitestats");
    const e = await failure(
      fetcher.fetch({ source: "sitestats", query: "site", lead: { id: "lead-77", args: { name: "x" } } }),
      "BAD_REQUEST",
    );
    assert.equal(
      e.message,
      'query sitestats.site needs lead field "domain" (path /v1/sites/{{lead.domain}}); check the ledger that produced lead "lead-77"',
    );
    assert.equal(e.retryable, false);
    assert.deepEqual(e.details, { field: "domain", source: "sitestats", query: "site", lead: "lead-77" });
    assert.equal(api.stats().total, 0);
    assert.equal((await limiter.report("sitestats")).windows[1].used, before.windows[1].used);
  });

  it("says which secret to fix when the key is refused, without revealing it", async () => {
    const bad = createFetcher({
      sources: [sitestats(api.url)],
      limiter,
      env: { SITESTATS_API_KEY: "wrong-key-value" },
    });
    const e = await failure(
      bad.fetch({ source: "sitestats", query: "site", lead: lead({ domain: "example.com" }) }),
      "UPSTREAM",
    );
    assert.equal(e.retryable, false);
    assert.match(
      e.message,
      /^source sitestats refused the credentials \(HTTP 401 on GET \/v1\/sites\/example\.com\); check the API key supplied by env var SITESTATS_API_KEY/,
    );
    assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes("wrong-key-value"));
    assert.equal(e.details.attempts, 1);
    assert.equal(api.stats().total, 1);
  });

  it("retries a 5xx and succeeds, counting attempts and quota", async () => {
    api.setBehaviour({ failNext: 1 });
    const before = await limiter.report("sitestats");
    const res = await fetcher.fetch({ source: "sitestats", query: "site", lead: lead({ domain: "example.net" }) });
    assert.deepEqual(res.data.website, [expectedSite("example.net")]);
    assert.equal(res.meta.attempts, 2);
    assert.deepEqual(api.stats().byStatus, { "200": 1, "503": 1 });
    // Every attempt hits the upstream, so every attempt is admitted by the limiter.
    assert.equal((await limiter.report("sitestats")).windows[1].used - before.windows[1].used, 2);
  });

  it("gives up on a persistent 5xx after the configured retries", async () => {
    api.setBehaviour({ failNext: 10 });
    const e = await failure(
      fetcher.fetch({ source: "sitestats", query: "site", lead: lead({ domain: "example.com" }) }),
      "UPSTREAM",
    );
    assert.equal(e.retryable, true);
    assert.equal(e.details.attempts, 4);
    assert.match(e.message, /HTTP 503.*gave up after 4 attempts/);
    assert.equal(api.stats().total, 4);
  });

  it("maps a 404 to NOT_FOUND without retrying", async () => {
    const e = await failure(
      fetcher.fetch({ source: "sitestats", query: "site", lead: lead({ domain: "nowhere.invalid" }) }),
      "NOT_FOUND",
    );
    assert.equal(e.retryable, false);
    assert.equal(api.stats().total, 1);
  });

  it("times out slow answers and retries them", async () => {
    api.setBehaviour({ latencyMs: 400 });
    const e = await failure(
      fetcher.fetch({ source: "slow", query: "site", lead: lead({ domain: "example.com" }) }),
      "TIMEOUT",
    );
    assert.equal(e.details.attempts, 2);
    assert.match(e.message, /timed out after 100 ms/);
  });

  it("turns an upstream 429 into OVER_QUOTA and pauses the source", async () => {
    await clearOfSmallKeyWindowEdge();
    // Someone else spends the key's quota, so our first call meets a 429.
    for (let i = 0; i < 3; i++)
      await fetch(`${api.url}/v1/sites/example.com`, { headers: { "X-Api-Key": "small-key" } });
    const greedy = createFetcher({
      sources: [sitestats(api.url, "greedy", { limit: 100 })],
      limiter,
      env: { SITESTATS_API_KEY: "small-key" },
    });
    const req = { source: "greedy", query: "site", lead: lead({ domain: "example.com" }) };
    const e = await failure(greedy.fetch(req), "OVER_QUOTA");
    assert.equal(e.retryable, true);
    assert.ok(Number(e.details.retryAfterMs) > 1_000);
    assert.match(
      e.message,
      /^source greedy answered 429 Too Many Requests on GET \/v1\/sites\/example\.com; retry in \d+ ms/,
    );
    assert.equal(api.stats().total, 4);
    // The limiter now refuses locally: the upstream sees no further call. Which local refusal
    // speaks first (the pause, or the windows the pause marked full) depends on the clock bounds
    // at that instant, so either is right.
    const again = await failure(greedy.fetch(req), "OVER_QUOTA");
    assert.match(again.message, /^source greedy is (paused until|over quota)/);
    assert.ok(Number(again.details.retryAfterMs) > 1_000, "and it waits out the upstream's pause");
    assert.equal(api.stats().total, 4);
  });

  it("pauses a source when the upstream says X-RateLimit-Remaining: 0", async () => {
    await clearOfSmallKeyWindowEdge();
    const frugal = createFetcher({
      sources: [sitestats(api.url, "frugal", { limit: 100 })],
      limiter,
      env: { SITESTATS_API_KEY: "small-key" },
    });
    const req = { source: "frugal", query: "site", lead: lead({ domain: "example.com" }) };
    for (let i = 0; i < 3; i++) await frugal.fetch(req);
    await failure(frugal.fetch(req), "OVER_QUOTA");
    assert.equal(api.stats().total, 3);
    assert.equal(api.stats().byStatus["429"], undefined);
  });

  it("lists known sources and queries in errors", async () => {
    const e1 = await failure(fetcher.fetch({ source: "nope", query: "site", lead: lead({}) }), "UNKNOWN_SOURCE");
    assert.equal(e1.message, 'unknown source "nope"; known sources: sitestats, slow');
    const e2 = await failure(fetcher.fetch({ source: "sitestats", query: "sitez", lead: lead({}) }), "NOT_FOUND");
    assert.equal(e2.message, 'source sitestats has no query "sitez"; its queries: site, sites, sites_capped, traffic');
    for (const name of ["constructor", "__proto__", "toString", "valueOf", "hasOwnProperty"]) {
      await failure(fetcher.fetch({ source: name, query: "site", lead: lead({}) }), "UNKNOWN_SOURCE");
      const e = await failure(fetcher.fetch({ source: "sitestats", query: name, lead: lead({}) }), "NOT_FOUND");
      assert.match(e.message, /its queries: site, /, name);
      assert.equal(fetcher.hasQuery("sitestats", name), false, name);
    }
    await failure(fetcher.fetch({ source: "sitestats", query: "site" } as never), "BAD_REQUEST");
    assert.deepEqual(fetcher.sources(), ["sitestats", "slow"]);
    assert.equal(fetcher.hasQuery("sitestats", "sites"), true);
    assert.equal(fetcher.hasQuery("sitestats", "nope"), false);
    assert.equal(api.stats().total, 0);
  });

  it("does not follow redirects, so credentials never travel to another host", async () => {
    let sawKey = false;
    const other = createServer((req, res) => {
      sawKey ||= req.headers["x-api-key"] !== undefined;
      res.writeHead(302, { location: `${api.url}/v1/sites/example.com` }).end();
    });
    await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
      const f = createFetcher({ sources: [sitestats(url)], limiter, env: { SITESTATS_API_KEY: KEY } });
      const e = await failure(
        f.fetch({ source: "sitestats", query: "site", lead: lead({ domain: "example.com" }) }),
        "UPSTREAM",
      );
      assert.equal(e.retryable, false);
      assert.match(
        e.message,
        /redirected GET \/v1\/sites\/example\.com to http:\/\/127\.0\.0\.1:\d+\/v1\/sites\/example\.com \(HTTP 302\)/,
      );
      assert.equal(sawKey, true);
      assert.equal(api.stats().total, 0);
    } finally {
      other.closeAllConnections();
      await new Promise((r) => other.close(r));
    }
  });

  it("refuses to start without the source's secret", () => {
    assert.throws(
      () => createFetcher({ sources: [sitestats(api.url)], limiter, env: {} }),
      (err: unknown) =>
        isMachinaError(err) && /data\.api_key reads env var SITESTATS_API_KEY, which is not set/.test(err.message),
    );
  });
});
