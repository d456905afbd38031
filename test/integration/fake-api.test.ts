import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import {
  DIRECTORY_CITIES,
  DIRECTORY_DOMAINS,
  expectedBusinesses,
  expectedSite,
  expectedTraffic,
  SITE_DOMAINS,
  type Site,
} from "../fixtures/fake-api/dataset";
import { parseKeySpec } from "../fixtures/fake-api/key-spec";
import type { KeyQuota } from "../fixtures/fake-api/quota";
import { startFakeApi, type FakeApi } from "../fixtures/fake-api/server";

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
const KEY = "test-key";

// `null` sends no key at all; `undefined` would silently pick up the default.
function get(api: FakeApi, path: string, key: string | null = KEY): Promise<Response> {
  return fetch(`${api.url}${path}`, { headers: key === null ? {} : { "X-Api-Key": key } });
}

// Fixed windows are aligned to the epoch, so a burst must start just after a boundary to land in one window.
async function waitForWindowStart(windowMs: number): Promise<void> {
  const now = Date.now();
  await delay(Math.floor(now / windowMs) * windowMs + windowMs - now + 5);
}

describe("fake API data endpoints", () => {
  let api: FakeApi;
  before(async () => {
    api = await startFakeApi({ keys: { [KEY]: { limit: 1000, windowMs: 1000 } } });
  });
  after(() => api.close());

  it("serves a site exactly as expectedSite describes it", async () => {
    for (const domain of ["example.com", "site-17.test"]) {
      const res = await get(api, `/v1/sites/${domain}`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /application\/json/);
      assert.deepEqual(await res.json(), { site: expectedSite(domain) });
    }
  });

  it("serves traffic as expectedTraffic describes it, with visits different from v1", async () => {
    const res = await get(api, "/v2/traffic/example.org");
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { data: expectedTraffic("example.org") });
    const differing = SITE_DOMAINS.filter((d) => expectedTraffic(d).visits !== expectedSite(d).visits);
    assert.ok(differing.length > SITE_DOMAINS.length / 2, "v1 and v2 visits should mostly differ");
  });

  it("accepts Authorization: Bearer and treats domains case-insensitively", async () => {
    const res = await fetch(`${api.url}/v1/sites/Example.NET`, { headers: { Authorization: `Bearer ${KEY}` } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { site: expectedSite("example.net") });
  });

  it("answers 404 JSON for unknown domains and paths, 405 for wrong methods", async () => {
    for (const path of ["/v1/sites/nope.test", "/v2/traffic/nope.test", "/v3/whatever", "/v1/sites/%E0%A4%A"]) {
      const res = await get(api, path);
      assert.equal(res.status, 404, path);
      assert.equal(((await res.json()) as { code: string }).code, "not_found");
    }
    const res = await fetch(`${api.url}/v1/sites/example.com`, { method: "DELETE", headers: { "X-Api-Key": KEY } });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "GET");
    assert.equal(((await res.json()) as { code: string }).code, "method_not_allowed");
  });

  it("walks every page with the right total and no duplicates", async () => {
    const seen: Site[] = [];
    let page: number | null = 1;
    let pages = 0;
    while (page !== null) {
      const res = await get(api, `/v1/sites?page=${page}&per_page=7`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as {
        items: Site[];
        page: number;
        per_page: number;
        total: number;
        next_page: number | null;
      };
      assert.equal(body.page, page);
      assert.equal(body.per_page, 7);
      assert.equal(body.total, SITE_DOMAINS.length);
      seen.push(...body.items);
      page = body.next_page;
      pages += 1;
      assert.ok(pages <= 20, "pagination does not terminate");
    }
    assert.equal(pages, Math.ceil(SITE_DOMAINS.length / 7));
    assert.equal(seen.length, SITE_DOMAINS.length);
    assert.equal(new Set(seen.map((s) => s.domain)).size, SITE_DOMAINS.length);
    assert.deepEqual(
      seen,
      SITE_DOMAINS.map((d) => expectedSite(d)),
    );
  });

  it("lists each city's businesses as expectedBusinesses describes them, some sharing a website", async () => {
    assert.deepEqual(DIRECTORY_CITIES, ["springfield", "riverton", "lakeside"]);
    const all: { id: string; domain: string }[] = [];
    for (const city of DIRECTORY_CITIES) {
      const res = await get(api, `/v1/directory/${city}`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { city: string; businesses: { id: string; city: string; domain: string }[] };
      assert.deepEqual(body, { city, businesses: expectedBusinesses(city) });
      assert.ok(body.businesses.length >= 3, `${city} lists a few businesses`);
      for (const b of body.businesses) assert.equal(b.city, city);
      all.push(...body.businesses);
    }
    assert.equal(new Set(all.map((b) => b.id)).size, all.length, "ids are unique across cities");
    const domains = all.map((b) => b.domain);
    assert.ok(new Set(domains).size < domains.length, "some businesses share a domain");
    assert.deepEqual(DIRECTORY_DOMAINS, [...new Set(domains)].sort());
    assert.ok(
      DIRECTORY_DOMAINS.every((d) => d.endsWith(".example") && !SITE_DOMAINS.includes(d)),
      "directory websites are their own .example domains",
    );
    // Case-insensitive like domains; an unknown city is a 404.
    assert.deepEqual(await (await get(api, "/v1/directory/Springfield")).json(), {
      city: "springfield",
      businesses: expectedBusinesses("springfield"),
    });
    const unknown = await get(api, "/v1/directory/atlantis");
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: string }).code, "not_found");
    assert.throws(() => expectedBusinesses("atlantis"), RangeError);
  });

  it("serves sites and traffic for every directory website, outside the /v1/sites list", async () => {
    for (const domain of DIRECTORY_DOMAINS) {
      const site = await get(api, `/v1/sites/${domain}`);
      assert.equal(site.status, 200, domain);
      assert.deepEqual(await site.json(), { site: expectedSite(domain) });
      const traffic = await get(api, `/v2/traffic/${domain}`);
      assert.equal(traffic.status, 200, domain);
      assert.deepEqual(await traffic.json(), { data: expectedTraffic(domain) });
      assert.ok(expectedSite(domain).rank > SITE_DOMAINS.length, "ranked after the listed sites");
    }
    const list = (await (await get(api, "/v1/sites?per_page=50")).json()) as { total: number };
    assert.equal(list.total, SITE_DOMAINS.length);
  });

  it("defaults to page 1 of 10, clamps per_page to 50 and rejects bad paging", async () => {
    const first = (await (await get(api, "/v1/sites")).json()) as { items: Site[]; page: number; next_page: number };
    assert.equal(first.items.length, 10);
    assert.equal(first.page, 1);
    assert.equal(first.next_page, 2);
    const all = (await (await get(api, "/v1/sites?per_page=500")).json()) as { per_page: number; next_page: null };
    assert.equal(all.per_page, 50);
    assert.equal(all.next_page, null);
    for (const q of ["page=0", "page=-1", "per_page=abc", "page=1.5"]) {
      assert.equal((await get(api, `/v1/sites?${q}`)).status, 400, q);
    }
  });
});

