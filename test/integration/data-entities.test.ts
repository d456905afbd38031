// The entity index against a real Cassandra: listing every key of a type page by page, reads and
// counts that walk only the days the index names, and rows stored before the index existed.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type cassandra from "cassandra-driver";
import { isMachinaError } from "@machina/wire";
import { CQL_CONTACT_POINTS, adminCqlClient } from "../support/cassandra-env";
import {
  DataLayer,
  ENTITY_BUCKETS,
  compileTypeDef,
  entityBucketOf,
  type DataLayerOptions,
  type DumpRow,
} from "@machina/data";

const contactPoints = CQL_CONTACT_POINTS;
const keyspace = `machina_ent_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const DAY = 86_400_000;
const now = Date.now();

const typeDef = (name: string) =>
  compileTypeDef(
    {
      name,
      key: name.startsWith("pair") ? ["domain", "lang"] : ["domain"],
      fields: { domain: "text", lang: "text", title: "text" },
      merge: { default: "latest_non_null" },
      dump_ttl: "30d",
      clean_window: "1h",
    },
    `${name}.yaml`,
  );

let admin: cassandra.Client;
let localDataCenter = "datacenter1";
const open: DataLayer[] = [];

async function layerOf(...types: string[]): Promise<DataLayer> {
  const opts: DataLayerOptions = {
    contactPoints,
    localDataCenter,
    keyspace,
    replication: { [localDataCenter]: 1 },
    types: types.map(typeDef),
  };
  const l = await DataLayer.open(opts);
  open.push(l);
  return l;
}

const row = (domain: string, fetchedAt: number, title = "t"): DumpRow => ({
  fetchedAt,
  source: "s",
  query: "q",
  taskId: `${domain}@${fetchedAt}`,
  record: { domain, title },
});

// A dump row written behind the data layer's back, as rows stored before the index existed are.
async function rawDumpRow(type: string, domain: string, fetchedAt: number): Promise<void> {
  await admin.execute(
    `INSERT INTO ${keyspace}.dump_${type} (domain, day, fetched_at, source, query, seq, task_id, title) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    [domain, new Date(fetchedAt).toISOString().slice(0, 10), new Date(fetchedAt), "s", "q", 0, "raw", "raw"],
    { prepare: true },
  );
}

