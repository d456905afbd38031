import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { compileSource, createFetcher, openLimiter, type Limiter, type SourceDef } from "@machina/fetch";
import { isMachinaError, type MachinaError } from "@machina/wire";

const NATS_URL = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:4222";
const BUCKET = `fetch_quota_headers_test_${process.pid}_${Date.now()}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function source(name: string, windows: unknown[], baseUrl = "http://127.0.0.1:9"): SourceDef {
  return compileSource(
    {
      name,
      limiter: { windows },
      data: { api_key: { env: "QH_KEY" } },
      manager: {
        type: "http-auth",
        base_url: baseUrl,
        timeout: "5s",
        auth: { type: "api_key", header: "X-Api-Key", value: "{{data.api_key}}" },
        retries: { max: 0 },
      },
      queries: { site: { path: "/v1/sites/{{lead.domain}}", extract: { site: { type: "website", path: "site" } } } },
    },
    `test:${name}`,
  );
}

async function connectOrExplain(): Promise<NatsConnection> {
  try {
    return await connect({ servers: NATS_URL, noAsyncTraces: true });
  } catch (err) {
    throw new Error(
      `cannot reach NATS at ${NATS_URL} (${(err as Error).message}); start it with test/harness/nats.sh start and set MACHINA_NATS_URL`,
    );
  }
}

async function refusal(p: Promise<unknown>): Promise<MachinaError> {
  try {
    await p;
  } catch (err) {
    assert.ok(isMachinaError(err, "OVER_QUOTA"), `expected OVER_QUOTA, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the limiter to refuse");
}

async function eventually<T>(probe: () => Promise<T | undefined>, what: string, ms = 2_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// How many of `n` concurrent acquires, spread over the replicas, are admitted (each may wait up
// to 2 s for room, so windows are chosen longer than that); calls a late grant spent but never
// let out (a stalled event loop) count as admitted, the safe side.
async function admitted(replicas: Limiter[], name: string, n: number): Promise<number> {
  const voided = () => replicas.reduce((s, l) => s + l.stats().voidedCalls, 0);
  const before = voided();
  const results = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => replicas[i % replicas.length].acquire(name)),
  );
  for (const r of results)
    if (r.status === "rejected") assert.ok(isMachinaError(r.reason, "OVER_QUOTA"), String(r.reason));
  return results.filter((r) => r.status === "fulfilled").length + voided() - before;
}

const soon = (s: number) => String(Math.ceil(Date.now() / 1000) + s);

