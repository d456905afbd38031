// Covers @machina/cache without servers: the memory kind's LRU order under its byte cap, refused
// oversized entries, byte and entry accounting, ttl expiry (real timers, short ttls), the null
// kind, onEvict reasons, the structured-clone serializer, copies on get, and size parsing.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { createCache, deserialize, formatSize, parseSize, serialize, sizeProblem } from "@machina/cache";
import type { Cache, EvictReason } from "@machina/cache";
import { MachinaError } from "@machina/wire";

/** A string whose serialized form is exactly `bytes` long (its length prefix grows past 127 chars). */
function valueOf(bytes: number): string {
  let v = "x".repeat(bytes - serialize("").length);
  while (serialize(v).length > bytes) v = v.slice(1);
  assert.equal(serialize(v).length, bytes);
  return v;
}

/** Every removal `cache` reports, as `key:reason`. */
function evictLog(cache: Cache): string[] {
  const log: string[] = [];
  cache.onEvict((key: string, reason: EvictReason) => log.push(`${key}:${reason}`));
  return log;
}

describe("memory cache", () => {
  it("drops the least recently used entry when the byte cap is reached; get refreshes recency", () => {
    const cache = createCache({ kind: "memory", maxSize: 300 });
    const log = evictLog(cache);
    const v = valueOf(100);
    cache.set("a", v);
    cache.set("b", v);
    cache.set("c", v);
    assert.equal(cache.bytes, 300);
    assert.equal(cache.get("a"), v); // a is now the most recent: b is the oldest
    assert.equal(cache.set("d", v), true);
    assert.deepEqual(log, ["b:size"]);
    assert.equal(cache.has("b"), false);
    assert.deepEqual(
      ["a", "c", "d"].map((k) => cache.has(k)),
      [true, true, true],
    );
    assert.equal(cache.stats().evictions, 1);
    // Nothing touched since: c is the oldest now.
    cache.set("e", v);
    assert.deepEqual(log, ["b:size", "c:size"]);
  });

  it("drops as many old entries as a big one needs", () => {
    const cache = createCache({ kind: "memory", maxSize: 300 });
    const log = evictLog(cache);
    for (const k of ["a", "b", "c"]) cache.set(k, valueOf(100));
    cache.set("big", valueOf(250));
    assert.deepEqual(log, ["a:size", "b:size", "c:size"]);
    assert.equal(cache.entries, 1);
    assert.equal(cache.bytes, 250);
  });

  it("refuses an entry bigger than the cap, and removes the older entry under its key", () => {
    const cache = createCache({ kind: "memory", maxSize: 100 });
    const log = evictLog(cache);
    assert.equal(cache.set("k", valueOf(100)), true);
    assert.equal(cache.set("other", valueOf(101)), false);
    assert.equal(cache.has("other"), false);
    assert.equal(cache.entries, 1);
    assert.equal(cache.set("k", valueOf(101)), false);
    assert.equal(cache.get("k"), undefined, "the stale value must not outlive the newer one");
    assert.deepEqual(log, ["k:replaced"]);
    assert.equal(cache.entries, 0);
    assert.equal(cache.bytes, 0);
  });

  it("counts bytes and entries through set, replace, del and clear, and tells onEvict why", () => {
    const cache = createCache({ kind: "memory", maxSize: 10_000 });
    const log = evictLog(cache);
    assert.equal(cache.maxBytes, 10_000);
    assert.equal(cache.kind, "memory");
    cache.set("a", valueOf(40));
    cache.set("b", valueOf(60));
    assert.deepEqual([cache.entries, cache.bytes], [2, 100]);
    cache.set("a", valueOf(10));
    assert.deepEqual([cache.entries, cache.bytes], [2, 70]);
    assert.equal(cache.del("b"), true);
    assert.equal(cache.del("b"), false);
    assert.deepEqual([cache.entries, cache.bytes], [1, 10]);
    cache.set("c", 1);
    cache.set("d", 2);
    cache.clear();
    assert.deepEqual([cache.entries, cache.bytes], [0, 0]);
    assert.deepEqual(log.slice(0, 2), ["a:replaced", "b:deleted"]);
    assert.deepEqual(log.slice(2).sort(), ["a:cleared", "c:cleared", "d:cleared"]);
    // Removals the caller asked for are not evictions.
    assert.equal(cache.stats().evictions, 0);
  });

  it("a listener sees the cache already updated, and every listener hears every removal", () => {
    const cache = createCache({ kind: "memory", maxSize: 1000 });
    const seen: [string, boolean, number][] = [];
    cache.onEvict((key) => seen.push([key, cache.has(key), cache.entries]));
    const second = evictLog(cache);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.del("a");
    assert.deepEqual(seen, [["a", false, 1]]);
    assert.deepEqual(second, ["a:deleted"]);
  });

  it("counts hits and misses on get only", () => {
    const cache = createCache({ kind: "memory" });
    assert.equal(cache.maxBytes, 512 * 1024 * 1024);
    cache.set("a", { n: 1 });
    cache.get("a");
    cache.get("a");
    cache.get("nope");
    cache.has("a");
    cache.has("nope");
    assert.deepEqual(cache.stats(), { hits: 2, misses: 1, evictions: 0 });
  });

  it("returns a copy: mutating what get or set saw never changes the cache", () => {
    const cache = createCache({ kind: "memory" });
    const value = { list: [1, 2], map: new Map([["k", { deep: true }]]) };
    cache.set("v", value);
    value.list.push(3);
    const first = cache.get("v") as typeof value;
    assert.deepEqual(first.list, [1, 2]);
    first.list.push(99);
    first.map.get("k")!.deep = false;
    const second = cache.get("v") as typeof value;
    assert.notEqual(second, first);
    assert.deepEqual(second, { list: [1, 2], map: new Map([["k", { deep: true }]]) });
  });

  it("takes any string as a key, prototype names included", () => {
    const cache = createCache({ kind: "memory" });
    for (const key of ["__proto__", "constructor", "toString", "hasOwnProperty", "", "a.b:c"]) {
      assert.equal(cache.has(key), false, key);
      assert.equal(cache.get(key), undefined, key);
      cache.set(key, `value of ${key}`);
      assert.equal(cache.get(key), `value of ${key}`, key);
    }
    assert.equal(cache.entries, 6);
    assert.equal(cache.del("__proto__"), true);
    assert.equal(cache.has("__proto__"), false);
  });

  it("stores undefined and null as values (a stored undefined reads like a miss)", () => {
    const cache = createCache({ kind: "memory" });
    assert.equal(cache.set("n", null), true);
    assert.equal(cache.get("n"), null);
    assert.equal(cache.set("u", undefined), true);
    assert.equal(cache.has("u"), true);
  });

  it("throws for a value that cannot be cloned, and keeps the old entry", () => {
    const cache = createCache({ kind: "memory" });
    cache.set("k", 1);
    assert.throws(() => cache.set("k", { f: () => 1 }), /could not be cloned/);
    assert.equal(cache.get("k"), 1);
  });

  it("expires entries after an optional max age", async () => {
    const cache = createCache({ kind: "memory", ttlMs: 40 });
    cache.set("a", 1);
    assert.equal(cache.get("a"), 1);
    await sleep(80);
    assert.equal(cache.get("a"), undefined);
  });

  it("refuses a bad spec with what to write", () => {
    const bad = (fn: () => unknown, re: RegExp) =>
      assert.throws(
        fn,
        (err: unknown) => err instanceof MachinaError && err.code === "BAD_REQUEST" && re.test(err.message),
      );
    bad(() => createCache({ kind: "memory", maxSize: 0 }), /maxSize must be a whole number of bytes >= 1, got 0/);
    bad(() => createCache({ kind: "memory", maxSize: 1.5 }), /maxSize/);
    bad(() => createCache({ kind: "ttl" }), /a ttl cache needs ttlMs/);
    bad(() => createCache({ kind: "ttl", ttlMs: 0 }), /ttlMs must be a whole number of ms >= 1, got 0/);
    bad(() => createCache({ kind: "memory", ttlMs: Number.NaN }), /ttlMs/);
    bad(() => createCache({ kind: "lru" as never }), /unknown kind "lru"; expected one of null, memory, ttl/);
    bad(() => createCache({ kind: "memory" }).set("k", 1, { ttlMs: 0 }), /set: ttlMs must be/);
  });
});

