// Bulk CRUD against a real Cassandra: read, readOne, count, update and delete over lists of
// entities through the DataLayer, and the same forms through the data service's NATS endpoints.
// A list is checked whole before anything is written; criteria without the full key are refused
// naming the columns a request can use.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import type cassandra from "cassandra-driver";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { DataLayer, compileTypeDef, dataService, type DataConfig, type DumpRow } from "@machina/data";
import { startService, type RunningService } from "@machina/runtime";
import { meshNames, type DataOp } from "@machina/subjects";
import { isMachinaError, readErrorReply, type ErrorCode } from "@machina/wire";
import { CQL_CONTACT_POINTS, adminCqlClient } from "../support/cassandra-env";
import { NATS_URL, emptyConfigDir, uniquePrefix } from "../support/nats-env";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const keyspace = `machina_bulk_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const HOUR = 3_600_000;
// A closed window two hours back: inside every read horizon, untouched by the clock during the run.
const windowStart = Math.floor((Date.now() - 2 * HOUR) / HOUR) * HOUR;
const at = (minutes: number): number => windowStart + minutes * 60_000;

const typeDef = (name: string, key: string[], fields: Record<string, string>) =>
  compileTypeDef(
    { name, key, fields, merge: { default: "latest_non_null" }, dump_ttl: "30d", clean_window: "1h" },
    `${name}.yaml`,
  );
const site = typeDef("site", ["domain"], { domain: "text", title: "text", rank: "int" });
// A two-field key, so criteria can name part of it.
const member = typeDef("member", ["org", "id"], { org: "text", id: "int", name: "text" });

let admin: cassandra.Client;
let localDataCenter = "datacenter1";
let layer: DataLayer;

const dump = (domain: string, minute: number, source: string): DumpRow => ({
  fetchedAt: at(minute),
  source,
  query: "q",
  taskId: `${domain}@${minute}`,
  record: { domain, title: `${domain}@${minute}`, rank: minute },
});

async function assertRejects(p: Promise<unknown>, code: ErrorCode, ...fragments: string[]) {
  let details: Record<string, unknown> = {};
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isMachinaError(err, code), `expected ${code}, got ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
    details = err.details;
    return true;
  });
  return details;
}

const taskIds = (rows: Array<Record<string, unknown>>) => rows.map((r) => r.task_id).join(" ");
const titles = (rows: Array<Record<string, unknown>>) => rows.map((r) => r.title);

