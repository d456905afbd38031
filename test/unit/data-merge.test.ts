import { test } from "node:test";
import assert from "node:assert/strict";
import { compileTypeDef, mergeRows, type MergeRow } from "@machina/data";

const def = compileTypeDef(
  {
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
      tags: "json",
    },
    merge: {
      default: "latest_non_null",
      category: "latest",
      title: { policy: "source_priority", sources: ["sitestats", "traffic"] },
      visits: "max",
      rank: "min",
      bounce_rate: "sum",
      tags: "first_non_null",
    },
  },
  "website.yaml",
);

const row = (fetchedAt: number, source: string, values: Record<string, unknown>, query = "q"): MergeRow => ({
  fetchedAt,
  source,
  query,
  values,
});

test("latest_non_null takes the newest non-null value and its source", () => {
  const r = mergeRows(def, [
    row(1000, "a", { updated_at: new Date(5) }),
    row(3000, "b", { updated_at: null }),
    row(2000, "c", { updated_at: new Date(7) }),
  ]);
  assert.deepEqual(r.values.updated_at, new Date(7));
  assert.equal(r.provenance.updated_at, "c");
});

test("latest takes the newest row even when its value is null", () => {
  const r = mergeRows(def, [row(1000, "a", { category: "news" }), row(2000, "b", { category: null })]);
  assert.equal(r.values.category, null);
  assert.equal(r.provenance.category, "b");
  const r2 = mergeRows(def, [row(3000, "a", { category: "news" }), row(2000, "b", { category: "blog" })]);
  assert.equal(r2.values.category, "news");
});

test("source_priority takes the first listed source with a value, then the latest of the others", () => {
  const rows = [
    row(1000, "traffic", { title: "T-old" }),
    row(4000, "traffic", { title: "T-new" }),
    row(2000, "sitestats", { title: "S" }),
    row(5000, "crawler", { title: "C" }),
  ];
  assert.equal(mergeRows(def, rows).values.title, "S");
  assert.equal(mergeRows(def, rows).provenance.title, "sitestats");
  const noSitestats = rows.filter((r) => r.source !== "sitestats");
  assert.equal(mergeRows(def, noSitestats).values.title, "T-new");
  // Neither listed source has a value: fall back to the latest non-null of any source.
  const fallback = mergeRows(def, [row(1000, "sitestats", { title: null }), row(5000, "crawler", { title: "C" })]);
  assert.equal(fallback.values.title, "C");
  assert.equal(fallback.provenance.title, "crawler");
});

test("max and min ignore nulls, keep exact bigints, and prefer the newest on ties", () => {
  const r = mergeRows(def, [
    row(1000, "a", { visits: 9007199254740993n, rank: 5 }),
    row(2000, "b", { visits: 12n, rank: 3 }),
    row(3000, "c", { visits: null, rank: 3 }),
  ]);
  assert.equal(r.values.visits, 9007199254740993n);
  assert.equal(r.provenance.visits, "a");
  assert.equal(r.values.rank, 3);
  assert.equal(r.provenance.rank, "c");
});

test("sum adds non-null values and names every contributing source", () => {
  const r = mergeRows(def, [
    row(1000, "b", { bounce_rate: 0.25 }),
    row(2000, "a", { bounce_rate: 0.5 }),
    row(3000, "c", { bounce_rate: null }),
  ]);
  assert.equal(r.values.bounce_rate, 0.75);
  assert.equal(r.provenance.bounce_rate, "a,b");
  const big = compileTypeDef(
    { name: "t", key: "k", fields: { k: "text", n: "bigint" }, merge: { n: "sum" } },
    "t.yaml",
  );
  assert.equal(mergeRows(big, [row(1, "a", { n: 2n ** 60n }), row(2, "a", { n: 1n })]).values.n, 2n ** 60n + 1n);
});

test("first_non_null takes the oldest non-null value", () => {
  const r = mergeRows(def, [
    row(3000, "c", { tags: '["x"]' }),
    row(1000, "a", { tags: null }),
    row(2000, "b", { tags: '["y"]' }),
  ]);
  assert.equal(r.values.tags, '["y"]');
  assert.equal(r.provenance.tags, "b");
});

test("a field no row has is null and has no provenance", () => {
  const r = mergeRows(def, [row(1000, "a", { title: "x" })]);
  assert.equal(r.values.rank, null);
  assert.equal("rank" in r.provenance, false);
  assert.deepEqual(mergeRows(def, []), {
    values: Object.fromEntries(Object.keys(def.merge).map((f) => [f, null])),
    provenance: {},
  });
});

test("the result does not depend on row order, even on fetchedAt ties", () => {
  const rows = [
    row(1000, "b", { category: "from-b", title: "B" }, "q1"),
    row(1000, "a", { category: "from-a", title: "A" }, "q1"),
    row(1000, "a", { category: "from-a2", title: "A2" }, "q2"),
  ];
  const forward = mergeRows(def, rows);
  const backward = mergeRows(def, [...rows].reverse());
  assert.deepEqual(forward, backward);
});
