// Needs a Cassandra (or ScyllaDB) node on 127.0.0.1:$MACHINA_CQL_PORT (default 9042), e.g. test/harness/cassandra.sh start.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type cassandra from "cassandra-driver";
import { isMachinaError, type ErrorCode } from "@machina/wire";
import { CQL_CONTACT_POINTS, adminCqlClient } from "../support/cassandra-env";
import { DataLayer, compileTypeDef, type DataLayerOptions, type DumpRow } from "@machina/data";

const contactPoints = CQL_CONTACT_POINTS;
const keyspace = `machina_it_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const HOUR = 3_600_000;
// A closed window two hours back: inside every read horizon, untouched by the clock during the run.
const windowStart = Math.floor((Date.now() - 2 * HOUR) / HOUR) * HOUR;
const at = (minutes: number): number => windowStart + minutes * 60_000;

const websiteV1 = {
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
    meta: "json",
  },
  merge: {
    default: "latest_non_null",
    visits: "max",
    rank: "min",
    category: "latest",
    title: { policy: "source_priority", sources: ["sitestats", "traffic"] },
  },
  dump_ttl: "30d",
  clean_window: "1h",
};
const websiteV2 = { ...websiteV1, fields: { ...websiteV1.fields, country: "text" } };

let admin: cassandra.Client;
let localDataCenter = "datacenter1";
let layer: DataLayer;

function options(raw: object): DataLayerOptions {
  return {
    contactPoints,
    localDataCenter,
    keyspace,
    replication: { [localDataCenter]: 1 },
    types: [compileTypeDef(raw, "website.yaml")],
  };
}

async function assertRejects(p: Promise<unknown>, code: ErrorCode, ...fragments: string[]): Promise<string> {
  let message = "";
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isMachinaError(err, code), `expected ${code}, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
    message = err.message;
    return true;
  });
  return message;
}

// Windows of a.com with a dirty mark, from a whole-table scan (the test keyspace is small).
async function dirtyMarks(): Promise<string[]> {
  const key = JSON.stringify({ domain: "a.com" });
  const rs = await admin.execute(`SELECT type, key, window_start FROM ${keyspace}.dirty_marks`);
  const windows = rs.rows
    .filter((r) => r.get("type") === "website" && r.get("key") === key)
    .map((r) => (r.get("window_start") as Date).toISOString());
  return [...new Set(windows)];
}

before(async () => {
  ({ client: admin, localDataCenter } = await adminCqlClient());
});

after(async () => {
  await layer?.close();
  await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await admin?.shutdown();
});