describe("bulk CRUD through the data layer", { timeout: 120_000 }, () => {
  before(async () => {
    ({ client: admin, localDataCenter } = await adminCqlClient());
    layer = await DataLayer.open({
      contactPoints: CQL_CONTACT_POINTS,
      localDataCenter,
      keyspace,
      replication: { [localDataCenter]: 1 },
      types: [site, member],
    });
    // a: 3 dump rows, b: 2, c: 4 (two from s2); d, e and f have clean rows only.
    const rows = "a.bulk@10 a.bulk@20 a.bulk@30 b.bulk@11 b.bulk@21 c.bulk@12 c.bulk@22 c.bulk@32 c.bulk@42";
    await layer.writeDump(
      "site",
      rows.split(" ").map((r) => {
        const [domain, minute] = r.split("@");
        return dump(domain, Number(minute), domain === "c.bulk" && /[24]2$/.test(minute) ? "s2" : "s1");
      }),
    );
    const ws = new Date(windowStart).toISOString();
    await layer.create(
      "clean",
      "site",
      ["d", "e", "f"].map((d, i) => ({ domain: `${d}.bulk`, title: d.toUpperCase(), rank: 4 + i, window_start: ws })),
    );
  });

  after(async () => {
    await layer?.close();
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin?.shutdown();
  });

  it("bulk readOne answers the newest row of each found key in key order and lists the missing keys", async () => {
    const res = await layer.readOneBulk("dump", "site", [
      { domain: "b.bulk" },
      { domain: "nope.bulk" },
      { domain: "a.bulk", title: "ignored: a key names the key fields only" },
      { domain: "b.bulk" },
    ]);
    assert.equal(taskIds(res.records), "b.bulk@21 a.bulk@30 b.bulk@21");
    assert.deepEqual(res.missing, [{ domain: "nope.bulk" }]);
    const clean = await layer.readOneBulk("clean", "site", [{ domain: "e.bulk" }, { domain: "a.bulk" }]);
    assert.deepEqual(titles(clean.records), ["E"]);
    assert.deepEqual(clean.missing, [{ domain: "a.bulk" }], "a.bulk has dump rows, never merged");
    // The single form still answers NOT_FOUND.
    await assertRejects(layer.readOne("dump", "site", { domain: "nope.bulk" }), "NOT_FOUND", "nope.bulk");
  });

  it("bulk read of 3 entities gives each entity's rows newest first, limit and offset per entity, in list order", async () => {
    const list = [{ domain: "c.bulk" }, { domain: "a.bulk" }, { domain: "b.bulk" }];
    const read = async (l: Record<string, unknown>[], page: object) =>
      taskIds(await layer.readBulk("dump", "site", l, page));
    assert.equal(await read(list, { limit: 2 }), "c.bulk@42 c.bulk@32 a.bulk@30 a.bulk@20 b.bulk@21 b.bulk@11");
    assert.equal(await read(list, { offset: 1, limit: 2 }), "c.bulk@32 c.bulk@22 a.bulk@20 a.bulk@10 b.bulk@11");
    // Filters apply per criteria.
    const filtered = [{ domain: "c.bulk", source: "s2" }, { domain: "b.bulk" }];
    assert.equal(await read(filtered, {}), "c.bulk@42 c.bulk@22 b.bulk@21 b.bulk@11");
    await assertRejects(layer.readBulk("dump", "site", list, { limit: 1001 }), "BAD_REQUEST", "limit");
  });

  it("bulk count gives one count per criteria, in list order, and their sum", async () => {
    const res = await layer.countBulk("dump", "site", [
      { domain: "a.bulk" },
      { domain: "c.bulk", source: "s2" },
      { domain: "nope.bulk" },
      { domain: "c.bulk" },
    ]);
    assert.deepEqual(res, { counts: [3, 2, 0, 4], count: 9 });
  });

  it("bulk update alters each entity's newest clean row (provenance manual) and lists keys with no clean row", async () => {
    // Merged rows first, so their provenance names the sources until an update says "manual".
    await layer.runClean();
    const res = await layer.updateBulk("clean", "site", [
      { key: { domain: "a.bulk" }, alterations: { title: "A2" } },
      { key: { domain: "nope.bulk" }, alterations: { title: "x" } },
      { key: { domain: "c.bulk" }, alterations: { rank: 50 } },
      { key: { domain: "a.bulk" }, alterations: { title: "A3" } },
    ]);
    const shown = res.records.map((r) => `${String(r.domain)}:${String(r.title)}:${String(r.rank)}`);
    assert.equal(shown.join(" "), "a.bulk:A2:30 c.bulk:c.bulk@42:50 a.bulk:A3:30", "item order, in place");
    assert.deepEqual(res.missing, [{ domain: "nope.bulk" }]);
    const [a, c] = (await layer.readOneBulk("clean", "site", [{ domain: "a.bulk" }, { domain: "c.bulk" }])).records;
    assert.deepEqual([a.title, a.provenance], ["A3", { title: "manual", rank: "s1" }]);
    assert.deepEqual([c.rank, c.provenance], [50, { title: "s2", rank: "manual" }]);
    assert.equal(await layer.count("clean", "site", { domain: "a.bulk" }), 1, "updated in place, not added");
    await assertRejects(
      layer.updateBulk("dump", "site", [{ key: { domain: "a.bulk" }, alterations: { title: "x" } }]),
      "BAD_REQUEST",
      "dump rows are raw answers",
    );
  });

  it("a bad item refuses the whole list, naming its index, and nothing is written", async () => {
    const before = await layer.readOne("clean", "site", { domain: "f.bulk" });
    const details = await assertRejects(
      layer.updateBulk("clean", "site", [
        { key: { domain: "f.bulk" }, alterations: { title: "never" } },
        { key: { domain: "e.bulk" }, alterations: { title: "never" } },
        { key: {}, alterations: { title: "x" } },
      ]),
      "BAD_REQUEST",
      "items[2]: criteria must name the full key; missing domain",
    );
    assert.equal(details.index, 2);
    assert.equal(details.list, "items");
    await assertRejects(
      layer.updateBulk("clean", "site", [
        { key: { domain: "f.bulk" }, alterations: { title: "never" } },
        { key: { domain: "e.bulk" }, alterations: { domain: "x" } },
      ]),
      "BAD_REQUEST",
      'items[1]: key field "domain" cannot be altered',
    );
    await assertRejects(
      layer.updateBulk("clean", "site", [
        { key: { domain: "f.bulk" }, alterations: { title: "never" } },
        { key: { domain: "e.bulk" }, alterations: { rank: "not a number" } },
      ]),
      "BAD_REQUEST",
      "items[1]",
      '"rank"',
    );
    const afterwards = await layer.readOne("clean", "site", { domain: "f.bulk" });
    assert.equal(afterwards.title, before.title, "the good item before the bad one was not written");
    assert.equal(afterwards.merged_at, before.merged_at);

    const del = await assertRejects(
      layer.deleteBulk("dump", "site", [{ domain: "a.bulk" }, { domain: "" }]),
      "BAD_REQUEST",
      "keys[1]",
      "empty",
    );
    assert.equal(del.index, 1);
    assert.equal(await layer.count("dump", "site", { domain: "a.bulk" }), 3, "nothing deleted");

    await assertRejects(
      layer.create("clean", "site", [{ domain: "g.bulk", title: "G" }, { title: "no key" }]),
      "BAD_REQUEST",
      "records[1]",
      'key field "domain" is missing',
    );
    const g = await layer.readOneBulk("clean", "site", [{ domain: "g.bulk" }]);
    assert.deepEqual(g.missing, [{ domain: "g.bulk" }]);
  });

  it("criteria without the full key are refused, naming the key fields, the filter columns and data.keys", async () => {
    const details = await assertRejects(
      layer.readBulk("dump", "member", [{ org: "o", id: 1 }, { org: "o" }]),
      "BAD_REQUEST",
      "criteriaList[1]: criteria must name the full key; missing id",
      "name org, id (the key, all required)",
      "optionally with equality filters on name, source, query, task_id",
      "data.keys.member",
    );
    assert.equal(details.index, 1);
    assert.deepEqual(details.missing, ["id"]);
    assert.deepEqual(details.key, ["org", "id"]);
    await assert.rejects(layer.read("clean", "member", { criteria: { name: "x" } }), (err: unknown) => {
      assert.ok(isMachinaError(err, "BAD_REQUEST"));
      assert.match(err.message, /missing org, id/);
      assert.match(err.message, /equality filters on name; list the entities with data\.keys\.member/);
      assert.doesNotMatch(err.message, /source/, "clean rows have no source column to filter on");
      return true;
    });
    await assertRejects(
      layer.countBulk("dump", "member", [{ id: 2 }]),
      "BAD_REQUEST",
      "criteriaList[0]",
      "missing org",
    );
    await assertRejects(layer.count("dump", "member", { org: "o" }), "BAD_REQUEST", "missing id", "data.keys.member");
    // Keys (readOne, update, delete) name the key fields and data.keys too.
    await assertRejects(
      layer.readOneBulk("dump", "member", [{ org: "o" }]),
      "BAD_REQUEST",
      "keys[0]: criteria must name the full key; missing id",
      "a key names org, id",
      "data.keys.member",
    );
    // Unknown fields stay refused by name, prototype property names included.
    for (const criteria of [{ org: "o", id: 1, constructor: 1 }, JSON.parse('{"org":"o","id":1,"__proto__":1}')]) {
      const field = Object.keys(criteria)[2];
      await assertRejects(
        layer.countBulk("dump", "member", [criteria]),
        "BAD_REQUEST",
        `criteriaList[0]: cannot filter dump rows on "${field}"`,
      );
    }
  });

  it("a request giving both forms, or neither, is BAD_REQUEST naming the fields", async () => {
    const form = (type: string, given: boolean, items: object[]) =>
      layer.formOf(type, { names: ["key"], given }, { name: "keys", items });
    assert.throws(
      () => form("site", true, [{}]),
      (err: unknown) =>
        isMachinaError(err, "BAD_REQUEST") &&
        /either key \(one entity\) or keys \(a list\), not both/.test(err.message) &&
        JSON.stringify(err.details.fields) === '["key","keys"]',
    );
    assert.throws(
      () => form("site", false, []),
      (err: unknown) => isMachinaError(err, "BAD_REQUEST") && /give key .*or keys/.test(err.message),
    );
    assert.throws(
      () => form("nosuch", true, [{}]),
      (err: unknown) => isMachinaError(err, "NOT_FOUND") && /known: member, site/.test(err.message),
      "an unknown type is NOT_FOUND before the fields are looked at",
    );
    assert.deepEqual([form("site", false, [{}]), form("site", true, [])], ["bulk", "single"]);
  });

  it("a list over 1000 items is refused, saying the cap, and nothing is written", async () => {
    const keys = Array.from({ length: 1001 }, (_, i) => ({ domain: `cap${i}.bulk` }));
    const details = await assertRejects(
      layer.readOneBulk("dump", "site", keys),
      "BAD_REQUEST",
      "keys has 1001 items; at most 1000 per request",
    );
    assert.equal(details.max, 1000);
    await assertRejects(layer.deleteBulk("dump", "site", keys), "BAD_REQUEST", "at most 1000");
    await assertRejects(layer.countBulk("dump", "site", keys), "BAD_REQUEST", "criteriaList has 1001 items");
    const items = keys.map((key) => ({ key, alterations: { title: "x" } }));
    await assertRejects(layer.updateBulk("clean", "site", items), "BAD_REQUEST", "items has 1001 items");
    await assertRejects(layer.create("dump", "site", keys), "BAD_REQUEST", "records has 1001 items");
    assert.equal(await layer.count("dump", "site", { domain: "cap0.bulk" }), 0);
    // Exactly the cap is fine (clean: its horizon is shorter, so 1000 unknown entities cost fewer reads).
    const res = await layer.readOneBulk("clean", "site", keys.slice(0, 1000));
    assert.equal(res.missing.length, 1000);
  });

  it("bulk delete removes every listed entity's rows and answers the total (an entity listed twice counts once)", async () => {
    const keys = ["a.bulk", "c.bulk", "a.bulk", "nope.bulk"].map((domain) => ({ domain }));
    assert.deepEqual(await layer.deleteBulk("dump", "site", keys), { deleted: 7 });
    assert.deepEqual((await layer.countBulk("dump", "site", keys)).counts, [0, 0, 0, 0]);
    assert.equal(await layer.count("dump", "site", { domain: "b.bulk" }), 2, "unlisted entities keep their rows");
    const cleanKeys = [{ domain: "d.bulk" }, { domain: "e.bulk" }];
    assert.deepEqual(await layer.deleteBulk("clean", "site", cleanKeys), { deleted: 2 });
  });
});