describe("entity index", () => {
  before(async () => {
    ({ client: admin, localDataCenter } = await adminCqlClient());
  });

  after(async () => {
    for (const l of open) await l.close();
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin?.shutdown();
  });

  it("data.keys pages through 5,000 entities: every key once, then an empty next", async () => {
    const layer = await layerOf("site");
    const domains = Array.from({ length: 5000 }, (_, i) => `d${i}.keys`);
    for (let i = 0; i < domains.length; i += 500) {
      await layer.writeDump(
        "site",
        domains.slice(i, i + 500).map((d) => row(d, now - 60_000)),
      );
    }
    const seen: string[] = [];
    let page = "";
    let pages = 0;
    do {
      const p = await layer.keys("site", { limit: 700, page });
      assert.ok(p.keys.length <= 700);
      for (const k of p.keys) seen.push(String(k.domain));
      page = p.next;
      pages++;
      assert.ok(pages < 50, "paging ends");
    } while (page !== "");
    assert.equal(seen.length, 5000, "every key");
    assert.equal(new Set(seen).size, 5000, "each once");
    assert.deepEqual(new Set(seen), new Set(domains));
    assert.ok(pages >= 8, `pages of at most 700 (${pages})`);

    assert.equal((await layer.keys("site", {})).keys.length, 100, "default page size");
    for (const [opts, field] of [
      [{ limit: 1001 }, "limit"],
      [{ limit: -1 }, "limit"],
      [{ page: "not a token" }, "page"],
    ] as const) {
      await assert.rejects(
        layer.keys("site", opts),
        (e: unknown) => isMachinaError(e, "BAD_REQUEST") && e.details.field === field,
      );
    }
    await assert.rejects(layer.keys("nosuch", {}), (e: unknown) => isMachinaError(e, "NOT_FOUND"));
  });

  it("reads and counts walk only the days the index names, once it names every day", async () => {
    const layer = await layerOf("site");
    await layer.writeDump("site", [row("days.example", now - DAY), row("days.example", now - 3 * DAY)]);
    assert.equal(await layer.count("dump", "site", { domain: "days.example" }), 2);
    const read = await layer.read("dump", "site", { criteria: { domain: "days.example" } });
    assert.deepEqual(
      read.map((r) => new Date(r.fetched_at as string).getTime()),
      [now - DAY, now - 3 * DAY],
      "newest first, across the indexed days",
    );
    // A row the index does not know of is not looked for: the index is what the read walks.
    await rawDumpRow("site", "days.example", now - 2 * DAY);
    assert.equal(await layer.count("dump", "site", { domain: "days.example" }), 2);
    // An entity the index does not know at all is looked for on every day.
    await rawDumpRow("site", "unindexed.example", now - 5 * DAY);
    assert.equal(await layer.count("dump", "site", { domain: "unindexed.example" }), 1);
  });

  it("one write of many entities over several days records each entity's own days, for one- and two-field keys", async () => {
    const layer = await layerOf("bulk", "pair");
    // 130 entities (three statements of one day's keys for a one-field key), each with a row on
    // two days, in one write.
    const domains = Array.from({ length: 130 }, (_, i) => `e${i}.bulk`);
    const rows = domains.flatMap((d) => [row(d, now - DAY), row(d, now - 3 * DAY)]);
    await layer.writeDump("bulk", rows);
    const page = await layer.keys("bulk", { limit: 1000 });
    assert.deepEqual(new Set(page.keys.map((k) => k.domain)), new Set(domains), "every entity listed");
    // A row on a day the index does not name for that entity is not looked for: had the index
    // named the wrong days, or another entity's, these counts would differ.
    await rawDumpRow("bulk", "e77.bulk", now - 2 * DAY);
    for (const d of ["e0.bulk", "e49.bulk", "e50.bulk", "e77.bulk", "e129.bulk"])
      assert.equal(await layer.count("dump", "bulk", { domain: d }), 2, d);
    const read = await layer.read("dump", "bulk", { criteria: { domain: "e77.bulk" } });
    assert.deepEqual(
      read.map((r) => new Date(r.fetched_at as string).getTime()),
      [now - DAY, now - 3 * DAY],
    );

    const pairs = Array.from({ length: 60 }, (_, i) => ({ domain: `p${i % 20}.pair`, lang: `l${Math.floor(i / 20)}` }));
    await layer.writeDump(
      "pair",
      pairs.flatMap((k) => [
        { ...row(k.domain, now - DAY), record: { ...k, title: "t" } },
        { ...row(k.domain, now - 2 * DAY), record: { ...k, title: "t" } },
      ]),
    );
    const listed = await layer.keys("pair", { limit: 1000 });
    assert.equal(listed.keys.length, 60);
    assert.deepEqual(
      new Set(listed.keys.map((k) => `${k.domain}/${k.lang}`)),
      new Set(pairs.map((k) => `${k.domain}/${k.lang}`)),
    );
    assert.equal(await layer.count("dump", "pair", { domain: "p7.pair", lang: "l2" }), 2);

    // Entities share the index's few partitions, each in the bucket its key hashes to: a read by
    // key looks only there, and a stored batch's entities cost a mutation per bucket, not each.
    const stored = await admin.execute(`SELECT bucket, domain FROM ${keyspace}.entity_index_bulk`);
    assert.equal(stored.rows.length, 130);
    for (const r of stored.rows)
      assert.equal(r.get("bucket"), entityBucketOf(JSON.stringify({ domain: r.get("domain") as string })));
    const buckets = new Set(stored.rows.map((r) => r.get("bucket") as number));
    assert.ok(buckets.size <= ENTITY_BUCKETS && buckets.size > ENTITY_BUCKETS / 2, `${buckets.size} buckets`);
  });

  it("rows stored before the index existed are still found, by walking every day", async () => {
    const first = await layerOf("legacy");
    await first.close();
    // Make the keyspace look like one from before the index: no entities table, and a history
    // whose only version made the dump and clean tables.
    await admin.execute(`DROP TABLE ${keyspace}.entity_index_legacy`);
    const h = await admin.execute(
      `SELECT version, hash, definition, origin FROM ${keyspace}.schema_history WHERE type = ?`,
      ["legacy"],
    );
    const v1 = h.first();
    await admin.execute(`DELETE FROM ${keyspace}.schema_history WHERE type = ?`, ["legacy"], { prepare: true });
    await admin.execute(
      `INSERT INTO ${keyspace}.schema_history (type, version, hash, definition, origin, cql, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [
        "legacy",
        1,
        v1.get("hash"),
        v1.get("definition"),
        v1.get("origin"),
        `CREATE TABLE IF NOT EXISTS ${keyspace}.dump_legacy (...);\nCREATE TABLE IF NOT EXISTS ${keyspace}.clean_legacy (...)`,
        new Date(now - 10 * DAY),
      ],
      { prepare: true },
    );
    await rawDumpRow("legacy", "old.example", now - 4 * DAY);

    const layer = await layerOf("legacy");
    assert.deepEqual(
      layer.schema.applied.map((c) => [c.type, c.version, c.statements.some((s) => s.includes("entity_index_legacy"))]),
      [["legacy", 2, true]],
      "the index is added as a new version",
    );
    await layer.writeDump("legacy", [row("old.example", now - DAY)]);
    assert.equal(
      await layer.count("dump", "legacy", { domain: "old.example" }),
      2,
      "the new row and the one from before the index",
    );
    const history = await layer.schemaHistory("legacy");
    assert.deepEqual(
      history.map((h) => h.version),
      [2, 1],
      "newest first",
    );
    assert.match(history[0].cql, /CREATE TABLE IF NOT EXISTS \S+\.entity_index_legacy/);
    assert.deepEqual((history[0].definition as { key: string[] }).key, ["domain"]);
    assert.ok(history[0].appliedAt >= history[1].appliedAt);
    await assert.rejects(layer.schemaHistory("nosuch"), (e: unknown) => isMachinaError(e, "NOT_FOUND"));
  });
  it("records undeclared fields per type: first seen once across replicas, last seen, JSON type, never the value", async () => {
    const a = await layerOf("drifty", "site");
    const b = await layerOf("drifty");
    const t0 = Date.now();
    await a.writeDump("drifty", [
      { ...row("x.drift", now), record: { domain: "x.drift", title: "t", country: "NL", tags: ["a"] } },
    ]);
    const first = await a.drift("drifty");
    assert.deepEqual(
      first.map((f) => [f.field, f.exampleType]),
      [
        ["country", "string"],
        ["tags", "array"],
      ],
    );
    for (const f of first) assert.ok(f.firstSeen >= t0 - 1000 && f.lastSeen >= f.firstSeen, JSON.stringify(f));
    // Another replica seeing the same field later keeps the first-seen time.
    await new Promise((r) => setTimeout(r, 20));
    await b.writeDump("drifty", [{ ...row("y.drift", now), record: { domain: "y.drift", country: 31 } }]);
    const second = await b.drift("drifty");
    const country = second.find((f) => f.field === "country")!;
    assert.equal(country.firstSeen, first.find((f) => f.field === "country")!.firstSeen);
    assert.equal(country.exampleType, "number", "the newest value's type");
    assert.ok(country.lastSeen > country.firstSeen);
    assert.deepEqual(await a.drift("site"), [], "other types are not affected");
  });
});