describe("fake API auth, quota, failures and stats", () => {
  const windowMs = 200;
  const limit = 3;
  let api: FakeApi;
  before(async () => {
    api = await startFakeApi({ keys: { [KEY]: { limit, windowMs } } });
  });
  after(() => api.close());

  it("answers 401 JSON for a missing or unknown key", async () => {
    for (const key of [null, "wrong-key"]) {
      const res = await get(api, "/v1/sites/example.com", key);
      assert.equal(res.status, 401);
      assert.equal(res.headers.get("x-ratelimit-limit"), null);
      const body = (await res.json()) as { error: string; code: string };
      assert.equal(body.code, "unauthorized");
      assert.ok(body.error.length > 0);
    }
  });

  it("answers 429 with Retry-After past the limit and recovers in the next window", async () => {
    api.reset();
    await waitForWindowStart(windowMs);
    for (let i = 1; i <= limit; i += 1) {
      const res = await get(api, "/v1/sites/example.com");
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-ratelimit-limit"), String(limit));
      assert.equal(res.headers.get("x-ratelimit-remaining"), String(limit - i));
      const reset = Number(res.headers.get("x-ratelimit-reset"));
      assert.ok(reset >= Date.now() / 1000 && reset <= Date.now() / 1000 + 2, `reset ${reset} is not the window end`);
      await res.arrayBuffer();
    }
    const limited = await get(api, "/v1/sites/example.com");
    assert.equal(limited.status, 429);
    const retryAfter = Number(limited.headers.get("retry-after"));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${retryAfter}`);
    assert.equal(limited.headers.get("x-ratelimit-remaining"), "0");
    assert.equal(((await limited.json()) as { code: string }).code, "rate_limited");
    assert.equal(api.stats().maxPerWindow[KEY], limit + 1);

    await waitForWindowStart(windowMs);
    const recovered = await get(api, "/v1/sites/example.com");
    assert.equal(recovered.status, 200);
    assert.equal(recovered.headers.get("x-ratelimit-remaining"), String(limit - 1));
    await recovered.arrayBuffer();
  });

  it("fails the next n data calls with 503 via failNext, then recovers", async () => {
    api.reset();
    await waitForWindowStart(windowMs);
    api.setBehaviour({ failNext: 2 });
    for (const expected of [503, 503, 200]) {
      const res = await get(api, "/v2/traffic/site-01.test");
      assert.equal(res.status, expected);
      await res.arrayBuffer();
    }
  });

  it("applies the same switches through POST /_control and rejects bad control JSON", async () => {
    const ok = await fetch(`${api.url}/_control`, {
      method: "POST",
      body: JSON.stringify({ failRate: 1, latencyMs: 20 }),
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { behaviour: { latencyMs: 20, failRate: 1, failNext: 0 } });
    api.reset();
    await waitForWindowStart(windowMs);
    const started = Date.now();
    const failed = await get(api, "/v1/sites/example.com");
    assert.equal(failed.status, 503);
    assert.ok(Date.now() - started >= 15, "latency was not applied");
    await failed.arrayBuffer();
    for (const body of ["{not json", "[]", '{"failRate":2}', '{"failNxt":1}', ""]) {
      const bad = await fetch(`${api.url}/_control`, { method: "POST", body });
      assert.equal(bad.status, 400, body);
      assert.equal(((await bad.json()) as { code: string }).code, "bad_request");
    }
    assert.throws(() => api.setBehaviour({ failRate: -1 }), RangeError);
    api.setBehaviour({ failRate: 0, latencyMs: 0 });
    assert.equal((await fetch(`${api.url}/_control`, { method: "GET" })).status, 405);
  });

  it("counts every call, including 401, 404 and 429, but not control calls", async (t) => {
    // A frozen clock keeps all calls in one window however slow the machine is.
    const api = await startFakeApi({ keys: { [KEY]: { limit, windowMs } }, now: () => 0 });
    t.after(() => api.close());
    const statuses: number[] = [];
    for (const [path, key] of [
      ["/v1/sites/example.com", KEY],
      ["/v1/sites/example.com", null],
      ["/v1/sites/example.com", "bogus"],
      ["/v2/traffic/unknown.test", KEY],
      ["/v1/sites", KEY],
      ["/v1/sites/example.org", KEY],
      ["/nowhere", KEY],
    ] as const) {
      const res = await get(api, path, key);
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    assert.deepEqual(statuses, [200, 401, 401, 404, 200, 429, 404]);

    const viaHttp = await (await fetch(`${api.url}/_stats`)).json();
    const stats = api.stats();
    assert.deepEqual(viaHttp, stats);
    assert.deepEqual(stats, {
      total: 7,
      byKey: { [KEY]: 5, "(none)": 1, "(unknown)": 1 },
      byPath: { "/v1/sites/:domain": 4, "/v2/traffic/:domain": 1, "/v1/sites": 1, "(unmatched)": 1 },
      byStatus: { "200": 2, "401": 2, "404": 2, "429": 1 },
      maxPerWindow: { [KEY]: 4 },
      maxPerInterval: { [KEY]: 4 },
    });

    const reset = await fetch(`${api.url}/_reset`, { method: "POST" });
    assert.equal(reset.status, 200);
    await reset.arrayBuffer();
    assert.deepEqual(api.stats(), {
      total: 0,
      byKey: {},
      byPath: {},
      byStatus: {},
      maxPerWindow: { [KEY]: 0 },
      maxPerInterval: { [KEY]: 0 },
    });
  });
});

// Calls `path` once per clock reading in `times`, setting the injected clock first; returns the answers' statuses and headers.
async function callAt(api: FakeApi, setClock: (ms: number) => void, times: number[], key = KEY) {
  const answers: { status: number; remaining: string | null; reset: string | null; retryAfter: string | null }[] = [];
  for (const t of times) {
    setClock(t);
    const res = await get(api, "/v1/sites/example.com", key);
    await res.arrayBuffer();
    answers.push({
      status: res.status,
      remaining: res.headers.get("x-ratelimit-remaining"),
      reset: res.headers.get("x-ratelimit-reset"),
      retryAfter: res.headers.get("retry-after"),
    });
  }
  return answers;
}

describe("fake API rolling intervals", () => {
  it("counts the busiest interval at any offset, not only clock-aligned windows", async (t) => {
    let clock = 0;
    const api = await startFakeApi({ keys: { [KEY]: { limit: 10, windowMs: 1000 } }, now: () => clock });
    t.after(() => api.close());
    // 600 ms apart but on either side of the 1 s boundary: two windows of one call, one interval of two.
    await callAt(api, (ms) => (clock = ms), [700, 1300]);
    assert.deepEqual(api.stats().maxPerWindow, { [KEY]: 1 });
    assert.deepEqual(api.stats().maxPerInterval, { [KEY]: 2 });

    // Exactly one window after the first call, that call has left the interval (700, 1700].
    await callAt(api, (ms) => (clock = ms), [1700]);
    assert.deepEqual(api.stats().maxPerInterval, { [KEY]: 2 });
    assert.deepEqual(api.stats().maxPerWindow, { [KEY]: 2 });

    // Fractional arrival times are kept: 1000.2 - 1000 is still before 0.25.
    api.reset();
    assert.deepEqual(api.stats().maxPerInterval, { [KEY]: 0 });
    await callAt(api, (ms) => (clock = ms), [5000.25, 6000.2]);
    assert.deepEqual(api.stats().maxPerInterval, { [KEY]: 2 });
    assert.deepEqual(api.stats().maxPerWindow, { [KEY]: 1 });

    const reset = await fetch(`${api.url}/_reset`, { method: "POST" });
    await reset.arrayBuffer();
    assert.deepEqual((await (await fetch(`${api.url}/_stats`)).json()) as unknown, api.stats());
    assert.deepEqual(api.stats().maxPerInterval, { [KEY]: 0 });
  });

  it("counts rejected calls in maxPerInterval, like maxPerWindow", async (t) => {
    let clock = 0;
    const api = await startFakeApi({ keys: { [KEY]: { limit: 1, windowMs: 1000 } }, now: () => clock });
    t.after(() => api.close());
    const answers = await callAt(api, (ms) => (clock = ms), [900, 950, 1100, 1200]);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 429, 200, 429],
    );
    assert.deepEqual(api.stats().maxPerWindow, { [KEY]: 2 });
    assert.deepEqual(api.stats().maxPerInterval, { [KEY]: 4 });
  });

  it("in rolling mode refuses the (limit+1)-th call in any interval, across a clock boundary, until the oldest leaves", async (t) => {
    let clock = 0;
    const api = await startFakeApi({
      keys: { [KEY]: { limit: 3, windowMs: 1000, mode: "rolling" }, "fixed-key": { limit: 3, windowMs: 1000 } },
      now: () => clock,
    });
    t.after(() => api.close());
    const setClock = (ms: number): void => {
      clock = ms;
    };
    const times = [900, 950, 990, 1010, 1899.5, 1900, 1920, 1950];
    const answers = await callAt(api, setClock, times);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 429, 429, 200, 429, 200],
    );
    assert.deepEqual(
      answers.map((a) => a.remaining),
      ["2", "1", "0", "0", "0", "0", "0", "0"],
    );
    // Reset and Retry-After point at when the oldest admitted call (900, then 950) leaves the interval.
    assert.deepEqual(answers[3], { status: 429, remaining: "0", reset: "2", retryAfter: "1" });
    assert.equal(answers[6].reset, "2");
    assert.equal(answers[0].retryAfter, null);
    const stats = api.stats();
    assert.equal(stats.maxPerWindow[KEY], 5);
    assert.equal(stats.maxPerInterval[KEY], 6);

    // The same calls under a fixed window are all admitted after the boundary, which is the difference.
    const fixed = await callAt(
      api,
      setClock,
      times.map((ms) => ms + 10_000),
      "fixed-key",
    );
    assert.deepEqual(
      fixed.map((a) => a.status),
      [200, 200, 200, 200, 200, 200, 429, 429],
    );
  });

  it("in rolling mode gives Retry-After in whole seconds until the oldest call leaves", async (t) => {
    let clock = 0;
    const api = await startFakeApi({
      keys: { [KEY]: { limit: 1, windowMs: 60_000, mode: "rolling" } },
      now: () => clock,
    });
    t.after(() => api.close());
    const answers = await callAt(api, (ms) => (clock = ms), [1000, 10_000.5, 60_999, 61_000]);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 429, 429, 200],
    );
    assert.equal(answers[1].retryAfter, "51");
    assert.equal(answers[1].reset, "61");
    assert.equal(answers[2].retryAfter, "1");
    assert.equal(answers[3].reset, "121");
  });

  it("in rolling mode with the default clock admits again once the oldest call is windowMs old", async (t) => {
    const windowMs = 300;
    const api = await startFakeApi({ keys: { [KEY]: { limit: 2, windowMs, mode: "rolling" } } });
    t.after(() => api.close());
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const res = await get(api, "/v1/sites/example.com");
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    assert.deepEqual(statuses, [200, 200, 429]);
    await delay(windowMs + 20);
    const again = await get(api, "/v1/sites/example.com");
    assert.equal(again.status, 200);
    await again.arrayBuffer();
    assert.ok(api.stats().maxPerInterval[KEY] >= 3);
  });

  it("rejects an unknown mode", async () => {
    const keys = { [KEY]: { limit: 1, windowMs: 1000, mode: "sliding" } } as unknown as Record<string, KeyQuota>;
    await assert.rejects(startFakeApi({ keys }), RangeError);
  });
});

describe("fake API key spec", () => {
  it("parses the FAKE_API_KEYS format and rejects malformed entries", () => {
    assert.deepEqual(parseKeySpec("demo-key:20/1000, k:2:5/200"), {
      "demo-key": { limit: 20, windowMs: 1000 },
      "k:2": { limit: 5, windowMs: 200 },
    });
    for (const bad of ["", "nokey", ":1/1", "a:1", "a:0/100", "a:1/100,a:2/100"]) {
      assert.throws(() => parseKeySpec(bad), RangeError, bad);
    }
  });

  it("parses a /rolling suffix and rejects any other mode", () => {
    assert.deepEqual(parseKeySpec("a-key:100/1000,b-key:5/60000/rolling"), {
      "a-key": { limit: 100, windowMs: 1000 },
      "b-key": { limit: 5, windowMs: 60_000, mode: "rolling" },
    });
    assert.throws(() => parseKeySpec("a:1/100/sliding"), /unknown mode "sliding"/);
    for (const bad of ["a:1/100/", "a:1/100/Rolling", "a:1/100/rolling/x", "a:0/100/rolling", "a:1/rolling"]) {
      assert.throws(() => parseKeySpec(bad), RangeError, bad);
    }
  });
});

async function freePort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe("fake API standalone entry (main.ts)", () => {
  it("listens on FAKE_API_PORT, serves, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/fake-api/main.ts"], {
      cwd: REPO_ROOT,
      env: { ...process.env, FAKE_API_PORT: String(port), FAKE_API_KEYS: "cli-key:5/1000,roll-key:1/60000/rolling" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = "";
        const timer = setTimeout(() => reject(new Error(`no listening line within 15 s; stderr: ${stderr}`)), 15_000);
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          const newline = out.indexOf("\n");
          if (newline !== -1) {
            clearTimeout(timer);
            resolve(out.slice(0, newline));
          }
        });
        child.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`main.ts exited early with ${code}; stderr: ${stderr}`));
        });
      });
      assert.equal(line, `fake-api listening on http://127.0.0.1:${port}`);

      const res = await fetch(`http://127.0.0.1:${port}/v1/sites/site-03.test`, {
        headers: { "X-Api-Key": "cli-key" },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-ratelimit-limit"), "5");
      assert.deepEqual(await res.json(), { site: expectedSite("site-03.test") });
      const rolling: number[] = [];
      for (let i = 0; i < 2; i += 1) {
        const r = await fetch(`http://127.0.0.1:${port}/v1/sites/site-03.test`, {
          headers: { "X-Api-Key": "roll-key" },
        });
        rolling.push(r.status);
        await r.arrayBuffer();
      }
      assert.deepEqual(rolling, [200, 429]);
    } finally {
      child.kill("SIGTERM");
    }
    const [code, signal] = await exited;
    assert.equal(signal, null, `killed by ${signal}; stderr: ${stderr}`);
    assert.equal(code, 0, `stderr: ${stderr}`);
  });
});
