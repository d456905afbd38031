// Code-defined sources end to end: the example network's signed rankings module loaded by the
// real loader, fetched through the real HTTP manager and the shared limiter on NATS against the
// fake API (which verifies every signature), plus modules that throw, return junk or fail to load.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, beforeEach, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { loadComponents } from "@machina/config";
import {
  compileSource,
  createFetcher,
  loadCodeModules,
  openLimiter,
  type Fetcher,
  type Limiter,
  type SourceDef,
} from "@machina/fetch";
import { meshNames } from "@machina/subjects";
import { MachinaError } from "@machina/wire";
import { DEFAULT_SIGNING_KEYS, expectedSite, SITE_DOMAINS, startFakeApi, type FakeApi } from "../fixtures/fake-api";
import { uniquePrefix } from "../support/nats-env";
import { startServiceProc, writeConfig, type ServiceProc } from "../support/service-procs";

const NATS_URL = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:4222";
const BUCKET = `fetch_code_test_${process.pid}_${Date.now()}`;
const SECRET = DEFAULT_SIGNING_KEYS["demo-client"];
const EXAMPLE_MODULE = path.resolve("config/default/fetch/sources/rankings.ts");
const ENV = { RANKINGS_SIGNING_SECRET: SECRET, FAULTY_KEY: "demo-key" };
const lead = (args: Record<string, unknown> = {}) => ({ id: "lead-1", args });

// Every source of this file lives in one throwaway config tree, loaded as the service loads its own.
function writeTree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "machina-code-source-"));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

async function loadTree(configDir: string, env: Record<string, string> = {}, mode?: string): Promise<SourceDef[]> {
  const opts = { configDir, env, mode };
  const declared = loadComponents("fetch/sources", opts).map((c) =>
    compileSource({ name: c.name, ...c.doc }, c.origins.join(" + ")),
  );
  return loadCodeModules(declared, opts);
}

// A signed source like the example's, under its own limiter window and page cap.
const signedYaml = (name: string, window: string, maxPages = 20) => `name: ${name}
limiter:
  windows:
    - ${window}
data:
  client_id: { value: demo-client }
  signing_secret: { env: RANKINGS_SIGNING_SECRET }
manager:
  type: http
  base_url: http://127.0.0.1:9
  retries: { max: 2, base_delay: 10ms }
code:
  module: ${EXAMPLE_MODULE}
  max_pages: ${maxPages}
`;

// Declarative auth (an API key header) with code queries that read the fake API's v1 routes.
const FAULTY_YAML = `name: faulty
limiter: unlimited
data:
  key: { env: FAULTY_KEY }
manager:
  type: http-auth
  base_url: http://127.0.0.1:9
  auth: { type: api_key, header: X-Api-Key, value: "{{data.key}}" }
  retries: { max: 0 }
code:
  module: ./faulty.mjs
`;

// The module imports the wire package by file URL (it lives outside the workspace), the very
// module instance the service uses, so what it throws is a MachinaError there too.
const WIRE = pathToFileURL(path.resolve("libs/wire/src/index.ts")).href;
const FAULTY_MODULE = `import { MachinaError } from ${JSON.stringify(WIRE)};
const site = () => ({ url: "/v1/sites/example.com" });
const ok = () => ({ records: {} });
export default {
  queries: {
    parse_throws: { buildRequest: site, parseResponse: (ctx) => { throw new Error("cannot read with " + ctx.data.key); } },
    build_throws: { buildRequest: () => { throw new TypeError("lead has no id"); }, parseResponse: ok },
    coded_error: {
      buildRequest: (ctx) => { throw new MachinaError("BAD_REQUEST", "lead needs a category", { retryable: false, details: { lead: ctx.lead.id } }); },
      parseResponse: ok,
    },
    off_host: { buildRequest: () => ({ url: "http://elsewhere.example/v1/sites" }), parseResponse: ok },
    bad_records: { buildRequest: site, parseResponse: () => ({ records: { website: { domain: "x" } } }) },
    bad_token: { buildRequest: site, parseResponse: ok, paginate: () => ({ page: 2 }) },
    header_pages: {
      buildRequest: (ctx) => ({ url: "/v1/sites", params: { per_page: "20", page: String(ctx.cursor ?? 1) } }),
      parseResponse: (_ctx, res) => ({ records: { website: res.body.items } }),
      paginate: (_ctx, res) => res.body.next_page,
    },
  },
};
`;