describe("ttl cache", () => {
  it("drops entries ttlMs after they were written, telling onEvict and counting an eviction", async () => {
    const cache = createCache({ kind: "ttl", ttlMs: 50 });
    const log = evictLog(cache);
    cache.set("a", { n: 1 });
    assert.deepEqual(cache.get("a"), { n: 1 });
    assert.equal(cache.entries, 1);
    await sleep(120);
    // Dropped by its own timer, before any read: the accounting and listeners follow the clock.
    assert.deepEqual(log, ["a:expired"]);
    assert.deepEqual([cache.entries, cache.bytes], [0, 0]);
    assert.equal(cache.has("a"), false);
    assert.equal(cache.get("a"), undefined);
    assert.deepEqual(cache.stats(), { hits: 1, misses: 1, evictions: 1 });
  });

  it("takes a per-entry ttl, and a rewrite starts the entry's ttl again", async () => {
    const cache = createCache({ kind: "ttl", ttlMs: 60_000 });
    // Sleeps only ever overshoot: the check comes after the first write's ttl for sure, and
    // before the rewrite's unless the loop stalls for over 200 ms.
    cache.set("short", 1, { ttlMs: 30 });
    cache.set("long", 2);
    cache.set("renewed", 3, { ttlMs: 500 });
    await sleep(300);
    cache.set("renewed", 4, { ttlMs: 500 });
    await sleep(300);
    assert.equal(cache.get("short"), undefined);
    assert.equal(cache.get("long"), 2);
    assert.equal(cache.get("renewed"), 4);
  });

  it("is capped by size too (default 512 MiB)", () => {
    assert.equal(createCache({ kind: "ttl", ttlMs: 1000 }).maxBytes, 512 * 1024 * 1024);
    const cache = createCache({ kind: "ttl", ttlMs: 60_000, maxSize: 200 });
    const log = evictLog(cache);
    cache.set("a", valueOf(100));
    cache.set("b", valueOf(100));
    cache.set("c", valueOf(100));
    assert.deepEqual(log, ["a:size"]);
    assert.equal(cache.kind, "ttl");
  });
});

