// Clean-job leases on a real nats-server KV (and two data layers on a real Cassandra): replicas
// split the (type, shard) units between them, one at a time per unit, take over what a stopped
// or dead replica held, and together merge every dirty entity exactly once.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { CleanLeases, DIRTY_SHARDS, DataLayer, compileTypeDef, type DumpRow } from "@machina/data";
import { CQL_CONTACT_POINTS, adminCqlClient } from "../support/cassandra-env";
import { NATS_URL, uniquePrefix } from "../support/nats-env";

const prefix = uniquePrefix("cl");
const units = Array.from({ length: 32 }, (_, i) => `t${i % 2}.${Math.floor(i / 2)}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keyspace = `machina_cl_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;

let nc: NatsConnection;
let kvm: Kvm;
const buckets: string[] = [];

async function leasesIn(bucket: string, node: string, ttlMs = 10_000): Promise<CleanLeases> {
  if (!buckets.includes(bucket)) buckets.push(bucket);
  return CleanLeases.open(kvm, bucket, node, ttlMs);
}

describe("clean-job leases", () => {
  before(async () => {
    nc = await connect({ servers: NATS_URL });
    kvm = new Kvm(nc);
  });

  after(async () => {
    for (const b of buckets) await (await kvm.open(b)).destroy().catch(() => undefined);
    await nc.close();
  });

  it("splits the units between replicas, each unit held by one, and hands a stopped replica's back", async () => {
    const bucket = `${prefix}_split`;
    const a = await leasesIn(bucket, "node-a");
    const b = await leasesIn(bucket, "node-b");
    assert.equal((await a.claim(units)).size, 32, "alone, a replica takes every unit");
    assert.equal((await b.claim(units)).size, 0, "a newcomer finds every unit held");
    assert.equal((await a.claim(units)).size, 16, "a replica gives back what is above its share");
    const heldB = await b.claim(units);
    const heldA = await a.claim(units);
    assert.equal(heldB.size, 16);
    assert.equal(heldA.size, 16);
    assert.deepEqual(new Set([...heldA, ...heldB]), new Set(units), "together they hold every unit, each once");
    await b.release();
    assert.equal((await a.claim(units)).size, 32, "what a stopped replica gave back is taken over");
    await a.release();
  });

  it("takes over the units of a replica that died once its leases expire", async () => {
    const bucket = `${prefix}_expiry`;
    const dead = await leasesIn(bucket, "node-dead", 1_500);
    const live = await leasesIn(bucket, "node-live", 1_500);
    assert.equal((await dead.claim(units)).size, 32);
    assert.equal((await live.claim(units)).size, 0);
    await sleep(2_500); // "node-dead" stops renewing without releasing, as after kill -9
    assert.equal((await live.claim(units)).size, 32);
    await live.release();
  });

  it("two data replicas sharing the clean job merge every dirty entity exactly once", async () => {
    const { client: probe, localDataCenter: dc } = await adminCqlClient();
    const def = compileTypeDef(
      {
        name: "site",
        key: ["domain"],
        fields: { domain: "text", title: "text" },
        merge: { default: "latest_non_null" },
        dump_ttl: "30d",
        clean_window: "1h",
      },
      "site.yaml",
    );
    const open = () =>
      DataLayer.open({
        contactPoints: CQL_CONTACT_POINTS,
        localDataCenter: dc,
        keyspace,
        replication: { [dc]: 1 },
        types: [def],
      });
    const one = await open();
    const two = await open();
    try {
      const at = Date.now() - 2 * 3_600_000;
      const rows: DumpRow[] = Array.from({ length: 300 }, (_, i) => ({
        fetchedAt: at,
        source: "s",
        query: "q",
        taskId: `t${i}`,
        record: { domain: `d${i}.clean`, title: `T${i}` },
      }));
      await one.writeDump("site", rows);
      const siteUnits = Array.from({ length: DIRTY_SHARDS }, (_, i) => `site.${i}`);
      const bucket = `${prefix}_data`;
      const la = await leasesIn(bucket, "data-a");
      const lb = await leasesIn(bucket, "data-b");
      await la.claim(siteUnits);
      await lb.claim(siteUnits);
      const heldA = await la.claim(siteUnits);
      const heldB = await lb.claim(siteUnits);
      assert.equal(heldA.size + heldB.size, DIRTY_SHARDS);
      const merged = new Map<string, number>();
      const count = (e: { key: Record<string, unknown> }) => {
        const k = String(e.key.domain);
        merged.set(k, (merged.get(k) ?? 0) + 1);
      };
      const [ra, rb] = await Promise.all([
        one.runClean({ owns: (t, s) => heldA.has(`${t}.${s}`), onMerged: count }),
        two.runClean({ owns: (t, s) => heldB.has(`${t}.${s}`), onMerged: count }),
      ]);
      assert.equal(ra.entities + rb.entities, 300);
      assert.ok(ra.entities > 0 && rb.entities > 0, `both replicas merged some (${ra.entities}, ${rb.entities})`);
      assert.equal(merged.size, 300, "every entity merged");
      assert.ok(
        [...merged.values()].every((n) => n === 1),
        "none twice",
      );
      const [againA, againB] = await Promise.all([
        one.runClean({ owns: (t, s) => heldA.has(`${t}.${s}`) }),
        two.runClean({ owns: (t, s) => heldB.has(`${t}.${s}`) }),
      ]);
      assert.equal(againA.entities + againB.entities, 0, "nothing merged twice by its lease holder");
      await la.release();
      await lb.release();
    } finally {
      await one.close();
      await two.close();
      await probe.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
      await probe.shutdown();
    }
  });
});