describe("bulk CRUD through the data service endpoints", { timeout: 120_000 }, () => {
  const prefix = uniquePrefix("bulk");
  const names = meshNames(prefix);
  const svcKeyspace = `${keyspace}_svc`;
  let nc: NatsConnection;
  let svc: RunningService<DataConfig> | undefined;
  let cql: cassandra.Client | undefined;

  type Answer = { status: number; body: Record<string, unknown> };
  async function ask(subject: string, body: unknown): Promise<Answer> {
    const m = await nc.request(subject, JSON.stringify(body), { timeout: 15_000 });
    const err = readErrorReply(m);
    return { status: err ? err.status : 200, body: JSON.parse(m.string()) as Record<string, unknown> };
  }
  async function ok(subject: string, body: unknown): Promise<Record<string, unknown>> {
    const a = await ask(subject, body);
    assert.equal(a.status, 200, `${subject} ${JSON.stringify(body)} answered ${a.status}: ${JSON.stringify(a.body)}`);
    return a.body;
  }

  before(async () => {
    let dc: string;
    ({ client: cql, localDataCenter: dc } = await adminCqlClient());
    const dir = emptyConfigDir();
    const types = path.join(dir, "default", "data", "types");
    mkdirSync(types, { recursive: true });
    copyFileSync(path.join(ROOT, "config/default/data/types/website.yaml"), path.join(types, "website.yaml"));
    svc = await startService(dataService, {
      handleSignals: false,
      configDir: dir,
      env: {
        MACHINA_NATS_URL: NATS_URL,
        MACHINA_MESH_PREFIX: prefix,
        MACHINA_HTTP_PORT: "0",
        MACHINA_LOG_LEVEL: "silent",
        MACHINA_DATA_CASSANDRA_PORT: String(CQL_CONTACT_POINTS[0].split(":")[1]),
        MACHINA_DATA_CASSANDRA_KEYSPACE: svcKeyspace,
        MACHINA_DATA_CASSANDRA_LOCAL_DATA_CENTER: dc,
        MACHINA_DATA_CASSANDRA_REPLICATION: `${dc}:1`,
        MACHINA_DATA_CLEAN_INTERVAL_MS: "0",
      },
    });
    nc = await connect({ servers: NATS_URL });
  });

  after(async () => {
    await nc?.close();
    await svc?.stop();
    await cql?.execute(`DROP KEYSPACE IF EXISTS ${svcKeyspace}`);
    await cql?.shutdown();
  });

  it("readone, read, count, update and delete take a list; both forms at once, or a bad item, are 400", async () => {
    const on = (op: DataOp, store: "dump" | "clean") => names.data(op, store, "website");
    const rowsOf = (body: Record<string, unknown>) => body.records as Array<Record<string, unknown>>;
    const refused = async (subject: string, body: unknown, message: RegExp) => {
      const a = await ask(subject, body);
      assert.equal(a.status, 400, `${subject} ${JSON.stringify(body)}: ${JSON.stringify(a.body)}`);
      assert.equal(a.body.code, "BAD_REQUEST");
      assert.match(String(a.body.message), message);
      return a.body.details as Record<string, unknown>;
    };
    const ws = new Date(windowStart).toISOString();
    const clean = [
      { domain: "x.svc", title: "X", window_start: ws },
      { domain: "y.svc", title: "Y", window_start: ws },
    ];
    await ok(on("create", "clean"), { records: clean });
    const fetched = (domain: string, minute: number) => ({ domain, fetched_at: windowStart + minute * 60_000 });
    await ok(on("create", "dump"), { records: [fetched("x.svc", 1), fetched("x.svc", 2), fetched("y.svc", 1)] });

    const one = await ok(on("readone", "clean"), {
      keys: [{ domain: "y.svc" }, { domain: "no.svc" }, { domain: "x.svc" }],
    });
    assert.deepEqual(titles(rowsOf(one)), ["Y", "X"]);
    assert.deepEqual(one.missing, [{ domain: "no.svc" }]);
    const single = await ok(on("readone", "clean"), { key: { domain: "x.svc" } });
    assert.equal((single.record as Record<string, unknown>).title, "X");
    assert.equal((await ask(on("readone", "clean"), { key: { domain: "no.svc" } })).status, 404);

    const rows = await ok(on("read", "dump"), { criteria_list: [{ domain: "y.svc" }, { domain: "x.svc" }], limit: 1 });
    assert.deepEqual(
      rowsOf(rows).map((r) => r.domain),
      ["y.svc", "x.svc"],
      "one row per entity, in list order",
    );
    const counts = await ok(on("count", "dump"), { criteriaList: [{ domain: "x.svc" }, { domain: "y.svc" }] });
    assert.deepEqual(counts, { count: 3, counts: [2, 1] });
    assert.deepEqual(await ok(on("count", "dump"), { criteria: { domain: "x.svc" } }), { count: 2, counts: [] });

    const items = [
      { key: { domain: "x.svc" }, alterations: { title: "X2" } },
      { key: { domain: "no.svc" }, alterations: { title: "no" } },
    ];
    const updated = await ok(on("update", "clean"), { items });
    assert.deepEqual(
      rowsOf(updated).map((r) => [r.title, r.provenance]),
      [["X2", { title: "manual" }]],
    );
    assert.deepEqual(updated.missing, [{ domain: "no.svc" }]);

    const both = { key: { domain: "x.svc" }, keys: [{ domain: "y.svc" }] };
    await refused(on("readone", "clean"), both, /either key .*or keys .*not both/);
    await refused(on("update", "clean"), {}, /key and alterations .*or items/);
    await refused(on("update", "clean"), { alterations: { title: "z" }, items }, /not both/);
    const bad = { keys: [{ domain: "x.svc" }, { title: "t" }] };
    const details = await refused(
      on("delete", "dump"),
      bad,
      /keys\[1\]: criteria must name the full key; missing domain/,
    );
    assert.equal(details.index, 1);
    const partial = { criteria: { title: "X" } };
    await refused(
      on("read", "dump"),
      partial,
      /equality filters on title, rank, .*source, query, task_id.*data\.keys\.website/,
    );

    const deleted = await ok(on("delete", "dump"), { keys: [{ domain: "x.svc" }, { domain: "y.svc" }] });
    assert.deepEqual(deleted, { affected: 3 }, "nothing was deleted by the refused list");
    assert.deepEqual(await ok(on("delete", "clean"), { key: { domain: "y.svc" } }), { affected: 1 });
  });
});