test("schema: creation, idempotent re-run, additive change, refused breaking changes", async () => {
  const first = await DataLayer.open(options(websiteV1));
  assert.deepEqual(
    first.schema.applied.map((c) => [c.type, c.version]),
    [["website", 1]],
  );
  await first.close();
  const tables = await admin.execute(
    "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
    [keyspace],
    {
      prepare: true,
    },
  );
  assert.deepEqual(tables.rows.map((r) => r.get("table_name") as string).sort(), [
    "clean_failed",
    "clean_website",
    "dirty_cursor",
    "dirty_marks",
    "drift",
    "dump_website",
    "entity_index_website",
    "manual_website",
    "schema_history",
  ]);

  const again = await DataLayer.open(options(websiteV1));
  assert.deepEqual(again.schema.applied, []);
  assert.deepEqual(again.schema.unchanged, ["website"]);
  await again.close();

  layer = await DataLayer.open(options(websiteV2));
  assert.equal(layer.schema.applied.length, 1);
  assert.equal(layer.schema.applied[0].version, 2);
  assert.deepEqual(layer.schema.applied[0].statements, [
    `ALTER TABLE ${keyspace}.dump_website ADD "country" text`,
    `ALTER TABLE ${keyspace}.clean_website ADD "country" text`,
  ]);
  const history = await admin.execute(
    `SELECT version, hash, cql FROM ${keyspace}.schema_history WHERE type = ?`,
    ["website"],
    { prepare: true },
  );
  assert.deepEqual(
    history.rows.map((r) => r.get("version") as number),
    [2, 1],
    "newest version first",
  );
  assert.match(history.rows[1].get("cql") as string, /CREATE TABLE IF NOT EXISTS/);

  // A TTL change alters table options; a merge-only change is recorded without DDL.
  await layer.close();
  const shorterTtl = { ...websiteV2, dump_ttl: "7d" };
  const v3 = await DataLayer.open(options(shorterTtl));
  assert.equal(v3.schema.applied[0].version, 3);
  assert.match(
    v3.schema.applied[0].statements.join(),
    /ALTER TABLE \S+\.dump_website WITH default_time_to_live = 604800/,
  );
  await v3.close();
  const ttl = await admin.execute(
    "SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
    [keyspace, "dump_website"],
    { prepare: true },
  );
  assert.equal(ttl.first().get("default_time_to_live"), 604800);
  layer = await DataLayer.open(options({ ...shorterTtl, merge: { ...shorterTtl.merge, meta: "first_non_null" } }));
  assert.deepEqual(layer.schema.applied, [{ type: "website", version: 4, statements: [] }]);

  const changedType = { ...websiteV2, fields: { ...websiteV2.fields, rank: "bigint" } };
  await assertRejects(
    DataLayer.open(options(changedType)),
    "CONFLICT",
    '"rank" changed type from int to bigint',
    "new type name",
  );
  const { country: _dropped, ...fewerFields } = websiteV2.fields;
  await assertRejects(
    DataLayer.open(options({ ...websiteV2, fields: fewerFields })),
    "CONFLICT",
    '"country" was removed',
  );
  await assertRejects(DataLayer.open(options({ ...websiteV2, key: ["domain", "country"] })), "CONFLICT", "key changed");
  const columns = await admin.execute(
    "SELECT column_name, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?",
    [keyspace, "dump_website"],
    { prepare: true },
  );
  assert.equal(
    columns.rows.find((r) => r.get("column_name") === "rank")?.get("type"),
    "int",
    "refused change left the table alone",
  );
});

const dumpRows: DumpRow[] = [
  {
    fetchedAt: at(5),
    source: "sitestats",
    query: "overview",
    taskId: "t1",
    record: {
      domain: "a.com",
      title: "A (sitestats)",
      rank: 7,
      visits: 100,
      bounce_rate: 0.4,
      category: "news",
      meta: { tags: ["x"] },
      junk: 1,
    },
  },
  {
    fetchedAt: at(20),
    source: "traffic",
    query: "daily",
    taskId: "t2",
    record: {
      domain: "a.com",
      title: "A (traffic)",
      rank: 3,
      visits: "9007199254740993",
      category: null,
      updated_at: "2024-05-01T00:00:00Z",
    },
  },
  {
    fetchedAt: at(10),
    source: "traffic",
    query: "hourly",
    taskId: "t3",
    record: { domain: "a.com", title: null, rank: 9, visits: 50, bounce_rate: 0.5, category: "blog" },
  },
];

test("writeDump: stores rows, counts ignored fields, redelivery rewrites the same rows", async () => {
  assert.deepEqual(await layer.writeDump("website", dumpRows), { written: 3, ignoredFields: 1 });
  assert.equal(await layer.count("dump", "website", { domain: "a.com" }), 3);
  await layer.writeDump("website", dumpRows);
  assert.equal(await layer.count("dump", "website", { domain: "a.com" }), 3);
  assert.deepEqual(await dirtyMarks(), [new Date(windowStart).toISOString()]);
});

