import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  backoff,
  exhaustedUntil,
  extractRecords,
  readPath,
  retryAfterMs,
  splitPath,
  type ExtractSpec,
} from "@machina/fetch";
import { MachinaError } from "@machina/wire";

const spec = (name: string, type: string, path: string): ExtractSpec => ({ name, type, path: splitPath(path) });

describe("extraction", () => {
  it("reads nested paths and list indexes", () => {
    const body = { a: { b: [{ c: 1 }, { c: 2 }] } };
    assert.equal(readPath(body, ["a", "b", "1", "c"]), 2);
    assert.equal(readPath(body, ["a", "x"]), undefined);
    assert.equal(readPath(body, ["a", "b", "x"]), undefined);
    assert.equal(readPath(body, []), body);
    assert.equal(readPath({ a: 1 }, ["toString"]), undefined);
  });

  it("turns an object into one record and a list into many, grouped by type", () => {
    const body = { site: { domain: "a" }, items: [{ domain: "b" }, { domain: "c" }], traffic: { data: { v: 1 } } };
    const out = extractRecords(
      body,
      [spec("site", "website", "site"), spec("items", "website", "items"), spec("t", "traffic", "traffic.data")],
      "s",
      "q",
    );
    assert.deepEqual(out, { website: [{ domain: "a" }, { domain: "b" }, { domain: "c" }], traffic: [{ v: 1 }] });
  });

  it("gives an empty list for an absent or null path and supports the whole body", () => {
    assert.deepEqual(
      extractRecords({ items: null }, [spec("i", "website", "items"), spec("x", "other", "nope")], "s", "q"),
      { website: [], other: [] },
    );
    assert.deepEqual(extractRecords([{ a: 1 }, { a: 2 }], [spec("all", "thing", ".")], "s", "q"), {
      thing: [{ a: 1 }, { a: 2 }],
    });
  });

  it("fails clearly on scalars where records are expected", () => {
    assert.throws(
      () => extractRecords({ items: [{ a: 1 }, "x"] }, [spec("items", "website", "items")], "sitestats", "sites"),
      (err: unknown) =>
        err instanceof MachinaError &&
        err.code === "UPSTREAM" &&
        err.message.startsWith(
          'query sitestats.sites: extract items expected an object or a list of objects at path "items", got a string at index 1',
        ),
    );
  });
});

describe("upstream rate headers and backoff", () => {
  it("reads Retry-After as seconds or a date", () => {
    assert.equal(retryAfterMs(new Headers({ "Retry-After": "3" }), 0), 3000);
    assert.equal(retryAfterMs({ "retry-after": "Thu, 01 Jan 1970 00:00:05 GMT" }, 1000), 4000);
    assert.equal(retryAfterMs({}, 0), null);
    assert.equal(retryAfterMs({ "Retry-After": "soon" }, 0), null);
  });

  it("reads X-RateLimit-Remaining: 0 with an epoch or delta reset", () => {
    assert.equal(
      exhaustedUntil({ "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000001" }, 0),
      1_700_000_001_000,
    );
    assert.equal(exhaustedUntil({ "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30" }, 1000), 31_000);
    assert.equal(exhaustedUntil({ "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "30" }, 0), null);
  });

  it("backs off exponentially with jitter, capped, honouring an upstream floor", () => {
    assert.equal(
      backoff(200, 10_000, 1, () => 0),
      100,
    );
    assert.equal(
      backoff(200, 10_000, 1, () => 1),
      200,
    );
    assert.equal(
      backoff(200, 10_000, 3, () => 1),
      800,
    );
    assert.equal(
      backoff(200, 1_000, 10, () => 1),
      1000,
    );
    assert.equal(
      backoff(200, 10_000, 1, () => 0, 2000),
      2000,
    );
    assert.equal(
      backoff(200, 1_000, 1, () => 0, 60_000),
      100,
    );
  });
});
