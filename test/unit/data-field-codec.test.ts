import { test } from "node:test";
import assert from "node:assert/strict";
import { isMachinaError } from "@machina/wire";
import {
  compileTypeDef,
  dirtyShardOf,
  DIRTY_SHARDS,
  entityKeyJson,
  keyValues,
  parseEntityKeyJson,
  toCql,
  toPlain,
  dayOf,
  daysBack,
  windowStartOf,
} from "@machina/data";

const at = { type: "website", field: "f", source: "s" };

test("coerces values to the declared types", () => {
  assert.equal(toCql("text", 12, at), "12");
  assert.equal(toCql("int", "42", at), 42);
  assert.equal(toCql("bigint", "9007199254740993", at), 9007199254740993n);
  assert.equal(toCql("bigint", 7, at), 7n);
  assert.equal(toCql("double", "0.5", at), 0.5);
  assert.equal(toCql("boolean", "TRUE", at), true);
  assert.deepEqual(toCql("timestamp", "2024-05-01T10:00:00Z", at), new Date("2024-05-01T10:00:00Z"));
  assert.deepEqual(toCql("timestamp", 0, at), new Date(0));
  assert.equal(toCql("json", { a: [1, "x"] }, at), '{"a":[1,"x"]}');
  assert.equal(toCql("int", null, at), null);
  assert.equal(toCql("text", undefined, at), null);
});

test("a bad value is BAD_REQUEST naming type, source and field", () => {
  for (const [type, value] of [
    ["int", 2 ** 31],
    ["int", 1.5],
    ["int", "x"],
    ["bigint", 1.5],
    ["bigint", "9223372036854775808"],
    ["double", "abc"],
    ["boolean", "yes"],
    ["timestamp", "not a date"],
    ["text", { a: 1 }],
  ] as const) {
    assert.throws(
      () => toCql(type, value, { type: "website", field: "rank", source: "sitestats" }),
      (err: unknown) =>
        isMachinaError(err, "BAD_REQUEST") &&
        err.message.includes('field "rank"') &&
        err.message.includes("website") &&
        err.message.includes("sitestats"),
      `${type} ${String(value)}`,
    );
  }
});

test("plain JSON output: ISO timestamps, bigint as number, parsed json", () => {
  assert.equal(toPlain("timestamp", new Date(0)), "1970-01-01T00:00:00.000Z");
  assert.equal(toPlain("bigint", 12n), 12);
  assert.deepEqual(toPlain("json", '{"a":1}'), { a: 1 });
  assert.equal(toPlain("int", null), null);
});

test("entity keys: required, stable JSON, round trip", () => {
  const def = compileTypeDef(
    { name: "t", key: ["a", "b", "c"], fields: { a: "text", b: "bigint", c: "timestamp", v: "int" } },
    "t.yaml",
  );
  const key = keyValues(def, { c: "2024-01-01T00:00:00Z", b: "9007199254740993", a: "x", v: 1 });
  const json = entityKeyJson(def, key);
  assert.equal(json, '{"a":"x","b":"9007199254740993","c":"2024-01-01T00:00:00.000Z"}');
  assert.deepEqual(parseEntityKeyJson(def, json), key);
  assert.throws(
    () => keyValues(def, { a: "x", b: 1 }, "sitestats"),
    (err: unknown) =>
      isMachinaError(err, "BAD_REQUEST") &&
      /key field "c" is missing/.test(err.message) &&
      /sitestats/.test(err.message),
  );
  assert.throws(() => keyValues(def, { a: "", b: 1, c: 0 }), /key field "a" is empty/);
  const shard = dirtyShardOf(json);
  assert.ok(shard >= 0 && shard < DIRTY_SHARDS);
  assert.equal(dirtyShardOf(json), shard);
});

test("time windows are UTC and aligned", () => {
  const t = Date.parse("2024-03-10T23:59:59.999Z");
  assert.equal(dayOf(t), "2024-03-10");
  assert.equal(windowStartOf(t, 3600), Date.parse("2024-03-10T23:00:00Z"));
  assert.equal(windowStartOf(t, 900), Date.parse("2024-03-10T23:45:00Z"));
  assert.deepEqual(daysBack(t, 3), ["2024-03-10", "2024-03-09", "2024-03-08"]);
});