describe("code-defined sources", () => {
  let nc: NatsConnection;
  let api: FakeApi;
  let limiter: Limiter;
  let fetcher: Fetcher;
  let example: SourceDef;
  let tree: string;

  before(async () => {
    try {
      nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    } catch (err) {
      throw new Error(
        `cannot reach NATS at ${NATS_URL} (${(err as Error).message}); start it with test/harness/nats.sh start and set MACHINA_NATS_URL`,
      );
    }
    api = await startFakeApi({ port: 0 });
    // The example network's own files, with the base URL moved to this test's fake API.
    const shipped = await loadTree(path.resolve("config"), {
      MACHINA_FETCH_SOURCES_RANKINGS_MANAGER_BASE_URL: api.url,
    });
    example = shipped.find((s) => s.name === "rankings") as SourceDef;
    tree = writeTree({
      "default/fetch/sources/tight.yaml": signedYaml("tight", "{ limit: 3, per: 1m }"),
      "default/fetch/sources/capped.yaml": signedYaml("capped", "{ limit: 100, per: 1s }", 2),
      "default/fetch/sources/faulty.yaml": FAULTY_YAML,
      "default/fetch/sources/faulty.mjs": FAULTY_MODULE,
    });
    const env = {
      MACHINA_FETCH_SOURCES_TIGHT_MANAGER_BASE_URL: api.url,
      MACHINA_FETCH_SOURCES_CAPPED_MANAGER_BASE_URL: api.url,
      MACHINA_FETCH_SOURCES_FAULTY_MANAGER_BASE_URL: api.url,
    };
    const sources = [example, ...(await loadTree(tree, env))];
    limiter = await openLimiter(nc, { bucket: BUCKET, sources });
    fetcher = createFetcher({ sources, limiter, env: ENV });
  });

  beforeEach(() => {
    api.reset();
    api.setBehaviour({ latencyMs: 0, failRate: 0, failNext: 0 });
  });

  after(async () => {
    await limiter?.close();
    await api?.close();
    if (tree !== undefined) rmSync(tree, { recursive: true, force: true });
    if (nc !== undefined) await (await new Kvm(nc).open(BUCKET)).destroy().catch(() => undefined);
    await nc?.close();
  });

  it("loads the example module next to its YAML and lists its queries as the source's", () => {
    assert.equal(example.code?.loaded?.file, path.join("config", "default", "fetch", "sources", "rankings.ts"));
    assert.deepEqual([...example.queries.keys()], ["top"]);
    assert.deepEqual(fetcher.queries("rankings"), ["top"]);
    assert.equal(fetcher.hasQuery("rankings", "top"), true);
    assert.equal(fetcher.pagination("rankings", "top"), null);
  });

  it("fetches every page of a signed, cursor-paginated API, one limiter admission per page", async () => {
    const before = await limiter.report("rankings");
    const res = await fetcher.fetch({ source: "rankings", query: "top", lead: lead() });
    const website = res.data.website;
    assert.equal(website.length, SITE_DOMAINS.length);
    // v4's field names (site, position, monthly_visits) mapped by the module to the website type.
    const site = expectedSite("example.org");
    assert.deepEqual(website[1], {
      domain: site.domain,
      rank: site.rank,
      category: site.category,
      visits: site.visits,
    });
    assert.deepEqual(
      website.map((w) => w.domain),
      SITE_DOMAINS,
    );
    assert.equal(res.meta.pages, 3);
    assert.equal(res.meta.attempts, 3);
    assert.equal(res.meta.truncated, false);
    assert.equal(res.meta.limiterQuota, 5);
    assert.ok(res.meta.limiterUsage !== null && res.meta.limiterUsage >= 1 && res.meta.limiterUsage <= 5);
    assert.ok(res.meta.sourceTime > 0 && res.meta.end >= res.meta.start);
    // Every request carried a signature the server checked: no 401 among the answers.
    assert.deepEqual(api.stats().byStatus, { "200": 3 });
    assert.deepEqual(api.stats().byKey, { "demo-client": 3 });
    const after = await limiter.report("rankings");
    assert.ok(after.windows[0].used - before.windows[0].used >= 3, "each page was admitted");
  });

  it("passes the lead to the module: one category's rankings", async () => {
    const res = await fetcher.fetch({ source: "rankings", query: "top", lead: lead({ category: "news" }) });
    const want = SITE_DOMAINS.map((d) => expectedSite(d)).filter((s) => s.category === "news");
    assert.ok(want.length > 0);
    assert.deepEqual(
      res.data.website.map((w) => w.domain),
      want.map((s) => s.domain),
    );
  });

  it("retries a 5xx through the manager, each attempt admitted", async () => {
    api.setBehaviour({ failNext: 1 });
    const res = await fetcher.fetch({ source: "capped", query: "top", lead: lead() });
    assert.equal(res.meta.attempts, 3);
    assert.equal(res.meta.pages, 2);
    assert.deepEqual(api.stats().byStatus, { "200": 2, "503": 1 });
  });

  it("stops at code.max_pages and says the answer was truncated", async () => {
    const res = await fetcher.fetch({ source: "capped", query: "top", lead: lead() });
    assert.equal(res.data.website.length, 40);
    assert.equal(res.meta.pages, 2);
    assert.equal(res.meta.truncated, true);
  });

  it("spends the shared window: 3 calls fit a window of 3, the 4th is refused before it reaches the API", async () => {
    const res = await fetcher.fetch({ source: "tight", query: "top", lead: lead() });
    assert.equal(res.meta.pages, 3);
    assert.equal(res.meta.limiterUsage, 3);
    assert.equal(res.meta.percentQuota, 1);
    const e = await failure(fetcher.fetch({ source: "tight", query: "top", lead: lead() }), "OVER_QUOTA");
    assert.match(e.message, /^source tight is over quota \(3 calls per 1m\)/);
    assert.equal(e.details.pagesFetched, 0);
    assert.equal(api.stats().total, 3, "the refused call never reached the upstream");
  });

  it("maps a refused signature to UPSTREAM naming the source, without the secret", async () => {
    const wrong = "not-the-signing-secret";
    const f = createFetcher({ sources: [example], limiter, env: { RANKINGS_SIGNING_SECRET: wrong } });
    const e = await failure(f.fetch({ source: "rankings", query: "top", lead: lead() }), "UPSTREAM");
    assert.match(e.message, /^source rankings refused the credentials \(HTTP 401 on GET \/v4\/rankings\?limit=20\)/);
    assert.match(e.message, /signature mismatch/);
    assert.equal(e.retryable, false);
    assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes(wrong));
  });

  it("maps a module that throws to a typed error naming the source, module and hook, secrets scrubbed", async () => {
    const parse = await failure(fetcher.fetch({ source: "faulty", query: "parse_throws", lead: lead() }), "UPSTREAM");
    assert.match(
      parse.message,
      /^code source faulty \(.*faulty\.mjs\): queries\.parse_throws\.parseResponse could not read the answer to GET \/v1\/sites\/example\.com: cannot read with \*\*\*$/,
    );
    assert.equal(parse.retryable, false);
    assert.equal(parse.details.source, "faulty");
    assert.equal(parse.details.hook, "parseResponse");
    assert.ok(!JSON.stringify({ m: parse.message, d: parse.details }).includes("demo-key"));

    const build = await failure(fetcher.fetch({ source: "faulty", query: "build_throws", lead: lead() }), "INTERNAL");
    assert.match(
      build.message,
      /^code source faulty \(.*\): queries\.build_throws\.buildRequest threw: lead has no id/,
    );
    assert.equal(build.details.pagesFetched, 0);
    // A MachinaError keeps its code and gains the source, module and hook.
    const coded = await failure(fetcher.fetch({ source: "faulty", query: "coded_error", lead: lead() }), "BAD_REQUEST");
    assert.equal(coded.message, "lead needs a category");
    assert.equal(coded.details.source, "faulty");
    assert.equal(coded.details.hook, "buildRequest");
    assert.equal(coded.details.lead, "lead-1");
    assert.equal(api.stats().total, 1, "only parse_throws reached the upstream");
  });

  it("refuses what the module returns when the manager cannot use it", async () => {
    const off = await failure(fetcher.fetch({ source: "faulty", query: "off_host", lead: lead() }), "INTERNAL");
    assert.match(off.message, /returned url on http:\/\/elsewhere\.example\/v1\/sites, outside manager\.base_url/);
    const records = await failure(fetcher.fetch({ source: "faulty", query: "bad_records", lead: lead() }), "INTERNAL");
    assert.match(records.message, /parseResponse returned records\.website that is not a list$/);
    const token = await failure(fetcher.fetch({ source: "faulty", query: "bad_token", lead: lead() }), "INTERNAL");
    assert.match(token.message, /paginate returned a next page token of type object/);
  });

  it("pages with a module's paginate hook under the source's declarative auth", async () => {
    const res = await fetcher.fetch({ source: "faulty", query: "header_pages", lead: lead() });
    assert.equal(res.data.website.length, SITE_DOMAINS.length);
    assert.equal(res.meta.pages, 3);
    assert.deepEqual(api.stats().byKey, { "demo-key": 3 });
  });
});

