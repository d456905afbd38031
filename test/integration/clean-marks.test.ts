// Dirty marks and the failed list on a real Cassandra: data replicas whose clocks disagree lose no
// mark, closed slots are dropped whole, and an entity window that keeps failing is parked, listed,
// counted and retried.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type cassandra from "cassandra-driver";
import {
  DIRTY_CLOSE_AFTER_MS,
  DIRTY_SLOT_MS,
  DataLayer,
  compileTypeDef,
  dirtyShardOf,
  type DumpRow,
} from "@machina/data";
import { isMachinaError } from "@machina/wire";
import { CQL_CONTACT_POINTS, adminCqlClient } from "../support/cassandra-env";

const keyspace = `machina_cm_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
// One type per test: a new replica merges once more whatever marks are still in open slots.
const siteType = (name: string) =>
  compileTypeDef(
    {
      name,
      key: ["domain"],
      fields: { domain: "text", title: "text", hits: "int" },
      merge: { default: "latest_non_null", hits: "sum" },
      dump_ttl: "30d",
      clean_window: "1h",
    },
    `${name}.yaml`,
  );
// A key of two fields: its windows are read one by one, not as a group.
const pairType = compileTypeDef(
  {
    name: "pair",
    key: ["domain", "path"],
    fields: { domain: "text", path: "text", title: "text", hits: "int" },
    merge: { default: "latest_non_null", hits: "sum" },
    dump_ttl: "30d",
    clean_window: "1h",
  },
  "pair.yaml",
);
const TYPES = ["skew", "slot", "fail", "bad", "group"];

let admin: cassandra.Client;
let dc: string;
const layers: DataLayer[] = [];

async function replica(clock: () => number = Date.now): Promise<DataLayer> {
  const layer = await DataLayer.open({
    contactPoints: CQL_CONTACT_POINTS,
    localDataCenter: dc,
    keyspace,
    replication: { [dc]: 1 },
    types: [...TYPES.map(siteType), pairType],
    clock,
  });
  layers.push(layer);
  return layer;
}

const row = (domain: string, fetchedAt: number, record: Record<string, unknown>, taskId = "t"): DumpRow => ({
  fetchedAt,
  source: "s",
  query: "q",
  taskId,
  record: { domain, ...record },
});

// Every mark still stored, whatever its slot (a whole-table scan: the test keyspace is small).
async function storedMarks(type: string): Promise<{ slot: number; key: string }[]> {
  const rs = await admin.execute(`SELECT type, slot, key FROM ${keyspace}.dirty_marks`);
  return rs.rows
    .filter((r) => r.get("type") === type)
    .map((r) => ({ slot: r.get("slot") as number, key: r.get("key") as string }));
}

describe("dirty marks and the clean job's failed list", () => {
  before(async () => {
    ({ client: admin, localDataCenter: dc } = await adminCqlClient());
  });

  after(async () => {
    for (const l of layers) await l.close();
    await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin.shutdown();
  });

  it("loses no mark when the writing replica's clock is 2 s behind or ahead of the cleaning one", async () => {
    const cleaner = await replica();
    const behind = await replica(() => Date.now() - 2_000);
    const ahead = await replica(() => Date.now() + 2_000);
    const window = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    const domains = Array.from({ length: 40 }, (_, i) => `d${i}.skew`);
    await behind.writeDump(
      "skew",
      domains.map((d) => row(d, window + 1_000, { title: "old" })),
    );
    // While the cleaner merges each entity, a skewed replica stores a newer answer for it: its
    // mark lands between the cleaner's read of the marks and the end of its run.
    let n = 0;
    const first = await cleaner.runClean({
      types: ["skew"],
      onMerged: async (e) => {
        const writer = n++ % 2 === 0 ? behind : ahead;
        await writer.writeDump("skew", [row(String(e.key.domain), window + 2_000, { title: "new" })]);
      },
    });
    assert.equal(first.entities, domains.length);
    const second = await cleaner.runClean({ types: ["skew"] });
    assert.equal(second.entities, domains.length, "every late mark was kept and merged");
    for (const d of domains) {
      assert.equal((await cleaner.readOne("clean", "skew", { domain: d })).title, "new", d);
    }
    assert.equal((await cleaner.runClean({ types: ["skew"] })).entities, 0, "and none merged twice");
  });

  it("drops a slot whole once it is closed and merged, and still merges marks written within the skew allowance", async () => {
    let now = Date.now();
    const cleaner = await replica(() => now);
    // A writer the allowance minus 5 s behind: its marks land in slots the cleaner already considers past.
    const late = await replica(() => now - (DIRTY_CLOSE_AFTER_MS - 5_000));
    const window = Math.floor(now / 3_600_000) * 3_600_000;
    await cleaner.writeDump("slot", [row("a.slot", window, { title: "A" })]);
    assert.equal((await cleaner.runClean({ types: ["slot"] })).entities, 1);
    const key = JSON.stringify({ domain: "a.slot" });
    const slotOfA = (await storedMarks("slot")).find((m) => m.key === key)?.slot;
    assert.ok(slotOfA !== undefined, "the mark waits in its slot while the slot is open");

    await late.writeDump("slot", [row("b.slot", window, { title: "B" })]);
    now += DIRTY_SLOT_MS + DIRTY_CLOSE_AFTER_MS;
    const r = await cleaner.runClean({ types: ["slot"] });
    assert.equal(r.entities, 1, "the late writer's mark is merged, a.slot is not merged again");
    assert.equal((await cleaner.readOne("clean", "slot", { domain: "b.slot" })).title, "B");
    assert.equal(
      (await storedMarks("slot")).some((m) => m.slot === slotOfA),
      false,
      "the closed slot was dropped as a whole",
    );
    const cursor = await admin.execute(
      `SELECT slot FROM ${keyspace}.dirty_cursor WHERE type = 'slot' AND shard = ?`,
      [dirtyShardOf(key)],
      { prepare: true },
    );
    assert.ok((cursor.first().get("slot") as number) > slotOfA, "the cursor moved past it");
  });

  it("parks a window that keeps failing with its error, lists and counts it, and merges it again on retry", async () => {
    let now = Date.now();
    const layer = await replica(() => now);
    const window = Math.floor(now / 3_600_000) * 3_600_000;
    // Two hits near the int limit: their sum no longer fits the declared int.
    await layer.writeDump("fail", [
      row("over.flow", window + 1, { hits: 2_000_000_000 }, "a"),
      row("over.flow", window + 2, { hits: 2_000_000_000 }, "b"),
      row("fine.flow", window + 1, { hits: 5 }, "c"),
    ]);
    const parked: string[] = [];
    const onParked = (type: string) => parked.push(type);
    const first = await layer.runClean({ types: ["fail"], maxAttempts: 2, onParked });
    assert.equal(first.entities, 1, "the other entity is merged");
    assert.equal(first.failed, 1);
    assert.equal(first.parked, 0, "one failure is retried first");
    assert.match(first.errors[0].message, /hits/, "the error names the field");
    const second = await layer.runClean({ types: ["fail"], maxAttempts: 2, onParked });
    assert.equal(second.parked, 1);
    assert.deepEqual(parked, ["fail"]);

    const listed = await layer.cleanFailed("fail", {});
    assert.equal(listed.next, "");
    assert.equal(listed.failed.length, 1);
    assert.deepEqual(listed.failed[0].key, { domain: "over.flow" });
    assert.equal(listed.failed[0].windowStart, window);
    assert.equal(listed.failed[0].code, "BAD_REQUEST");
    assert.equal(listed.failed[0].attempts, 2);
    assert.match(listed.failed[0].error, /hits/);
    assert.equal(
      (await layer.runClean({ types: ["fail"], maxAttempts: 2 })).failed,
      0,
      "a parked window is not retried by itself",
    );

    // Parked, it no longer holds its slot open.
    now += DIRTY_SLOT_MS + DIRTY_CLOSE_AFTER_MS;
    await layer.runClean({ types: ["fail"] });
    assert.equal((await storedMarks("fail")).length, 0, "every slot closed and dropped");

    // The operator fixes the data (the overflowing answers are replaced) and retries.
    await layer.delete("dump", "fail", { domain: "over.flow" });
    await layer.writeDump("fail", [row("over.flow", window + 3, { hits: 7 }, "d")]);
    await layer.runClean({ types: ["fail"] }); // merges the new answer's own mark
    await layer.delete("clean", "fail", { domain: "over.flow" });
    assert.equal(await layer.retryCleanFailed("fail", [{ domain: "over.flow" }]), 1);
    assert.equal((await layer.cleanFailed("fail", {})).failed.length, 0, "off the list");
    const retried = await layer.runClean({ types: ["fail"] });
    assert.equal(retried.entities, 1);
    assert.equal((await layer.readOne("clean", "fail", { domain: "over.flow" })).hits, 7);
    assert.equal(await layer.retryCleanFailed("fail", []), 0, "nothing left to retry");
  });

  it("reads the windows of many entities together, and merges each from its own rows only", async () => {
    const layer = await replica();
    const window = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    // 130 entities (three read groups), entity i with 1 + i % 3 answers; one entity also has an
    // answer in the window before, which its merge of this window must not see.
    const rows: DumpRow[] = [];
    for (let i = 0; i < 130; i++)
      for (let j = 0; j <= i % 3; j++)
        rows.push(row(`e${i}.group`, window + 1 + j, { title: `t${i}.${j}`, hits: i + j }, `t${j}`));
    await layer.writeDump("group", [row("e7.group", window - 1, { title: "older", hits: 1000 }, "old")]);
    await layer.runClean({ types: ["group"] });
    await layer.writeDump("group", rows);
    const res = await layer.runClean({ types: ["group"] });
    assert.equal(res.entities, 130);
    assert.equal(res.failed, 0);
    for (let i = 0; i < 130; i++) {
      const n = 1 + (i % 3);
      const clean = await layer.read("clean", "group", { criteria: { domain: `e${i}.group` } });
      const mine = clean.find((r) => Date.parse(String(r.window_start)) === window);
      assert.ok(mine, `e${i}: a clean row for the window`);
      assert.equal(mine.hits, n * i + (n * (n - 1)) / 2, `e${i}: the sum of its own answers`);
      assert.equal(mine.title, `t${i}.${n - 1}`, `e${i}: its newest answer's title`);
    }

    await layer.writeDump(
      "pair",
      [0, 1, 2].flatMap((i) => [
        { ...row(`p${i}.pair`, window + 1, { path: "/a", hits: i }), seq: 0 },
        { ...row(`p${i}.pair`, window + 2, { path: "/b", hits: 10 + i }), seq: 1 },
      ]),
    );
    assert.equal((await layer.runClean({ types: ["pair"] })).entities, 6);
    assert.equal((await layer.readOne("clean", "pair", { domain: "p2.pair", path: "/b" })).hits, 12);
    assert.equal((await layer.readOne("clean", "pair", { domain: "p1.pair", path: "/a" })).hits, 1);
  });

  it("refuses bad failed-list requests naming what to fix", async () => {
    const layer = await replica();
    for (const [call, field] of [
      [() => layer.cleanFailed("bad", { limit: 5000 }), "limit"],
      [() => layer.cleanFailed("bad", { page: "not-a-token" }), "page"],
      [() => layer.retryCleanFailed("bad", [{ title: "no key" }]), "keys[0]"],
    ] as const) {
      await assert.rejects(call(), (err: unknown) => isMachinaError(err, "BAD_REQUEST") && err.message.includes(field));
    }
    await assert.rejects(layer.cleanFailed("constructor", {}), (err: unknown) => isMachinaError(err, "NOT_FOUND"));
  });
});
