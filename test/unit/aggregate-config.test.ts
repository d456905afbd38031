// Covers @machina/aggregate's config and routing without servers: every kind's file validated
// with errors that name the file, the field and what to write; the key taken from the data type;
// and a batch split by key into partitions, keeping its rows, with bad records refused by index.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ComponentDoc } from "@machina/config";
import { compileAggregators, makeKind, partitionOf, recordKey, routeBatch } from "@machina/aggregate";
import { isMachinaError } from "@machina/wire";

const doc = (name: string, d: Record<string, unknown>, origin = `aggregators/${name}.yaml`): ComponentDoc => ({
  name,
  origins: [origin],
  doc: d,
});
const website = doc("website", { key: ["domain"], fields: { domain: "text" } }, "data/types/website.yaml");

function refused(d: Record<string, unknown>, pattern: RegExp): void {
  assert.throws(
    () => compileAggregators([doc("t", d)], [website]),
    (e) => isMachinaError(e, "BAD_REQUEST") && pattern.test(e.message),
  );
}

describe("aggregator files", () => {
  it("compiles every kind, defaults included, and takes the key from the data type when the file names none", () => {
    const table = compileAggregators(
      [
        doc("website", { aggregator: "forward_fill" }),
        doc("w", { aggregator: "window", key: "id", size: "1h", fields: { v: "mean" } }),
        doc("m", { aggregator: "merge_partials", key: ["a", "b"], required: ["x"], timeout: "30s", partitions: 4 }),
        doc("p", {}),
      ],
      [website],
    );
    assert.deepEqual(Object.fromEntries(table.kinds()), {
      website: "forward_fill",
      w: "window",
      m: "merge_partials",
      p: "passthrough",
    });
    const byType = new Map(table.stateful().map((a) => [a.type, a]));
    assert.deepEqual(byType.get("website")!.key, ["domain"], "from data/types/website.yaml");
    assert.deepEqual(byType.get("m")!.key, ["a", "b"]);
    assert.equal(byType.get("m")!.partitions, 4);
    assert.equal(byType.get("w")!.partitions, 1);
    const w = byType.get("w")!.spec;
    assert.ok(w.aggregator === "window" && w.allowed_lateness === 0 && w.late === "drop");
  });

  it("refuses what cannot work, naming the file, the field and the fix", () => {
    refused(
      { aggregator: "window", size: "1h", fields: { v: "sum" } },
      /t\.yaml: key: a window aggregator keeps state per entity/,
    );
    refused(
      { aggregator: "window", key: "id", size: "1h", fields: { v: "avg" } },
      /fields\.v: expected one of mean, sum, min, max, first, last, count, got "avg"/,
    );
    refused({ aggregator: "window", key: "id", size: "1h", fields: {} }, /fields: give at least one field its reducer/);
    refused(
      { aggregator: "window", key: "id", size: "1h", hop: "2h", fields: { v: "sum" } },
      /hop: 2h is longer than size 1h/,
    );
    refused({ aggregator: "window", key: "id", size: "1h", hop: "1s", fields: { v: "sum" } }, /size \/ hop is 3600/);
    refused(
      { aggregator: "window", key: "id", size: "1h", keep_closed: "1h", fields: { v: "sum" } },
      /keep_closed: only applies with late: correct/,
    );
    refused({ aggregator: "window", key: "id", size: "1h", fields: { id: "last" } }, /fields\.id: is a key field/);
    refused(
      { aggregator: "window", key: "id", size: "1h", fields: { v: "sum" }, allowed_lateness: 5 },
      /allowed_lateness: expected a duration with a unit/,
    );
    refused(
      { aggregator: "merge_partials", key: "id", required: [], timeout: "1s" },
      /required: name the fields a complete record has/,
    );
    refused({ aggregator: "merge_partials", key: "id", required: ["a"] }, /timeout: is required/);
    refused(
      { aggregator: "forward_fill", key: "id", partitions: 0 },
      /partitions: expected an integer from 1 to 256, got 0/,
    );
    refused({ aggregator: "forward_fill", key: ["id", "id"] }, /key: lists a field twice/);
    refused({ aggregator: "passthrough", partitions: 2 }, /partitions: unknown key; expected one of aggregator/);
    refused({ aggregator: "window", key: "id", size: "1h", fields: { v: "sum" }, windw: 1 }, /windw: unknown key/);
  });
});

describe("routing by key", () => {
  const table = compileAggregators(
    [doc("w", { aggregator: "window", key: "id", time_field: "at", size: "1m", fields: { v: "sum" }, partitions: 4 })],
    [],
  );
  const agg = table.stateful()[0];
  const kind = makeKind(agg);

  it("hashes a key to the same partition every time, and different keys apart", () => {
    const a = recordKey({ id: "x", v: 1 }, ["id"], 0);
    const b = recordKey({ v: 2, id: "x" }, ["id"], 0);
    assert.ok("hash" in a && "hash" in b);
    assert.equal(a.keyId, b.keyId);
    assert.match(a.keyId, /^[A-Za-z0-9_-]{22}$/);
    const parts = new Set(
      Array.from({ length: 64 }, (_, i) =>
        partitionOf((recordKey({ id: `k${i}` }, ["id"], 0) as { hash: number }).hash, 4),
      ),
    );
    assert.equal(parts.size, 4, "64 keys reach all 4 partitions");
  });

  it("splits a batch into runs of one partition that keep their rows, and refuses records without a key or time by index", () => {
    const records = Array.from({ length: 12 }, (_, i) => ({ id: `k${i % 5}`, at: 1000 + i, v: i }));
    records[4] = { at: 1, v: 1 } as never;
    records[7] = { id: "k2", at: "never", v: 1 } as never;
    const batch = { id: "b1", type: "w", source: "s", query: "q", taskId: "t", fetchedAt: 5, records, firstSeq: 10 };
    const routed = routeBatch(batch, agg, kind);
    assert.deepEqual(
      routed.refused.map((r) => [r.index, r.error.code, r.alone.firstSeq]),
      [
        [4, "BAD_REQUEST", 14],
        [7, "BAD_REQUEST", 17],
      ],
    );
    assert.match(
      routed.refused[0].error.message,
      /record 4: key field id needs a text, number or boolean value, got nothing/,
    );
    // Every accepted record is in exactly one part, at its own row.
    const rows = routed.parts.flatMap((p) => p.batch.records.map((r, i) => [p.batch.firstSeq + i, r.v]));
    assert.deepEqual(
      rows.sort((x, y) => Number(x[0]) - Number(y[0])),
      records.flatMap((r, i) => (i === 4 || i === 7 ? [] : [[10 + i, r.v]])),
    );
    for (const p of routed.parts) {
      assert.equal(p.batch.id, `b1@${p.batch.firstSeq - 10}`);
      for (const r of p.batch.records)
        assert.equal(partitionOf((recordKey(r, ["id"], 0) as { hash: number }).hash, 4), p.partition);
    }
    const whole = routeBatch({ ...batch, records: [records[0], records[5]] }, agg, kind);
    assert.deepEqual(
      whole.parts.map((p) => [p.batch.id, p.batch.firstSeq]),
      [["b1", 10]],
      "a batch of one partition keeps its id",
    );
  });
});
