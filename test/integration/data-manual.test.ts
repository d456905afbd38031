// Manual edits on a real Cassandra: a value set through data.update.clean wins over every source in
// later merges, on any replica and in later windows, shows `manual` as its provenance, and gives way
// to the sources again once cleared.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type cassandra from "cassandra-driver";
import { DataLayer, compileTypeDef, type DumpRow } from "@machina/data";
import { isMachinaError } from "@machina/wire";
import { CQL_CONTACT_POINTS, adminCqlClient } from "../support/cassandra-env";

const keyspace = `machina_mn_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
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

async function replica(): Promise<DataLayer> {
  const layer = await DataLayer.open({
    contactPoints: CQL_CONTACT_POINTS,
    localDataCenter: dc,
    keyspace,
    replication: { [dc]: 1 },
    types: [biz],
  });
  layers.push(layer);
  return layer;
}

const answer = (fetchedAt: number, record: Record<string, unknown>, source = "registry"): DumpRow => ({
  fetchedAt,
  source,
  query: "q",
  taskId: `t${fetchedAt}`,
  record: { id: "b1", ...record },
});

describe("manual edits of clean records", () => {
  before(async () => {
    ({ client: admin, localDataCenter: dc } = await adminCqlClient());
  });

  after(async () => {
    for (const l of layers) await l.close();
    await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin.shutdown();
  });

  it("survives later merges on any replica and in later windows, until cleared", async () => {
    const a = await replica();
    const b = await replica();
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
    await a.writeDump("biz", [answer(hour + 1_000, { name: "Acme Inc", rank: 5 })]);
    await b.runClean(); // b now remembers that nobody has edited biz
    assert.equal((await a.readOne("clean", "biz", { id: "b1" })).name, "Acme Inc");

    const edited = await a.update("clean", "biz", { id: "b1" }, { name: "ACME Corporation" });
    assert.equal(edited.name, "ACME Corporation");
    assert.equal((edited.provenance as Record<string, string>).name, "manual");

    // Two later merges of the same window, by the other replica, with newer answers from the source.
    for (const [i, rank] of [3, 2].entries()) {
      await b.writeDump("biz", [answer(hour + 2_000 + i, { name: `Acme source v${i}`, rank })]);
      assert.ok((await b.runClean()).entities >= 1);
      const row = await b.readOne("clean", "biz", { id: "b1" });
      assert.equal(row.name, "ACME Corporation", `merge ${i + 1} keeps the manual name`);
      assert.equal(row.rank, rank, "fields the operator did not set still follow the source");
      assert.deepEqual(row.provenance, { name: "manual", rank: "registry" });
    }

    // A later window of the entity merges with the operator's value too.
    await b.writeDump("biz", [answer(hour + 3_600_000 + 5, { name: "Acme next hour", rank: 1 })]);
    await b.runClean();
    const next = await b.readOne("clean", "biz", { id: "b1" });
    assert.equal(next.window_start, new Date(hour + 3_600_000).toISOString());
    assert.equal(next.name, "ACME Corporation");

    // Cleared, the field is merged from the sources again.
    const cleared = await a.update("clean", "biz", { id: "b1" }, {}, ["name"]);
    assert.equal(cleared.name, "ACME Corporation", "until the next merge");
    await b.runClean();
    const after = await b.readOne("clean", "biz", { id: "b1" });
    assert.equal(after.name, "Acme next hour");
    assert.deepEqual(after.provenance, { name: "registry", rank: "registry" });
  });

  it("refuses edits that name no field, a key field or an unknown field to clear", async () => {
    const a = await replica();
    const cases: Array<[Promise<unknown>, string]> = [
      [a.update("clean", "biz", { id: "b1" }, {}), "alterations"],
      [a.update("clean", "biz", { id: "b1" }, { id: "b2" }), '"id"'],
      [a.update("clean", "biz", { id: "b1" }, {}, ["constructor"]), "clear[0]"],
      [a.update("clean", "biz", { id: "b1" }, { rank: "high" }), '"rank"'],
    ];
    for (const [p, fragment] of cases) {
      await assert.rejects(p, (err: unknown) => isMachinaError(err, "BAD_REQUEST") && err.message.includes(fragment));
    }
    assert.notEqual((await a.readOne("clean", "biz", { id: "b1" })).rank, "high");
  });
});