test("writeDump: missing key field and bad values are BAD_REQUEST naming the field", async () => {
  const bad = (record: Record<string, unknown>): DumpRow[] => [
    { fetchedAt: at(1), source: "sitestats", query: "q", taskId: "t", record },
  ];
  await assertRejects(
    layer.writeDump("website", bad({ title: "x" })),
    "BAD_REQUEST",
    '"domain"',
    "website",
    "sitestats",
  );
  await assertRejects(layer.writeDump("website", bad({ domain: "b.com", rank: "high" })), "BAD_REQUEST", '"rank"');
  await assertRejects(layer.writeDump("nope", bad({ domain: "b.com" })), "NOT_FOUND", "website");
  assert.equal(await layer.count("dump", "website", { domain: "b.com" }), 0);
});

test("clean job merges two sources by policy; a mark written after the read survives", async () => {
  assert.deepEqual(await dirtyMarks(), [new Date(windowStart).toISOString()]);
  const first = await layer.runClean();
  assert.equal(first.entities, 1);
  assert.equal(first.rows, 3);
  assert.equal(first.failed, 0);
  const clean = await layer.readOne("clean", "website", { domain: "a.com" });
  assert.equal(clean.title, "A (sitestats)", "source_priority prefers sitestats over the newer traffic row");
  assert.equal(clean.visits, Number(9007199254740993n), "max over bigint");
  assert.equal(clean.rank, 3, "min");
  assert.equal(clean.category, null, "latest keeps the newest row's null");
  assert.equal(clean.bounce_rate, 0.5, "latest_non_null");
  assert.deepEqual(clean.meta, { tags: ["x"] });
  assert.equal(clean.updated_at, "2024-05-01T00:00:00.000Z");
  assert.equal(clean.window_start, new Date(windowStart).toISOString());
  assert.equal(clean.sources, 2);
  assert.deepEqual(clean.provenance, {
    title: "sitestats",
    visits: "traffic",
    rank: "traffic",
    category: "traffic",
    bounce_rate: "traffic",
    meta: "sitestats",
    updated_at: "traffic",
  });
  // Merged marks stay in their slot until it closes, but a run never merges them twice.
  assert.equal((await layer.runClean()).entities, 0, "merged once");

  await layer.writeDump("website", [
    { fetchedAt: at(30), source: "traffic", query: "daily", taskId: "t4", record: { domain: "a.com", visits: 1 } },
  ]);
  let interleaved = false;
  const second = await layer.runClean({
    onMerged: async () => {
      if (interleaved) return;
      interleaved = true;
      // Lands between this run's read of the mark and its delete.
      await layer.writeDump("website", [
        {
          fetchedAt: at(40),
          source: "sitestats",
          query: "late",
          taskId: "t5",
          record: { domain: "a.com", category: "late" },
        },
      ]);
    },
  });
  assert.equal(second.entities, 1);
  assert.equal(second.rows, 4);
  assert.equal((await layer.readOne("clean", "website", { domain: "a.com" })).category, null);

  const third = await layer.runClean();
  assert.equal(third.entities, 1);
  assert.equal(third.rows, 5);
  assert.equal(
    (await layer.readOne("clean", "website", { domain: "a.com" })).category,
    "late",
    "the late mark was kept",
  );
  assert.deepEqual(await layer.runClean(), {
    entities: 0,
    rows: 0,
    failed: 0,
    parked: 0,
    errors: [],
    oldestWindowStart: null,
  });
});

