import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import {
  compileSource,
  createFetcher,
  credentialHash,
  openLimiter,
  quotaReply,
  type Fetcher,
  type Limiter,
  type LimiterLog,
  type SourceDef,
} from "@machina/fetch";
import { isMachinaError, MachinaError } from "@machina/wire";
import { startFakeApi, type FakeApi } from "../fixtures/fake-api";

const NATS_URL = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:4222";
const BUCKET = `fetch_pool_test_${process.pid}_${Date.now()}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const PER_KEY = 5;

// Secrets long and odd enough that finding one in a text can only mean it leaked.
const KEYS = {
  alpha: "pool-alpha-7f3a9c2e-secret",
  beta: "pool-beta-0d41b8e6-secret",
  gamma: "pool-gamma-5c9e2a17-secret",
  listed: "pool-listed-b2e8f4d0-secret",
  one: "pool-one-1a2b3c4d-secret",
  two: "pool-two-9e8d7c6b-secret",
  revoked: "pool-revoked-66aa55bb-secret",
  gone: "pool-gone-0f0f0f0f-secret",
};
const ALL_SECRETS = Object.values(KEYS);
const ENV = {
  POOL_ALPHA: KEYS.alpha,
  POOL_BETA: KEYS.beta,
  POOL_ONE: KEYS.one,
  POOL_TWO: KEYS.two,
  POOL_REVOKED: KEYS.revoked,
  POOL_GONE: KEYS.gone,
};

function pooled(name: string, baseUrl: string, pool: unknown, perKey = PER_KEY): SourceDef {
  return compileSource(
    {
      name,
      limiter: { windows: [{ limit: perKey, per: "1s" }] },
      manager: {
        type: "http-auth",
        base_url: baseUrl,
        timeout: "5s",
        auth: { type: "api_key", header: "X-Api-Key", value: "{{data.api_key}}" },
        retries: { max: 0 },
      },
      pool,
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

async function eventually<T>(probe: () => Promise<T | undefined>, what: string, ms = 2_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function assertNoSecret(text: string, where: string): void {
  for (const s of ALL_SECRETS) assert.ok(!text.includes(s), `${where} reveals a secret: ${text}`);
}

const req = (source: string) => ({
  source,
  query: "site",
  lead: { id: "example.com", args: { domain: "example.com" } },
});

describe("credential pools on the shared limiter, against the fake API", () => {
  let nc1: NatsConnection;
  let nc2: NatsConnection;
  let api: FakeApi;
  let dir: string;
  let la: Limiter;
  let lb: Limiter;
  let fa: Fetcher;
  let fb: Fetcher;
  // Everything the limiters logged, and every error the fetchers threw: checked for secrets at the end.
  const logged: string[] = [];
  const errors: string[] = [];
  const log: LimiterLog = { warn: (fields, message) => logged.push(`${JSON.stringify(fields)} ${message}`) };
  let defs: SourceDef[];

  before(async () => {
    nc1 = await connectOrExplain();
    nc2 = await connectOrExplain();
    const rolling = { limit: PER_KEY, windowMs: 1000, mode: "rolling" as const };
    api = await startFakeApi({
      port: 0,
      // KEYS.revoked and KEYS.gone are unknown to the API: it answers 401.
      keys: Object.fromEntries(
        [KEYS.alpha, KEYS.beta, KEYS.gamma, KEYS.listed, KEYS.one, KEYS.two].map((k) => [k, rolling]),
      ),
    });
    dir = mkdtempSync(join(tmpdir(), "machina-pool-"));
    const list = join(dir, "keys");
    writeFileSync(list, `# one key per line\n${KEYS.gamma}\n\n${KEYS.listed}\n`);
    defs = [
      pooled("spread", api.url, {
        credentials: { alpha: { api_key: { env: "POOL_ALPHA" } }, beta: { api_key: { env: "POOL_BETA" } } },
        lists: [{ file: list, data: "api_key" }],
      }),
      pooled("revoking", api.url, {
        credentials: {
          one: { api_key: { env: "POOL_ONE" } },
          revoked: { api_key: { env: "POOL_REVOKED" } },
          two: { api_key: { env: "POOL_TWO" } },
        },
        bench: "1m",
      }),
      pooled("hopeless", api.url, {
        credentials: { revoked: { api_key: { env: "POOL_REVOKED" } }, gone: { api_key: { env: "POOL_GONE" } } },
      }),
      // Limiter only (no fetcher): two credentials of 5 per 10 s each, 6 per 10 s for the pool.
      pooled(
        "shared",
        api.url,
        { credentials: { a: { api_key: { env: "POOL_ONE" } } }, windows: [{ limit: 6, per: "10s" }] },
        5,
      ),
    ];
    la = await openLimiter(nc1, { bucket: BUCKET, sources: defs, log });
    lb = await openLimiter(nc2, { bucket: BUCKET, sources: defs, log });
    fa = createFetcher({ sources: defs.slice(0, 3), limiter: la, env: ENV });
    fb = createFetcher({ sources: defs.slice(0, 3), limiter: lb, env: ENV });
  });

  after(async () => {
    await la?.close();
    await lb?.close();
    await api?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    if (nc1 !== undefined) await (await new Kvm(nc1).open(BUCKET)).destroy().catch(() => undefined);
    await nc1?.close();
    await nc2?.close();
  });

  it("spreads calls over every credential, each within its own quota in any interval, across two replicas", async (t) => {
    api.reset();
    let ok = 0;
    const deadline = Date.now() + 2_500;
    const worker = async (f: Fetcher) => {
      while (Date.now() < deadline) {
        try {
          await f.fetch(req("spread"));
          ok++;
        } catch (err) {
          if (!isMachinaError(err, "OVER_QUOTA")) throw err;
          errors.push(err.message);
          await sleep(Math.min(Number(err.details.retryAfterMs), Math.max(0, deadline - Date.now())));
        }
      }
    };
    await Promise.all([...Array.from({ length: 8 }, () => worker(fa)), ...Array.from({ length: 8 }, () => worker(fb))]);
    const s = api.stats();
    const keys = [KEYS.alpha, KEYS.beta, KEYS.gamma, KEYS.listed];
    t.diagnostic(
      `fetched ${ok}; per key ${keys.map((k) => s.byKey[k] ?? 0).join(", ")}; most in any 1 s per key ${keys.map((k) => s.maxPerInterval[k]).join(", ")}; statuses ${JSON.stringify(s.byStatus)}`,
    );
    for (const k of keys) {
      assert.ok(s.maxPerInterval[k] <= PER_KEY, `a key saw ${s.maxPerInterval[k]} calls in one 1 s interval`);
      // Each of four keys carries its share: two whole windows and a half at most five a window.
      assert.ok((s.byKey[k] ?? 0) >= 2 * PER_KEY, `a key was barely used: ${s.byKey[k] ?? 0} calls`);
    }
    assert.equal(s.byStatus["429"], undefined);
    assert.equal(s.total, ok);
    assert.ok(ok >= 2.5 * PER_KEY * keys.length * 0.8, `only ${ok} fetches`);
  });

  it("reports each credential by name or hash, never its secret", async () => {
    const reply = quotaReply(await lb.report("spread"));
    const hashes = [credentialHash("spread", KEYS.gamma), credentialHash("spread", KEYS.listed)];
    assert.deepEqual(
      reply.credentials.map((c) => c.id),
      ["alpha", "beta", ...hashes],
    );
    for (const id of hashes) assert.match(id, /^k[0-9a-f]{12}$/);
    for (const c of reply.credentials) {
      assert.equal(c.windows.length, 1);
      assert.equal(c.windows[0].quota, PER_KEY);
      assert.equal(c.benchedUntil, undefined);
    }
    assert.deepEqual(reply.windows, [], "the pool declares no shared windows");
    assertNoSecret(JSON.stringify(reply), "the quota reply");
  });

  it("benches a credential the upstream refuses (401) on every replica, and the others carry on", async () => {
    api.reset();
    // Round-robin reaches the revoked key within three calls; its call is retried on another key.
    for (let i = 0; i < 3; i++) await fa.fetch(req("revoking"));
    let s = api.stats();
    assert.equal(s.byStatus["401"], 1, JSON.stringify(s.byStatus));
    assert.equal(s.byStatus["200"], 3);
    const line = logged.find((l) => l.includes("credential revoked"));
    assert.ok(line !== undefined, `no bench line in ${JSON.stringify(logged)}`);
    assert.match(
      line,
      /source revoking: the upstream refused credential revoked \(HTTP 401\); it is benched on every replica for 1m/,
    );
    // The other replica learns of the bench through the bucket, without meeting the 401 itself.
    const report = await eventually(async () => {
      const r = await lb.report("revoking");
      return r.credentials?.find((c) => c.id === "revoked")?.benchedUntil !== null ? r : undefined;
    }, "replica b to see the bench");
    const benched = report.credentials?.find((c) => c.id === "revoked");
    assert.ok((benched?.benchedUntil ?? 0) > Date.now() + 50_000);
    assert.ok(quotaReply(report).credentials.find((c) => c.id === "revoked")?.overQuota);
    for (let i = 0; i < 8; i++) {
      try {
        await fb.fetch(req("revoking"));
      } catch (err) {
        if (!isMachinaError(err, "OVER_QUOTA")) throw err;
        errors.push(err.message);
        await sleep(Number(err.details.retryAfterMs));
      }
    }
    s = api.stats();
    assert.equal(s.byStatus["401"], 1, "no replica sent the benched key again");
    assert.ok((s.byKey[KEYS.one] ?? 0) >= 3 && (s.byKey[KEYS.two] ?? 0) >= 3, JSON.stringify(s.byKey));
    assert.equal(logged.filter((l) => l.includes("credential revoked")).length, 1, "logged once");
  });

  it("fails clearly when every credential is refused, then stops calling until a bench ends", async () => {
    api.reset();
    let first: MachinaError | undefined;
    try {
      await fa.fetch(req("hopeless"));
    } catch (err) {
      assert.ok(err instanceof MachinaError);
      first = err;
    }
    assert.ok(first !== undefined && first.code === "UPSTREAM", String(first));
    assert.match(
      first.message,
      /source hopeless refused the credentials \(HTTP 401 on GET \/v1\/sites\/example\.com\)/,
    );
    assert.match(first.message, /env var POOL_(REVOKED|GONE) \(credential (revoked|gone)\)/);
    assert.equal(api.stats().byStatus["401"], 2, "each credential was tried once");
    await eventually(async () => {
      const r = await lb.report("hopeless");
      return r.credentials?.every((c) => c.benchedUntil !== null) === true ? true : undefined;
    }, "replica b to see both benches");
    const again = await fb.fetch(req("hopeless")).then(
      () => assert.fail("expected a refusal"),
      (err: unknown) => err as MachinaError,
    );
    assert.equal(again.code, "UPSTREAM");
    assert.equal(again.retryable, true);
    assert.match(again.message, /every credential of source hopeless \(revoked, gone\) is benched/);
    assert.ok(Number(again.details.retryAfterMs) > 60_000);
    assert.equal(api.stats().byStatus["401"], 2, "no further call reached the upstream");
    assert.ok(lb.waitHint("hopeless") > 60_000, "the pull gate holds the source's tasks back");
    for (const e of [first, again]) {
      errors.push(e.message, JSON.stringify(e.details));
    }
  });

  it("holds a pool-wide window across all credentials and replicas, on top of each credential's own", async () => {
    for (const l of [la, lb]) l.usePool("shared", ["first", "second"]);
    const voided = () => la.stats().voidedCalls + lb.stats().voidedCalls;
    const before = voided();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? la : lb).acquire("shared")),
    );
    const granted = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.credential] : []));
    assert.equal(granted.length + voided() - before, 6, `granted ${granted.length}`);
    for (const id of ["first", "second"]) {
      const n = granted.filter((c) => c === id).length;
      assert.ok(n >= 1 && n <= 5, `credential ${id} took ${n} of ${granted.length}`);
    }
    const r = quotaReply(await lb.report("shared"));
    assert.equal(r.windows[0].quota, 6);
    assert.equal(r.windows[0].usage, 6);
    assert.equal(r.overQuota, true);
    assert.deepEqual(
      r.credentials.map((c) => c.id),
      ["first", "second"],
    );
  });

  it("never lets a secret into a log line, an error or a reply", async () => {
    for (const source of ["spread", "revoking", "hopeless"])
      assertNoSecret(JSON.stringify(quotaReply(await la.report(source))), `${source}'s quota reply`);
    assert.ok(logged.length >= 3, "the benches were logged");
    for (const l of logged) assertNoSecret(l, "a log line");
    for (const e of errors) assertNoSecret(e, "an error");
  });
});
