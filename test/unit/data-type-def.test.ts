import { test } from "node:test";
import assert from "node:assert/strict";
import { isMachinaError } from "@machina/wire";
import { compileTypeDef, typeDefHash } from "@machina/data";

const website = {
  name: "website",
  key: ["domain"],
  fields: {
    domain: "text",
    title: "text",
    rank: "int",
    visits: "bigint",
    bounce_rate: "double",
    category: "text",
    updated_at: "timestamp",
  },
  merge: {
    default: "latest_non_null",
    visits: "max",
    title: { policy: "source_priority", sources: ["sitestats", "traffic"] },
  },
  dump_ttl: "30d",
  clean_window: "1h",
};

/** Asserts BAD_REQUEST whose message contains every fragment. */
function rejects(raw: unknown, ...fragments: string[]): void {
  assert.throws(
    () => compileTypeDef(raw, "website.yaml"),
    (err: unknown) => {
      assert.ok(isMachinaError(err, "BAD_REQUEST"), `expected BAD_REQUEST, got ${String(err)}`);
      for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
      return true;
    },
  );
}

test("compiles the documented example and resolves defaults", () => {
  const def = compileTypeDef(website, "website.yaml");
  assert.equal(def.name, "website");
  assert.deepEqual(def.key, ["domain"]);
  assert.equal(def.dumpTtlSeconds, 30 * 86400);
  assert.equal(def.cleanWindowSeconds, 3600);
  assert.deepEqual(def.merge.visits, { policy: "max" });
  assert.deepEqual(def.merge.title, { policy: "source_priority", sources: ["sitestats", "traffic"] });
  assert.deepEqual(def.merge.rank, { policy: "latest_non_null" });
  assert.equal("domain" in def.merge, false);
  const minimal = compileTypeDef({ name: "song", key: "isrc", fields: { isrc: "text", plays: "int" } }, "song.yaml");
  assert.equal(minimal.dumpTtlSeconds, 30 * 86400);
  assert.equal(minimal.cleanWindowSeconds, 3600);
  assert.deepEqual(minimal.merge, { plays: { policy: "latest_non_null" } });
});

test("names the origin and the field path of an unknown type", () => {
  rejects(
    { ...website, fields: { ...website.fields, rank: "integr" } },
    'website.yaml: fields.rank: unknown type "integr" (expected one of text, int, bigint, double, boolean, timestamp, json)',
  );
});

test("refuses bad names, keys and reserved columns", () => {
  rejects({ ...website, name: "Web-Site" }, "website.yaml: name:");
  rejects({ ...website, name: "a".repeat(43) }, "name:", "42");
  rejects({ ...website, key: [] }, "key:");
  rejects({ ...website, key: ["domain", "lang"] }, "key[1]", '"lang" is not declared');
  rejects({ ...website, key: ["domain", "domain"] }, "key[1]", "twice");
  rejects({ ...website, fields: { ...website.fields, source: "text" } }, "fields.source", "reserved");
  rejects({ ...website, fields: { ...website.fields, "Bad-Name": "text" } }, "fields.Bad-Name");
  rejects({ ...website, fields: { domain: "json" } }, "key[0]", "json");
  rejects({ ...website, extra: 1 }, "extra: unknown key");
  rejects("nope", "website.yaml: expected a mapping");
});

test("refuses bad merge policies", () => {
  rejects({ ...website, merge: { rank: "avg" } }, "merge.rank", 'unknown policy "avg"');
  rejects({ ...website, merge: { nope: "max" } }, "merge.nope", "not declared");
  rejects({ ...website, merge: { domain: "max" } }, "merge.domain", "key field");
  rejects({ ...website, merge: { title: "max" } }, "merge.title", "max", "text");
  rejects({ ...website, merge: { updated_at: "sum" } }, "merge.updated_at", "sum");
  rejects({ ...website, merge: { title: { policy: "source_priority" } } }, "merge.title.sources");
  rejects({ ...website, merge: { title: { policy: "max", sources: ["a"] } } }, "merge.title");
  rejects({ ...website, merge: { default: "sum" } }, "merge.default", "sum", '"title"');
});