describe("the fetch service with the example network", { timeout: 120_000 }, () => {
  const prefix = uniquePrefix("codesrc");
  const names = meshNames(prefix);
  let nc: NatsConnection;
  let api: FakeApi;
  let proc: ServiceProc | undefined;

  before(async () => {
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    api = await startFakeApi({ port: 0 });
  });

  after(async () => {
    await proc?.stop();
    await api?.close();
    const jsm = nc === undefined ? null : await jetstreamManager(nc);
    for (const s of Object.values(names.streams)) await jsm?.streams.delete(s).catch(() => undefined);
    for (const b of Object.values(names.buckets)) await jsm?.streams.delete(`KV_${b}`).catch(() => undefined);
    await nc?.close();
  });

  it("answers fetch.fetch for the signed code source with records and Meta", async () => {
    proc = await startServiceProc("fetch", {
      configDir: path.resolve("config"),
      prefix,
      env: {
        SITESTATS_API_KEY: "demo-key",
        TRAFFIC_API_KEY: "demo-key",
        RANKINGS_SIGNING_SECRET: SECRET,
        MACHINA_FETCH_SOURCES_SITESTATS_MANAGER_BASE_URL: api.url,
        MACHINA_FETCH_SOURCES_TRAFFIC_MANAGER_BASE_URL: api.url,
        MACHINA_FETCH_SOURCES_RANKINGS_MANAGER_BASE_URL: api.url,
      },
    });
    const req = { source: "rankings", query: "top", lead: { id: "all", args: {} } };
    const msg = await nc.request(names.fetch.fetch, JSON.stringify(req), { timeout: 10_000 });
    const reply = msg.json<{
      data: { types: Record<string, { records: Record<string, unknown>[] }> };
      meta: Record<string, unknown>;
    }>();
    assert.equal(reply.data.types.website.records.length, SITE_DOMAINS.length);
    assert.equal(reply.data.types.website.records[0].domain, "example.com");
    assert.equal(reply.meta.source, "rankings");
    assert.equal(reply.meta.pages, 3);
    assert.equal(reply.meta.attempts, 3);
    assert.equal(reply.meta.limiterQuota, 5);
    assert.ok(!proc.output().includes(SECRET), "the signing secret stays out of the log");
  });

  it("refuses to start when a source module is broken, naming the file", async () => {
    const dir = writeConfig({
      "fetch/sources/src.yaml":
        'name: src\nlimiter: unlimited\nmanager: { type: http, base_url: "http://127.0.0.1:9" }\ncode: { module: ./src.mjs }\n',
      "fetch/sources/src.mjs": "export const source = {};\n",
    });
    try {
      await assert.rejects(
        startServiceProc("fetch", { configDir: dir, prefix: uniquePrefix("codebad") }),
        /exited with 1 during start-up[\s\S]*src\.mjs: default: the module has no default export \(it exports source\)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

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