// Every header kind that says "none left for 20 s", as an upstream answer would carry it.
const PAUSES: { name: string; status: number; headers: () => Record<string, string> }[] = [
  {
    name: "xrl_trio",
    status: 200,
    headers: () => ({ "X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": soon(20) }),
  },
  {
    name: "draft_trio",
    status: 200,
    headers: () => ({ "RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "20" }),
  },
  { name: "draft_dict", status: 200, headers: () => ({ RateLimit: "limit=10, remaining=0, reset=20" }) },
  {
    name: "ietf_fields",
    status: 200,
    headers: () => ({ "RateLimit-Policy": '"default";q=10;w=1', RateLimit: '"default";r=0;t=20' }),
  },
  { name: "retry_secs", status: 429, headers: () => ({ "Retry-After": "20" }) },
  { name: "retry_date", status: 503, headers: () => ({ "Retry-After": new Date(Date.now() + 20_000).toUTCString() }) },
];

describe("upstream quota headers reconcile the shared limiter, for every replica", () => {
  let nc1: NatsConnection;
  let nc2: NatsConnection;
  let a: Limiter;
  let b: Limiter;
  const sources = [
    ...PAUSES.map((p) => source(p.name, [{ limit: 10, per: "1s" }])),
    source("remaining", [{ limit: 10, per: "10s" }]),
    source("xlimit", [{ limit: 10, per: "1m" }]),
    source("policy", [
      { limit: 20, per: "10s" },
      { limit: 1000, per: "1d" },
    ]),
    source("clockrem", [{ limit: 10, per: "1h", align: "clock" }]),
    source("boastful", [{ limit: 3, per: "10s" }]),
  ];

  before(async () => {
    nc1 = await connectOrExplain();
    nc2 = await connectOrExplain();
    a = await openLimiter(nc1, { bucket: BUCKET, sources });
    b = await openLimiter(nc2, { bucket: BUCKET, sources });
  });

  after(async () => {
    await a?.close();
    await b?.close();
    if (nc1 !== undefined) await (await new Kvm(nc1).open(BUCKET)).destroy().catch(() => undefined);
    await nc1?.close();
    await nc2?.close();
  });

  for (const kind of PAUSES) {
    it(`${kind.name}: "none left for 20 s" stops every replica until then`, async () => {
      await a.acquire(kind.name);
      await a.observeUpstream(kind.name, kind.status, kind.headers());
      for (const l of [a, b]) {
        const e = await refusal(l.acquire(kind.name));
        const ms = Number(e.details.retryAfterMs);
        assert.ok(ms > 17_000 && ms <= 21_000, `${kind.name}: retry in ${ms} ms`);
      }
      const r = await eventually(async () => {
        const x = await b.report(kind.name);
        return x.blockedUntil === null ? undefined : x;
      }, "replica b to see the pause");
      assert.ok((r.blockedUntil as number) > Date.now() + 17_000);
      assert.ok(b.waitHint(kind.name) > 17_000, "the pull gate of the other replica holds back too");
    });
  }

  it("Remaining below what the windows hold leaves only that many calls, on every replica", async () => {
    await a.acquire("remaining");
    // Someone else spent 6 of the key's 10: 3 are left for the next 8 s.
    await a.observeUpstream("remaining", 200, {
      "X-RateLimit-Limit": "10",
      "X-RateLimit-Remaining": "3",
      "X-RateLimit-Reset": "8",
    });
    assert.equal(await admitted([a, b], "remaining", 8), 3);
    const e = await refusal(b.acquire("remaining"));
    assert.ok(Number(e.details.retryAfterMs) <= 8_100, String(e.details.retryAfterMs));
    // Seeing the same answer again (another replica, a retry) takes nothing more.
    await b.observeUpstream("remaining", 200, {
      "X-RateLimit-Limit": "10",
      "X-RateLimit-Remaining": "0",
      "X-RateLimit-Reset": "8",
    });
    assert.equal((await a.report("remaining")).windows[0].used, 10);
  });

  it("a clock-aligned window takes the upstream's count for the current window", async () => {
    await a.acquire("clockrem");
    await b.observeUpstream("clockrem", 200, {
      "X-RateLimit-Limit": "10",
      "X-RateLimit-Remaining": "2",
      "X-RateLimit-Reset": String(Math.ceil(Date.now() / 3_600_000) * 3600),
    });
    assert.equal(await admitted([b, a], "clockrem", 6), 2);
    assert.equal((await a.report("clockrem")).windows[0].used, 10);
  });

  it("X-RateLimit-Limit below the declared limit is what every replica admits", async () => {
    await a.observeUpstream("xlimit", 200, { "X-RateLimit-Limit": "4" });
    const w = await eventually(async () => {
      const x = (await b.report("xlimit")).windows[0];
      return x.limit === 4 ? x : undefined;
    }, "replica b to take the lowered limit");
    assert.equal(w.declared, 10);
    assert.equal(await admitted([a, b], "xlimit", 10), 4);
    const e = await refusal(b.acquire("xlimit"));
    assert.match(e.message, /4 calls per 1m, lowered by the upstream from 10/);
  });

  it("RateLimit-Policy and RateLimit: what is left rules until the reset, the lower quota after it", async () => {
    await a.observeUpstream("policy", 200, {
      "RateLimit-Policy": '"burst";q=5;w=10, "day";q=2000;w=86400',
      RateLimit: '"burst";r=2;t=3',
    });
    // The reset is further off than a call may wait, so the rest are refused.
    assert.equal(await admitted([a, b], "policy", 6), 2);
    // Past the reset the burst policy holds: 5 per 10 s, 2 of them spent.
    await sleep(3_200);
    await eventually(
      async () => ((await b.report("policy")).windows[0].limit === 5 ? true : undefined),
      "the lowering",
    );
    assert.equal(await admitted([b, a], "policy", 10), 3);
    const r = await a.report("policy");
    assert.deepEqual(
      r.windows.map((x) => [x.window, x.limit, x.declared]),
      [
        ["10s", 5, 20],
        ["1d", 1000, undefined],
      ],
      "a quota above the declared one (2000 a day) leaves it as declared",
    );
  });

  it("headers claiming more than declared never raise it", async () => {
    await a.observeUpstream("boastful", 200, {
      "X-RateLimit-Limit": "1000",
      "X-RateLimit-Remaining": "999",
      "X-RateLimit-Reset": "5",
      "RateLimit-Policy": '"p";q=1000;w=10',
      RateLimit: '"p";r=999;t=5',
    });
    await sleep(100);
    assert.equal(await admitted([a, b], "boastful", 10), 3);
    const w = (await b.report("boastful")).windows[0];
    assert.equal(w.limit, 3);
    assert.equal(w.declared, undefined);
  });
});

describe("quota headers through fetchers against a real HTTP server", () => {
  let nc1: NatsConnection;
  let nc2: NatsConnection;
  let server: Server;
  let url: string;
  let calls = 0;
  let answer: { status: number; headers: OutgoingHttpHeaders } = { status: 200, headers: {} };
  const seen: IncomingHttpHeaders[] = [];
  const bucket = `${BUCKET}_http`;

  before(async () => {
    nc1 = await connectOrExplain();
    nc2 = await connectOrExplain();
    server = createServer((req, res) => {
      calls++;
      seen.push(req.headers);
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
      res.end(JSON.stringify({ site: { domain: "example.com" } }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    if (nc1 !== undefined) await (await new Kvm(nc1).open(bucket)).destroy().catch(() => undefined);
    await nc1?.close();
    await nc2?.close();
  });

  it("an answer to replica A saying none are left stops replica B before it calls", async () => {
    const def = source("api", [{ limit: 10, per: "1s" }], url);
    const la = await openLimiter(nc1, { bucket, sources: [def] });
    const lb = await openLimiter(nc2, { bucket, sources: [def] });
    const env = { QH_KEY: "qh-key-123" };
    const fa = createFetcher({ sources: [def], limiter: la, env });
    const fb = createFetcher({ sources: [def], limiter: lb, env });
    const req = { source: "api", query: "site", lead: { id: "l", args: { domain: "example.com" } } };
    answer = {
      status: 200,
      headers: { "RateLimit-Policy": '"api";q=10;w=1', RateLimit: '"api";r=0;t=30' },
    };
    await fa.fetch(req);
    assert.equal(calls, 1);
    const e = await refusal(fb.fetch(req));
    assert.ok(Number(e.details.retryAfterMs) > 25_000, String(e.details.retryAfterMs));
    await refusal(fa.fetch(req));
    assert.equal(calls, 1, "no replica called the upstream again");
    assert.equal(seen[0]["x-api-key"], "qh-key-123");
    await la.close();
    await lb.close();
  });
});