test("parses durations and checks the clean window divides a day", () => {
  const def = compileTypeDef({ ...website, dump_ttl: "90s", clean_window: "15m" }, "website.yaml");
  assert.equal(def.dumpTtlSeconds, 90);
  assert.equal(def.cleanWindowSeconds, 900);
  assert.equal(compileTypeDef({ ...website, dump_ttl: "7d", clean_window: "1d" }, "w.yaml").cleanWindowSeconds, 86400);
  rejects({ ...website, clean_window: "7h" }, "clean_window", "divide a day");
  rejects({ ...website, clean_window: "2d" }, "clean_window");
  rejects({ ...website, dump_ttl: "30 days" }, "dump_ttl");
  rejects({ ...website, dump_ttl: "0d" }, "dump_ttl");
  rejects({ ...website, dump_ttl: "4000d" }, "dump_ttl", "2038");
});

test("the definition hash ignores origin and field order but not meaning", () => {
  const a = compileTypeDef(website, "a.yaml");
  const reordered = compileTypeDef(
    { ...website, fields: Object.fromEntries(Object.entries(website.fields).reverse()) },
    "b.yaml",
  );
  assert.equal(typeDefHash(a), typeDefHash(reordered));
  assert.notEqual(typeDefHash(a), typeDefHash(compileTypeDef({ ...website, dump_ttl: "7d" }, "a.yaml")));
});

test("refuses a bare number as a duration, asking for a unit", () => {
  rejects({ ...website, dump_ttl: 30 }, "website.yaml: dump_ttl:", "bare number 30", "write 30ms or 30s");
  rejects({ ...website, clean_window: 3600 }, "clean_window:", "bare number 3600", "unit");
  rejects({ ...website, dump_ttl: "1500ms" }, "dump_ttl:", "whole number of seconds");
});

test("names follow the one name rule, with a hint for upper case and '-'", () => {
  rejects({ ...website, name: "Website" }, 'website.yaml: name: "Website" is not a name', 'write "website"');
  rejects(
    { ...website, fields: { ...website.fields, Title: "text" } },
    'fields.Title: "Title" is not a name',
    'write "title"',
  );
  rejects(
    { ...website, merge: { title: { policy: "source_priority", sources: ["site-stats"] } } },
    "merge.title.sources[0]",
    'write "site_stats"',
  );
  rejects(
    { ...website, merge: { title: { policy: "source_priority", sources: ["a", "b", "a"] } } },
    "merge.title.sources[2]",
    "twice",
  );
});

test("an unknown key names the nearest known one", () => {
  rejects({ ...website, dump_tll: "7d" }, 'dump_tll: unknown key (did you mean "dump_ttl"?)');
  rejects(
    { ...website, merge: { title: { policy: "source_priority", source: ["a"] } } },
    'merge.title.source: unknown key (did you mean "sources"?)',
  );
});

test("__proto__ and constructor from JSON.parse never reach a prototype", () => {
  const json = (text: string) => JSON.parse(text) as Record<string, unknown>;
  rejects({ ...website, fields: json('{"domain":"text","__proto__":"text"}') }, "fields.__proto__", "reserved");
  rejects({ ...website, merge: json('{"__proto__":{"policy":"max"}}') }, "merge.__proto__", "reserved");
  rejects(
    json('{"name":"t","key":"id","fields":{"id":"text"},"__proto__":{"dump_ttl":"1s"}}'),
    "__proto__",
    "reserved",
  );
  // `constructor` follows the name rule, so it is an ordinary own field, key and merge entry.
  const def = compileTypeDef(
    {
      name: "odd",
      key: json('["id"]'),
      fields: json('{"id":"text","constructor":"int"}'),
      merge: json('{"constructor":"max"}'),
    },
    "odd.yaml",
  );
  assert.deepEqual(Object.keys(def.fields), ["id", "constructor"]);
  assert.deepEqual(def.merge.constructor, { policy: "max" });
  assert.equal(Object.getPrototypeOf(def.fields), Object.prototype);
  assert.equal(Object.getPrototypeOf(def.merge), Object.prototype);
  assert.equal(({} as Record<string, unknown>).policy, undefined);
  assert.equal(({} as Record<string, unknown>).dump_ttl, undefined);
});
