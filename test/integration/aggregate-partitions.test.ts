// Partition ownership across aggregate replicas (in this process, real NATS): a window type in
// 8 partitions fed through the router while replicas come and go — 3 replicas, one leaves, one
// joins, one crashes (its connection cut, leases left to expire). At every moment each partition
// has at most one owner, ownership rebalances within the stated times, and every record is
// counted exactly once (per-key count and sum of the closed window).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { partitionOf, recordKey } from "@machina/aggregate";
import type { AggregateConfig } from "@machina/aggregate";
import type { RecordBatch } from "@machina/protos";
import type { RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import {
  aggregateConfig,
  batch,
  collectStore,
  dropNetwork,
  eventually,
  sendBatches,
  startAggregate,
} from "../support/aggregate-harness";

const prefix = uniquePrefix("aggp");
const names = meshNames(prefix);
const PARTITIONS = 8;
const TTL_MS = 2_000;
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % 3_600_000);
const KEYS = 200;
const configDir = aggregateConfig({
  "pt.yaml": `aggregator: window\nkey: id\ntime_field: at\nsize: 1h\nfields: { at: count, v: sum }\npartitions: ${PARTITIONS}\n`,
});

let nc: NatsConnection;
const replicas = new Map<string, RunningService<AggregateConfig>>();
const start = async (node: string) =>
  replicas.set(node, await startAggregate({ configDir, prefix, node, leaseTtlMs: TTL_MS }));
const owns = () => new Map([...replicas].map(([node, svc]) => [node, [...(svc.ctx.node.owns ?? [])]]));
const shares = () =>
  [...owns().values()]
    .map((o) => o.length)
    .sort((a, b) => a - b)
    .join(",");

before(async () => {
  nc = await connect({ servers: NATS_URL });
});

after(async () => {
  for (const svc of replicas.values()) await svc.stop().catch(() => undefined);
  await dropNetwork(nc, names);
  await nc?.close();
});

describe("partitions across replicas", () => {
  it("keeps one owner per partition while replicas leave, join and crash, and counts every record once", async (t) => {
    for (const node of ["r1", "r2", "r3"]) await start(node);
    const store = await collectStore(nc, names);
    await eventually(
      "3 replicas share 8 partitions",
      async () => (shares() === "2,3,3" ? true : undefined),
      20_000,
      50,
    );

    // Samples every 10 ms: a partition listed by two live replicas at once is a double owner.
    const doubles: string[] = [];
    const sampler = setInterval(() => {
      const seen = new Map<string, string>();
      for (const [node, list] of owns())
        for (const unit of list) {
          if (seen.has(unit)) doubles.push(`${unit}: ${seen.get(unit)} and ${node}`);
          seen.set(unit, node);
        }
    }, 10);

    // The producer: 3000 batches of 2 records through the router, 200 keys in the first hour.
    const expected = new Map<string, { n: number; v: number }>();
    const all: RecordBatch[] = [];
    for (let i = 0; i < 3000; i++) {
      const records = [0, 1].map((j) => ({
        id: `k${(i * 2 + j) % KEYS}`,
        at: T0 + ((i * 7 + j) % 3_000_000),
        v: i % 13,
      }));
      for (const r of records) {
        const e = expected.get(r.id) ?? { n: 0, v: 0 };
        expected.set(r.id, { n: e.n + 1, v: e.v + r.v });
      }
      all.push(batch("pt", `pt-${i}`, T0, records));
    }
    const produced = (async () => {
      // Spread over the leave, join and crash below (about 7 s).
      for (let i = 0; i < all.length; i += 100) {
        await sendBatches(nc, names, all.slice(i, i + 100));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    // One leaves (gracefully): its partitions move at once.
    await new Promise((r) => setTimeout(r, 1_500));
    let t0 = Date.now();
    await replicas.get("r2")!.stop();
    replicas.delete("r2");
    await eventually("2 replicas own all 8", async () => (shares() === "4,4" ? true : undefined), 20_000, 20);
    const leaveMs = Date.now() - t0;

    // One joins: it gets its share.
    t0 = Date.now();
    await start("r4");
    await eventually("3 replicas share 8 again", async () => (shares() === "2,3,3" ? true : undefined), 20_000, 20);
    const joinMs = Date.now() - t0;

    // One crashes: its connection is cut, its leases expire, the others take its partitions.
    t0 = Date.now();
    const crashed = replicas.get("r3")!;
    replicas.delete("r3");
    await crashed.ctx.nc.close();
    await eventually(
      "2 replicas own all 8 after the crash",
      async () => (shares() === "4,4" ? true : undefined),
      20_000,
      20,
    );
    const crashMs = Date.now() - t0;
    await crashed.stop().catch(() => undefined);

    await produced;
    const producedAt = Date.now();
    // Everything routed and applied first: a flush routed ahead of a record would make it late.
    const jsm = await jetstreamManager(nc);
    await eventually("the backlog worked off", async () =>
      (await jsm.streams.info(names.streams.AGGREGATE)).state.messages === 0 ? true : undefined,
    );
    // A record far ahead in every partition closes the first hour's windows.
    const flush: RecordBatch["records"] = [];
    const covered = new Set<number>();
    for (let i = 0; covered.size < PARTITIONS; i++) {
      const rec = { id: `flush${i}`, at: T0 + 7_200_000, v: 0 };
      const key = recordKey(rec, ["id"], 0);
      if (!("hash" in key)) throw key;
      const p = partitionOf(key.hash, PARTITIONS);
      if (covered.has(p)) continue;
      covered.add(p);
      flush.push(rec);
    }
    await sendBatches(nc, names, [batch("pt", "pt-flush", T0, flush)]);
    const out = await eventually(
      "every key's window",
      async () => {
        const first = store.batches().filter((b) => b.fetchedAt === T0);
        return first.length >= KEYS ? first : undefined;
      },
      60_000,
    );
    clearInterval(sampler);
    t.diagnostic(`backlog worked off and windows out ${Date.now() - producedAt} ms after the last batch was queued`);
    await store.stop();
    t.diagnostic(`rebalance: leave ${leaveMs} ms, join ${joinMs} ms, crash ${crashMs} ms (lease TTL ${TTL_MS} ms)`);

    assert.deepEqual(doubles, [], "never two owners of one partition");
    assert.equal(out.length, KEYS, "one window record per key, none twice");
    const wrong = out.flatMap((b) => {
      const r = b.records[0];
      const e = expected.get(r.id as string)!;
      return r.at === e.n && r.v === e.v
        ? []
        : [`${String(r.id)}: n ${String(r.at)} v ${String(r.v)}, expected n ${e.n} v ${e.v}`];
    });
    assert.deepEqual(wrong, [], "every record counted exactly once");
    assert.ok(leaveMs < 5_000, `a graceful leave rebalances within 5 s (took ${leaveMs} ms)`);
    assert.ok(joinMs < 5_000, `a join rebalances within 5 s (took ${joinMs} ms)`);
    assert.ok(
      crashMs < TTL_MS * 1.25 + 3_000,
      `a crash rebalances within TTL × 1.25 plus the hand-over (took ${crashMs} ms)`,
    );

    // /metrics of a replica says which partitions it owns.
    const r1 = replicas.get("r1")!;
    const metrics = await (await fetch(`http://127.0.0.1:${r1.probePort}/metrics`)).text();
    const owned = metrics.split("\n").filter((l) => /^machina_aggregate_partition_owned\{.* 1$/.test(l)).length;
    assert.equal(owned, r1.ctx.node.owns?.length);
  });
});
