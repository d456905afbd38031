// Compute's result cache over a real @machina/cache store: entries dropped by exactly the data
// changes that affect what they read, runs that overlap an invalidation not stored, uncacheable
// reads never stored, and the index following the store's own evictions.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createCache } from "@machina/cache";
import { ReadSet, ResultCache, resultKey, type ComputeResult } from "@machina/compute";

const result = (n: number): ComputeResult => ({ rows: [{ n }], next: "" });

function readsOf(entities: [string, Record<string, string>][], types: string[] = []): ReadSet {
  const r = new ReadSet();
  for (const [t, k] of entities) r.entity(t, k);
  for (const t of types) r.type(t);
  return r;
}

describe("compute: result cache", () => {
  it("drops the entries that read a changed entity, and every entry that scanned its type", () => {
    const rc = new ResultCache(createCache({ kind: "memory", maxSize: 1 << 20 }));
    const mark = rc.begin();
    assert.equal(rc.put("a", result(1), readsOf([["website", { domain: "a.com" }]]), mark), true);
    assert.equal(rc.put("b", result(2), readsOf([["website", { domain: "b.com" }]]), mark), true);
    assert.equal(rc.put("scan", result(3), readsOf([], ["website"]), mark), true);
    assert.equal(rc.put("other", result(4), readsOf([["business", { id: "a.com" }]]), mark), true);

    assert.equal(rc.invalidate("website", { domain: "a.com" }, "data"), 2);
    assert.equal(rc.get("a"), undefined);
    assert.equal(rc.get("scan"), undefined);
    assert.deepEqual(rc.get("b"), result(2));
    assert.deepEqual(rc.get("other"), result(4));
    assert.equal(rc.invalidations, 2);

    // A type-wide drop (no key) takes every entity entry of the type, and nothing else.
    assert.equal(rc.invalidate("website", null, "broadcast"), 1);
    assert.equal(rc.get("b"), undefined);
    assert.deepEqual(rc.get("other"), result(4));
    assert.equal(rc.invalidate("", null, "reconnect"), 1);
    assert.equal(rc.cache.entries, 0);
  });

  it("matches a change event's key whatever the order of its fields", () => {
    const rc = new ResultCache(createCache({ kind: "memory", maxSize: 1 << 20 }));
    rc.put("k", result(1), readsOf([["visit", { site: "a", day: "2026-01-01" }]]), rc.begin());
    assert.equal(rc.invalidate("visit", { day: "2026-01-01", site: "a" }, "data"), 1);
  });

  it("does not store a run that overlapped an invalidation of a type it read", () => {
    const rc = new ResultCache(createCache({ kind: "memory", maxSize: 1 << 20 }));
    const mark = rc.begin();
    // The change lands while the run is still reading: its result may hold the old row.
    rc.invalidate("website", { domain: "a.com" }, "data");
    assert.equal(rc.put("a", result(1), readsOf([["website", { domain: "a.com" }]]), mark), false);
    assert.equal(rc.get("a"), undefined);
    // A change of another type does not block it; a run started after the change is stored.
    assert.equal(rc.put("x", result(1), readsOf([["business", { id: "x" }]]), mark), true);
    assert.equal(rc.put("a", result(1), readsOf([["website", { domain: "a.com" }]]), rc.begin()), true);
    // A full drop blocks every run that started before it.
    const before = rc.begin();
    rc.invalidate("", null, "reconnect");
    assert.equal(rc.put("y", result(1), readsOf([["business", { id: "y" }]]), before), false);
  });

  it("never stores a run with reads no change event covers", () => {
    const rc = new ResultCache(createCache({ kind: "memory", maxSize: 1 << 20 }));
    const reads = readsOf([["website", { domain: "a.com" }]]);
    reads.unannounced("reads raw dump rows");
    assert.equal(rc.put("d", result(1), reads, rc.begin()), false);
    assert.equal(rc.cache.entries, 0);
  });

  it("forgets entries the store evicted for room, so a later change drops nothing", () => {
    const big = (n: number): ComputeResult => ({ rows: [{ n, pad: "x".repeat(400) }], next: "" });
    const rc = new ResultCache(createCache({ kind: "memory", maxSize: 1000 }));
    rc.put("first", big(1), readsOf([["website", { domain: "a.com" }]]), rc.begin());
    rc.put("second", big(2), readsOf([["website", { domain: "b.com" }]]), rc.begin());
    rc.put("third", big(3), readsOf([["website", { domain: "c.com" }]]), rc.begin());
    assert.equal(rc.get("first"), undefined, "the least recently used entry made room");
    assert.equal(rc.readsFor("first"), undefined);
    assert.equal(rc.invalidate("website", { domain: "a.com" }, "data"), 0);
    assert.equal(rc.invalidate("website", { domain: "c.com" }, "data"), 1);
  });

  it("replaces an entry's reads when it is stored again", () => {
    const rc = new ResultCache(createCache({ kind: "memory", maxSize: 1 << 20 }));
    rc.put("k", result(1), readsOf([["website", { domain: "a.com" }]]), rc.begin());
    rc.put("k", result(2), readsOf([["website", { domain: "b.com" }]]), rc.begin());
    assert.equal(rc.invalidate("website", { domain: "a.com" }, "data"), 0);
    assert.deepEqual(rc.get("k"), result(2));
    assert.equal(rc.invalidate("website", { domain: "b.com" }, "data"), 1);
  });

  it("moves to a new store live: it starts empty, counters go on, and the old store's last evictions touch nothing", () => {
    const old = createCache({ kind: "memory", maxSize: 1 << 20 });
    const rc = new ResultCache(old);
    rc.put("a", result(1), readsOf([["website", { domain: "a.com" }]]), rc.begin());
    assert.deepEqual(rc.get("a"), result(1));
    rc.get("missing");
    rc.replace(createCache({ kind: "ttl", maxSize: 1000, ttlMs: 60_000 }));
    assert.deepEqual([rc.cache.kind, rc.cache.maxBytes, rc.cache.entries], ["ttl", 1000, 0]);
    assert.equal(old.entries, 0, "the old store is emptied");
    assert.equal(rc.get("a"), undefined);
    assert.deepEqual(rc.stats(), { hits: 1, misses: 2, evictions: 0 });
    // The new store is indexed as the old one was: a change still drops what read it.
    rc.put("a", result(2), readsOf([["website", { domain: "a.com" }]]), rc.begin());
    old.set("a", result(9));
    old.del("a");
    assert.deepEqual(rc.get("a"), result(2), "a delete in the old store is not this cache's");
    assert.equal(rc.invalidate("website", { domain: "a.com" }, "data"), 1);
    assert.equal(rc.cache.entries, 0);
  });

  it("keeps nothing in a null cache", () => {
    const rc = new ResultCache(createCache({ kind: "null" }));
    assert.equal(rc.put("k", result(1), readsOf([["website", { domain: "a.com" }]]), rc.begin()), false);
    assert.equal(rc.get("k"), undefined);
  });
});

describe("compute: result keys", () => {
  it("is the same for args whose object keys come in another order, and differs by paging", () => {
    const a = resultKey("latest", { type: "w", key: { a: 1, b: [1, { y: 2, x: 1 }] } }, 0, "");
    const b = resultKey("latest", { key: { b: [1, { x: 1, y: 2 }], a: 1 }, type: "w" }, 0, "");
    assert.equal(a, b);
    assert.notEqual(a, resultKey("latest", { type: "w", key: { a: 1, b: [{ x: 1, y: 2 }, 1] } }, 0, ""));
    assert.notEqual(a, resultKey("latest", { type: "w", key: { a: 1, b: [1, { x: 1, y: 2 }] } }, 10, ""));
    assert.notEqual(a, resultKey("latest", { type: "w", key: { a: 1, b: [1, { x: 1, y: 2 }] } }, 0, "p"));
    assert.notEqual(resultKey("a", { v: "1" }, 0, ""), resultKey("a", { v: 1 }, 0, ""));
  });
});