describe("null cache", () => {
  it("stores nothing and counts every get as a miss", () => {
    const cache = createCache({ kind: "null", maxSize: 1000 });
    const log = evictLog(cache);
    assert.equal(cache.kind, "null");
    assert.equal(cache.maxBytes, 0);
    assert.equal(cache.set("a", 1), false);
    assert.equal(cache.has("a"), false);
    assert.equal(cache.get("a"), undefined);
    assert.equal(cache.get("b"), undefined);
    assert.equal(cache.del("a"), false);
    cache.clear();
    assert.deepEqual([cache.entries, cache.bytes], [0, 0]);
    assert.deepEqual(cache.stats(), { hits: 0, misses: 2, evictions: 0 });
    assert.deepEqual(log, []);
  });
});

describe("serializer", () => {
  const roundTrip = (v: unknown) => deserialize(serialize(v));

  it("round-trips typed arrays, dates, maps, sets, nested objects, BigInt and odd numbers", () => {
    const value = {
      f64: new Float64Array([1.5, -0, Number.NaN, Infinity]),
      i32: new Int32Array([1, -2, 2 ** 31 - 1]),
      u8: new Uint8Array([0, 255]),
      date: new Date("2024-05-06T07:08:09.010Z"),
      map: new Map<unknown, unknown>([
        ["a", 1],
        [2, { b: [new Set([1, "x"])] }],
      ]),
      set: new Set([1, "two", 3n]),
      nested: { deep: { deeper: [{ x: null }, [1, [2, [3]]]] } },
      big: 12345678901234567890n,
      nan: Number.NaN,
      negZero: -0,
      list: [1, undefined, 3],
      text: "héllo ✓",
    };
    const back = roundTrip(value) as typeof value;
    assert.deepEqual(back, value);
    assert.ok(back.f64 instanceof Float64Array);
    assert.ok(back.i32 instanceof Int32Array);
    assert.ok(back.date instanceof Date);
    assert.equal(back.date.getTime(), value.date.getTime());
    assert.ok(back.map instanceof Map);
    assert.ok(back.set instanceof Set);
    assert.equal(typeof back.big, "bigint");
    assert.ok(Object.is(back.negZero, -0));
    assert.ok(Object.is(back.f64[1], -0));
    assert.ok(Number.isNaN(back.nan));
    assert.equal(back.list.length, 3);
    assert.ok(1 in back.list, "undefined inside an array is kept as an element");
  });

  it("round-trips top-level primitives", () => {
    for (const v of [0, -0, 1.25, Number.NaN, -Infinity, "", "s", true, false, null, undefined, 7n]) {
      assert.ok(Object.is(roundTrip(v), v), String(v));
    }
  });

  it("keeps shared and cyclic references", () => {
    const shared = { n: 1 };
    const cyclic: { self?: unknown; a: unknown; b: unknown } = { a: shared, b: shared };
    cyclic.self = cyclic;
    const back = roundTrip(cyclic) as typeof cyclic;
    assert.equal(back.self, back);
    assert.equal(back.a, back.b);
  });

  it("reads from any Uint8Array view, not only a Buffer", () => {
    const buf = serialize({ a: [1, 2] });
    assert.ok(Buffer.isBuffer(buf));
    assert.deepEqual(deserialize(new Uint8Array(buf)), { a: [1, 2] });
  });
});

