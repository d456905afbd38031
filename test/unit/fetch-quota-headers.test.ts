import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSfDictionary, parseSfList, readQuotaHeaders } from "@machina/fetch";

const NOW = 1_800_000_000_000;

describe("structured fields (RFC 8941 subset)", () => {
  it("reads lists of strings, tokens and integers with parameters", () => {
    assert.deepEqual(parseSfList('"burst";q=100;w=60, daily;q=1000;w=86400'), [
      { value: "burst", params: { q: 100, w: 60 } },
      { value: "daily", params: { q: 1000, w: 86400 } },
    ]);
    assert.deepEqual(parseSfList("10;w=1, 50;w=60"), [
      { value: 10, params: { w: 1 } },
      { value: 50, params: { w: 60 } },
    ]);
    assert.deepEqual(parseSfList('"a\\"b";flag;pk=:cHI=:'), [{ value: 'a"b', params: { flag: true, pk: "cHI=" } }]);
    assert.deepEqual(parseSfList(""), []);
  });

  it("refuses malformed text instead of guessing", () => {
    for (const bad of ['"open', "a;", "a,", "a b", "100abc", ";q=1", "a;q=", "a,,b"])
      assert.equal(parseSfList(bad), null, bad);
  });

  it("reads dictionaries", () => {
    const d = parseSfDictionary("limit=100, remaining=50, reset=5");
    assert.deepEqual(
      [...(d ?? new Map()).entries()].map(([k, v]) => [k, v.value]),
      [
        ["limit", 100],
        ["remaining", 50],
        ["reset", 5],
      ],
    );
    assert.equal(parseSfDictionary("limit=100 remaining"), null);
  });
});

describe("readQuotaHeaders", () => {
  it("reads the X-RateLimit trio, with a reset in epoch seconds, epoch ms or seconds from now", () => {
    const epoch = readQuotaHeaders(
      200,
      { "X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": String(NOW / 1000 + 30) },
      NOW,
    );
    assert.deepEqual(epoch, {
      retryAt: null,
      quotas: [
        { policy: null, limit: 60, windowMs: null, remaining: 7, resetAt: NOW + 30_000, resetPrecisionMs: 1000 },
      ],
    });
    const ms = readQuotaHeaders(200, { "x-ratelimit-reset": String(NOW + 1234), "x-ratelimit-remaining": "0" }, NOW);
    assert.equal(ms.quotas[0].resetAt, NOW + 1234);
    assert.equal(ms.quotas[0].resetPrecisionMs, 0);
    const delta = readQuotaHeaders(200, { "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "20" }, NOW);
    assert.equal(delta.quotas[0].resetAt, NOW + 20_000);
    assert.equal(delta.quotas[0].limit, null);
    // Some APIs append a policy to the limit.
    assert.equal(readQuotaHeaders(200, { "X-RateLimit-Limit": "100, 100;w=60" }, NOW).quotas[0].limit, 100);
    assert.deepEqual(readQuotaHeaders(200, { "X-RateLimit-Limit": "lots" }, NOW).quotas, []);
  });

  it("reads the early IETF drafts' RateLimit-Limit/-Remaining/-Reset and their numeric policies", () => {
    const v = readQuotaHeaders(
      200,
      {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "3",
        "RateLimit-Reset": "2",
        "RateLimit-Policy": "10;w=1, 50;w=60",
      },
      NOW,
    );
    assert.deepEqual(v.quotas, [
      { policy: null, limit: 10, windowMs: null, remaining: 3, resetAt: NOW + 2000, resetPrecisionMs: 1000 },
      { policy: null, limit: 10, windowMs: 1000, remaining: null, resetAt: null, resetPrecisionMs: 0 },
      { policy: null, limit: 50, windowMs: 60_000, remaining: null, resetAt: null, resetPrecisionMs: 0 },
    ]);
  });

  it("joins the current draft's RateLimit and RateLimit-Policy fields by policy name", () => {
    const v = readQuotaHeaders(
      200,
      {
        "RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400, "bytes";q=5000;qu="content-bytes";w=1',
        RateLimit: '"burst";r=40;t=12, "other";r=3',
      },
      NOW,
    );
    assert.deepEqual(v.quotas, [
      { policy: "burst", limit: 100, windowMs: 60_000, remaining: 40, resetAt: NOW + 12_000, resetPrecisionMs: 1000 },
      { policy: "other", limit: null, windowMs: null, remaining: 3, resetAt: null, resetPrecisionMs: 0 },
      { policy: "daily", limit: 1000, windowMs: 86_400_000, remaining: null, resetAt: null, resetPrecisionMs: 0 },
    ]);
  });

  it("reads the dictionary form of RateLimit", () => {
    const v = readQuotaHeaders(200, { RateLimit: "limit=10, remaining=0, reset=4" }, NOW);
    assert.deepEqual(v.quotas, [
      { policy: null, limit: 10, windowMs: null, remaining: 0, resetAt: NOW + 4000, resetPrecisionMs: 1000 },
    ]);
  });

  it("takes Retry-After, in seconds or as an HTTP date, from a 429 or 503 only", () => {
    assert.equal(readQuotaHeaders(429, { "Retry-After": "5" }, NOW).retryAt, NOW + 5000);
    const date = new Date(NOW + 20_000).toUTCString();
    assert.equal(readQuotaHeaders(503, { "Retry-After": date }, NOW).retryAt, NOW + 20_000);
    assert.equal(readQuotaHeaders(200, { "Retry-After": "5" }, NOW).retryAt, null);
    assert.equal(readQuotaHeaders(429, { "Retry-After": "soon" }, NOW).retryAt, null);
  });

  it("ignores malformed or absent fields", () => {
    assert.deepEqual(readQuotaHeaders(200, {}, NOW), { retryAt: null, quotas: [] });
    assert.deepEqual(
      readQuotaHeaders(200, { RateLimit: '"x";r=-1', "RateLimit-Policy": '"x";q=1.5;w=1, "y"' }, NOW).quotas,
      [],
    );
  });
});
