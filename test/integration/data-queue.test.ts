// The data layer's operation queue on a real Cassandra: writes of many callers grouped by
// partition, reads through the replica that see writes still queued behind a backlog (and another
// replica that does not), a queued delete that lands after the rows queued before it, and a
// bounded queue whose overflow fails as retryable without losing admitted work.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type cassandra from "cassandra-driver";
import { DataLayer, compileTypeDef, type DumpRow, type WriteQueueOptions } from "@machina/data";
import { isMachinaError } from "@machina/wire";
import { CQL_CONTACT_POINTS, adminCqlClient } from "../support/cassandra-env";

const keyspace = `machina_q_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const biz = compileTypeDef(
  {
    name: "biz",
    key: ["id"],
    fields: { id: "text", name: "text", rank: "int" },
    merge: { default: "latest_non_null" },
    dump_ttl: "30d",
    clean_window: "1h",
  },
  "biz.yaml",
);

let admin: cassandra.Client;
let dc: string;
const layers: DataLayer[] = [];
const tick = () => new Promise<void>((r) => setImmediate(r));

async function replica(queue?: WriteQueueOptions): Promise<DataLayer> {
  const layer = await DataLayer.open({
    contactPoints: CQL_CONTACT_POINTS,
    localDataCenter: dc,
    keyspace,
    replication: { [dc]: 1 },
    types: [biz],
    queue,
  });
  layers.push(layer);
  return layer;
}

// Rows of `n` distinct entities: each its own partition, so the backlog is n batches long.
function backlogRows(prefix: string, n: number, at = Date.now()): DumpRow[] {
  return Array.from({ length: n }, (_, i) => ({
    fetchedAt: at,
    source: "registry",
    query: "q",
    taskId: `${prefix}-${i}`,
    record: { id: `${prefix}-${i}`, name: `n${i}`, rank: i },
  }));
}

describe("operation queue", () => {
  before(async () => {
    ({ client: admin, localDataCenter: dc } = await adminCqlClient());
    await replica(); // creates the schema once
  });

  after(async () => {
    for (const l of layers) await l.close();
    await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin.shutdown();
  });

  it("groups the rows many callers write into one partition into a few batches", async () => {
    const a = await replica();
    const base = a.queueStats();
    const t0 = Date.now() - 60_000;
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        a.create("dump", "biz", [{ id: "g1", name: `v${i}`, fetched_at: new Date(t0 + i).toISOString() }]),
      ),
    );
    const s = a.queueStats();
    const statements = s.statements - base.statements;
    const batches = s.batches - base.batches;
    // 300 rows, 300 entity-index writes and 300 marks, each set in one partition.
    assert.ok(statements >= 900, `only ${statements} statements written`);
    assert.ok(batches <= 30, `${batches} batches for ${statements} statements: callers' rows were not grouped`);
    const rows = await a.read("dump", "biz", { criteria: { id: "g1" }, limit: 1000 });
    assert.equal(rows.length, 300);
    assert.equal(s.rows, 0, "the queue is empty once every write resolved");
  });

  it("on a cluster where every node holds every partition, batches rows of many partitions together", async () => {
    const a = await replica({ mixPartitions: () => true });
    const base = a.queueStats();
    await a.writeDump("biz", backlogRows("mx", 1000));
    const s = a.queueStats();
    const batches = s.batches - base.batches;
    assert.ok(s.statements - base.statements >= 2000);
    assert.ok(batches <= 100, `${batches} batches for 1000 entities`);
    const found = await a.readOneBulk(
      "dump",
      "biz",
      Array.from({ length: 1000 }, (_, i) => ({ id: `mx-${i}` })),
    );
    assert.equal(found.missing.length, 0);
  });

  it("two writes of one row queued together land in the order given, not by value", async () => {
    const a = await replica({ mixPartitions: () => true });
    const ws = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString();
    // One turn: both join the same round. In one batch they would share a write timestamp and
    // the larger value ("b…") would win.
    await Promise.all([
      a.create("clean", "biz", [{ id: "x5", name: "b-first", window_start: ws }]),
      a.create("clean", "biz", [{ id: "x5", name: "a-second", window_start: ws }]),
    ]);
    const b = await replica();
    assert.equal((await b.readOne("clean", "biz", { id: "x5" })).name, "a-second");
  });

  it("reads through a replica see writes still queued behind a backlog; another replica does not", async () => {
    const a = await replica({ maxInFlight: 1, mixPartitions: () => false });
    const b = await replica();
    const backlog = a.writeDump("biz", backlogRows("bl", 1500));
    await tick();
    let stored = 0;
    const writes = [
      a.create("dump", "biz", [{ id: "x1", name: "queued dump", rank: 1 }]).then(() => stored++),
      a.create("clean", "biz", [{ id: "x2", name: "queued clean", rank: 2 }]).then(() => stored++),
    ];
    await tick();

    const dump = await a.read("dump", "biz", { criteria: { id: "x1" } });
    assert.equal(dump.length, 1);
    assert.equal(dump[0].name, "queued dump");
    assert.equal(dump[0].source, "manual");
    assert.equal((await a.readOne("dump", "biz", { id: "x1" })).rank, 1);
    assert.equal(await a.count("dump", "biz", { id: "x1" }), 1);
    const clean = await a.readOne("clean", "biz", { id: "x2" });
    assert.equal(clean.name, "queued clean");
    assert.equal((clean.provenance as Record<string, string>).name, "manual");
    const bulk = await a.readOneBulk("clean", "biz", [{ id: "x2" }, { id: "nobody" }]);
    assert.equal(bulk.records.length, 1);
    // The other replica reads the database only: nothing there yet.
    assert.deepEqual(await b.read("dump", "biz", { criteria: { id: "x1" } }), []);
    assert.equal(stored, 0, "the writes were still queued while read");
    assert.ok(a.queueStats().rows > 0);

    await Promise.all([backlog, ...writes]);
    assert.equal(stored, 2);
    assert.equal((await b.readOne("dump", "biz", { id: "x1" })).name, "queued dump");
    assert.equal((await b.readOne("clean", "biz", { id: "x2" })).name, "queued clean");
    assert.equal(await b.count("dump", "biz", { id: "bl-1499" }), 1);
  });

  it("a delete queued after a queued row hides it at once and stays deleted once both land", async () => {
    const a = await replica({ maxInFlight: 1, mixPartitions: () => false });
    const b = await replica();
    const backlog = a.writeDump("biz", backlogRows("bd", 1000));
    await tick();
    const create = a.create("dump", "biz", [{ id: "x3", name: "short-lived" }]);
    await tick();
    assert.equal((await a.read("dump", "biz", { criteria: { id: "x3" } })).length, 1);
    const del = a.delete("dump", "biz", { id: "x3" });
    // The delete counts and queues in a few round trips; the create is still behind the backlog.
    for (let i = 0; i < 100 && (await a.read("dump", "biz", { criteria: { id: "x3" } })).length > 0; i++) await tick();
    assert.deepEqual(await a.read("dump", "biz", { criteria: { id: "x3" } }), []);
    await Promise.all([backlog, create, del]);
    assert.deepEqual(await b.read("dump", "biz", { criteria: { id: "x3" } }), []);
    assert.equal(await a.count("dump", "biz", { id: "x3" }), 0);
  });

  it("holds at most maxRows; a write that finds no room in time fails as retryable and admitted work is kept", async () => {
    const a = await replica({ maxRows: 200, maxInFlight: 1, maxWaitMs: 300, mixPartitions: () => false });
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, a.queueStats().rows)), 2);
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => a.writeDump("biz", backlogRows(`bq${i}`, 50))),
    );
    clearInterval(sampler);
    assert.ok(peak <= 200, `the queue held ${peak} rows, over its 200`);
    const failed = results.filter((r) => r.status === "rejected");
    const ok = results.filter((r) => r.status === "fulfilled").length;
    assert.ok(failed.length > 0, "no write waited past maxWaitMs behind 2,000 rows at one batch in flight");
    assert.ok(ok > 0, "no write got in");
    for (const f of failed) {
      const err = (f as PromiseRejectedResult).reason as unknown;
      assert.ok(isMachinaError(err, "UNAVAILABLE"), String(err));
      assert.equal((err as { retryable: boolean }).retryable, true);
      assert.match((err as Error).message, /write queue stayed full \(\d+ of 200 rows\)/);
    }
    // Every write that resolved is stored in full.
    for (const [i, r] of results.entries()) {
      if (r.status !== "fulfilled") continue;
      const found = await a.readOneBulk(
        "dump",
        "biz",
        Array.from({ length: 50 }, (_, j) => ({ id: `bq${i}-${j}` })),
      );
      assert.equal(found.missing.length, 0, `write ${i} resolved but ${found.missing.length} rows are missing`);
    }
    assert.equal(a.queueStats().rows, 0);
  });
});