describe("parseSize", () => {
  it("reads binary units, with or without B / iB, and bare bytes", () => {
    const K = 1024;
    const cases: [string | number, number][] = [
      ["512M", 512 * K * K],
      ["2G", 2 * K * K * K],
      ["1024M", K * K * K],
      ["64K", 64 * K],
      ["1.5G", 1.5 * K * K * K],
      ["100", 100],
      ["100B", 100],
      ["512MB", 512 * K * K],
      ["2GiB", 2 * K * K * K],
      ["1KiB", K],
      ["1T", K ** 4],
      [" 8 M ", 8 * K * K],
      ["0", 0],
      [4096, 4096],
    ];
    for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, String(text));
  });

  it("refuses anything else, saying what to write", () => {
    const problem = (v: unknown) => sizeProblem(v) ?? "";
    assert.match(problem("512m"), /units are upper case K, M, G or T .*got "512m"; write 512M/);
    assert.match(problem("2gib"), /write 2G/);
    assert.match(
      problem("lots"),
      /expected a size such as 64K, 512M, 1.5G or 2GiB \(binary units: 1K = 1024 bytes\), got "lots"/,
    );
    for (const bad of ["", "M", "-1M", "1e6", "1,5G", "5 MiBs", "1P", "0x10", "1.K", ".5G"])
      assert.match(problem(bad), /expected a size such as/, JSON.stringify(bad));
    assert.match(problem("1.1K"), /"1.1K" is 1126.4 bytes, not a whole number; write 1126 or use a smaller unit/);
    assert.match(problem("8192T"), /too large; write at most 8191T/);
    assert.match(problem(-1), /expected a whole number of bytes or a size such as .*, got -1/);
    assert.match(problem(1.5), /got 1.5/);
    assert.match(problem(true), /expected a size such as .*, got true/);
    assert.equal(sizeProblem("8191T"), null);
  });

  it("throws BAD_REQUEST naming where the size was written", () => {
    assert.throws(
      () => parseSize("12 parsecs", "config/default/compute/caches/results.yaml: max_size"),
      (err: unknown) =>
        err instanceof MachinaError &&
        err.code === "BAD_REQUEST" &&
        err.message.startsWith("config/default/compute/caches/results.yaml: max_size: expected a size such as"),
    );
    assert.throws(() => parseSize("12q"), /^MachinaError: expected a size/);
  });

  it("formats bytes in the largest exact unit", () => {
    assert.deepEqual([512 * 1024 * 1024, 1536 * 1024 * 1024, 1024, 1000, 0].map(formatSize), [
      "512M",
      "1536M",
      "1K",
      "1000",
      "0",
    ]);
  });
});