test("CRUD: read, readOne, count, update, delete and unknown type", async () => {
  const rows = await layer.read("dump", "website", { criteria: { domain: "a.com" } });
  assert.deepEqual(
    rows.map((r) => r.task_id),
    ["t5", "t4", "t2", "t3", "t1"],
    "newest first",
  );
  assert.equal(rows[2].visits, Number(9007199254740993n));
  assert.equal(rows[2].fetched_at, new Date(at(20)).toISOString());
  assert.deepEqual(rows[4].meta, { tags: ["x"] });
  const page = await layer.read("dump", "website", { criteria: { domain: "a.com" }, offset: 1, limit: 2 });
  assert.deepEqual(
    page.map((r) => r.task_id),
    ["t4", "t2"],
  );
  const fromTraffic = await layer.read("dump", "website", { criteria: { domain: "a.com", source: "traffic" } });
  assert.deepEqual(
    fromTraffic.map((r) => r.task_id),
    ["t4", "t2", "t3"],
  );
  assert.equal(await layer.count("dump", "website", { domain: "a.com", source: "sitestats" }), 2);
  assert.equal((await layer.readOne("dump", "website", { domain: "a.com" })).task_id, "t5");
  await assertRejects(layer.read("dump", "website", { criteria: { title: "x" } }), "BAD_REQUEST", "full key", "domain");
  await assertRejects(
    layer.read("dump", "website", { criteria: { domain: "a.com" }, limit: 1001 }),
    "BAD_REQUEST",
    "limit",
  );
  await assertRejects(
    layer.read("clean", "website", { criteria: { domain: "a.com", nope: 1 } }),
    "BAD_REQUEST",
    '"nope"',
  );

  const updated = await layer.update("clean", "website", { domain: "a.com" }, { title: "Edited", rank: 1 });
  assert.equal(updated.title, "Edited");
  assert.equal(updated.rank, 1);
  assert.equal(updated.visits, Number(9007199254740993n), "unaltered fields keep their value");
  assert.equal((updated.provenance as Record<string, string>).title, "manual");
  assert.equal(await layer.count("clean", "website", { domain: "a.com" }), 1);
  await assertRejects(layer.update("clean", "website", { domain: "zzz.com" }, { title: "x" }), "NOT_FOUND", "zzz.com");
  await assertRejects(layer.update("dump", "website", { domain: "a.com" }, { title: "x" }), "BAD_REQUEST", "dump");
  await assertRejects(
    layer.update("clean", "website", { domain: "a.com" }, { domain: "b.com" }),
    "BAD_REQUEST",
    "key field",
  );

  assert.deepEqual(await layer.create("clean", "website", [{ domain: "c.com", title: "C", extra: 1 }]), {
    written: 1,
    ignoredFields: 1,
  });
  const c = await layer.readOne("clean", "website", { domain: "c.com" });
  assert.equal(c.title, "C");
  assert.equal(c.rank, null);
  await layer.create("dump", "website", [{ domain: "c.com", rank: 4 }]);
  const cDump = await layer.readOne("dump", "website", { domain: "c.com" });
  assert.equal(cDump.source, "manual");
  assert.equal(cDump.rank, 4);

  assert.deepEqual(await layer.delete("clean", "website", { domain: "a.com" }), { deleted: 1 });
  await assertRejects(layer.readOne("clean", "website", { domain: "a.com" }), "NOT_FOUND");
  assert.deepEqual(await layer.delete("dump", "website", { domain: "a.com" }), { deleted: 5 });
  assert.equal(await layer.count("dump", "website", { domain: "a.com" }), 0);
  assert.deepEqual(await layer.delete("dump", "website", { domain: "a.com" }), { deleted: 0 });

  await assertRejects(
    layer.read("dump", "company", { criteria: { id: 1 } }),
    "NOT_FOUND",
    '"company"',
    "known: website",
  );
  await assertRejects(layer.readOne("clean", "company", { id: 1 }), "NOT_FOUND", "website");
  assert.deepEqual(
    layer.types().map((t) => t.name),
    ["website"],
  );
});

test("writeDump: an empty query name is a valid clustering value (the store worker sends '' when absent)", async () => {
  await layer.writeDump("website", [
    { fetchedAt: Date.now(), source: "sitestats", query: "", taskId: "", record: { domain: "d.com", rank: 1 } },
  ]);
  const [row] = await layer.read("dump", "website", { criteria: { domain: "d.com" } });
  assert.equal(row.query, "");
  assert.equal(row.rank, 1);
});
