// Exactly-once across kill -9: the same input (window with out-of-order, late and corrected
// records over many keys; merge_partials with complete and timed-out keys, in 2 partitions)
// through an aggregate process that runs undisturbed, and through one that is SIGKILLed
// mid-stream and restarted, twice. The records each run stores on STORE must be the same, none
// missing and none twice.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { loadComponents } from "@machina/config";
import type { JsonObject, RecordBatch } from "@machina/protos";
import { compileAggregators, makeKind, routeBatch } from "@machina/aggregate";
import { MeshClient, ensureStream, pipelineStreams, publishDurable } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { startServiceProc } from "../support/service-procs";
import type { ServiceProc } from "../support/service-procs";
import {
  aggregateConfig,
  batch,
  collectStore,
  dropNetwork,
  eventually,
  outputLines,
} from "../support/aggregate-harness";

const T0 = 1_700_000_000_000;
const configDir = aggregateConfig({
  "win.yaml": [
    "aggregator: window",
    "key: sensor",
    "time_field: at",
    "size: 10s",
    "allowed_lateness: 3s",
    "late: correct",
    "keep_closed: 10s",
    "fields: { v: sum, n: count, hi: max, close: last }",
    "partitions: 2",
    "",
  ].join("\n"),
  "mp.yaml": "aggregator: merge_partials\nkey: id\nrequired: [a, b, c]\ntimeout: 2s\npartitions: 2\n",
});
const table = compileAggregators(
  loadComponents("aggregate/aggregators", { configDir, env: {} }),
  loadComponents("data/types", { configDir, env: {} }),
);

// A small seeded generator, so both runs (and every run of the test) see the same input.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The input, in the order it is queued: window batches of 1–3 records of 40 sensors, event
 * times mostly a few seconds out of order, some much later (corrected or dropped), with the
 * partials of one merge key every 7 batches, that key's parts close together (so they arrive
 * well within the timeout in every run); every fifth key never gets its `c` and times out.
 * Every 100th window batch comes again later in another message, as an upstream redelivery
 * regrouped would send it. `cuts` are positions between two merge keys' parts.
 */
function input(): { batches: RecordBatch[]; cuts: number[]; duplicates: number } {
  const r = rng(42);
  const batches: RecordBatch[] = [];
  const cuts: number[] = [];
  let clock = 0;
  let key = 0;
  let duplicates = 0;
  const recent: RecordBatch[] = [];
  for (let i = 0; i < 3000; i++) {
    clock += 40;
    const records: JsonObject[] = [];
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const jitter = r() < 0.05 ? -Math.floor(r() * 25_000) : -Math.floor(r() * 4_000);
      records.push({ sensor: `s${Math.floor(r() * 40)}`, at: T0 + clock + jitter, v: Math.floor(r() * 100), hi: r() });
    }
    if (i % 7 === 0 && key < 400) {
      cuts.push(batches.length);
      const id = `m${key}`;
      const fields = key % 5 === 0 ? ["b", "a"] : r() < 0.5 ? ["c", "a", "b"] : ["a", "b", "c"];
      for (const f of fields) {
        batches.push(batch("mp", `mp-${id}-${f}`, T0 + key, [{ id, [f]: key }], `s${f}`));
        batches.push(batch("win", `win-${i}-${f}`, T0 + clock, records.slice(0, 1)));
      }
      key++;
    }
    const b = batch("win", `win-${i}`, T0 + clock, records);
    batches.push(b);
    recent.push(b);
    if (i % 100 === 99) {
      const again = recent[recent.length - 40];
      batches.push(again);
      duplicates += again.records.length;
    }
  }
  // Far ahead: closes every window of both partitions.
  const far = T0 + 1_000_000;
  batches.push(
    batch(
      "win",
      "win-flush",
      far,
      ["s0", "s1", "s2", "s3"].map((sensor) => ({ sensor, at: far })),
    ),
  );
  return { batches, cuts, duplicates };
}

/** Queues batches on their partitions exactly as aggregate's router would, in order. */
async function queue(nc: NatsConnection, prefix: string, batches: RecordBatch[], first = 0): Promise<void> {
  const names = meshNames(prefix);
  const client = new MeshClient(nc);
  const kinds = new Map(table.stateful().map((a) => [a.type, { agg: a, kind: makeKind(a) }]));
  const sends: Promise<unknown>[] = [];
  for (const [n, b] of batches.entries()) {
    const { agg, kind } = kinds.get(b.type)!;
    for (const part of routeBatch(b, agg, kind).parts) {
      sends.push(
        publishDurable(
          client,
          names.task.aggregatePartition(b.type, part.partition),
          "RecordBatches",
          { batches: [part.batch] },
          {
            // Each position its own message id, so a repeated batch is not dropped by the stream.
            msgID: `${first + n}:${part.batch.id}#p${part.partition}`,
          },
        ),
      );
      // One connection stores in the order sent; a bounded window keeps it quick.
      if (sends.length >= 256) await Promise.all(sends.splice(0));
    }
  }
  await Promise.all(sends);
  client.close();
}

// The first aggregate start creates the streams; queue needs them before.
const ensureStreams = async (nc: NatsConnection, prefix: string) => {
  const jsm = await jetstreamManager(nc);
  for (const cfg of Object.values(pipelineStreams(meshNames(prefix)))) await ensureStream(jsm, cfg);
};

/** Waits until AGGREGATE holds nothing and STORE output has not grown for `quietMs`. */
async function settle(nc: NatsConnection, prefix: string, count: () => number, quietMs = 3_000): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const names = meshNames(prefix);
  let last = -1;
  let since = Date.now();
  await eventually(
    "aggregate to finish",
    async () => {
      const left = (await jsm.streams.info(names.streams.AGGREGATE)).state.messages;
      const n = count();
      if (n !== last || left > 0) {
        last = n;
        since = Date.now();
        return undefined;
      }
      return Date.now() - since >= quietMs ? true : undefined;
    },
    90_000,
    200,
  );
}

const procs: ServiceProc[] = [];
let nc: NatsConnection;
const prefixes = [uniquePrefix("crasha"), uniquePrefix("crashb")];

before(async () => {
  nc = await connect({ servers: NATS_URL });
});

after(async () => {
  for (const p of procs) await p.kill().catch(() => undefined);
  for (const prefix of prefixes) await dropNetwork(nc, meshNames(prefix));
  await nc?.close();
});

describe("aggregate state across kill -9", () => {
  it("stores exactly the records of an uninterrupted run when the process is killed mid-window and restarted", async (t) => {
    const { batches: all, cuts, duplicates } = input();
    const env = { MACHINA_AGGREGATE_LEASE_TTL_MS: "2000" };

    // Run A, undisturbed.
    const [pa, pb] = prefixes;
    await ensureStreams(nc, pa);
    const storeA = await collectStore(nc, meshNames(pa));
    await queue(nc, pa, all);
    const a = await startServiceProc("aggregate", { configDir, prefix: pa, env });
    procs.push(a);
    await settle(nc, pa, () => storeA.batches().length);
    const metrics = await (await fetch(`http://127.0.0.1:${a.probePort}/metrics`)).text();
    const skipped = metrics
      .split("\n")
      .filter((l) => /^machina_aggregate_records_total\{.*outcome="duplicate"/.test(l))
      .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
    assert.equal(skipped, duplicates, "every repeated batch is skipped as a copy");
    await a.stop();
    const linesA = outputLines(storeA.batches());
    await storeA.stop();

    // Run B: killed twice while it works through the backlog, the rest queued while it is down.
    await ensureStreams(nc, pb);
    const storeB = await collectStore(nc, meshNames(pb));
    const cut = cuts[Math.floor(cuts.length * 0.6)];
    await queue(nc, pb, all.slice(0, cut));
    const jsm = await jetstreamManager(nc);
    const queuedB = async () => (await jsm.streams.info(meshNames(pb).streams.AGGREGATE)).state.messages;
    const total = await queuedB();
    let kills = 0;
    for (const [i, fraction] of [0.75, 0.4].entries()) {
      const p = await startServiceProc("aggregate", { configDir, prefix: pb, env });
      procs.push(p);
      // Killed once a part of what is queued is done: inside open windows and held partials.
      await eventually(
        "progress before the kill",
        async () => ((await queuedB()) <= total * fraction ? true : undefined),
        60_000,
        20,
      );
      await p.kill();
      kills++;
      t.diagnostic(
        `kill ${kills}: ${await queuedB()} of ${total} messages left, ${storeB.batches().length} outputs stored`,
      );
      if (i === 0) await queue(nc, pb, all.slice(cut), cut);
    }
    const last = await startServiceProc("aggregate", { configDir, prefix: pb, env });
    procs.push(last);
    await settle(nc, pb, () => storeB.batches().length);
    await last.stop();
    const linesB = outputLines(storeB.batches());
    await storeB.stop();

    assert.equal(kills, 2);
    const types = (lines: string[]) => ({
      win: lines.filter((l) => l.startsWith("win:")).length,
      mp: lines.filter((l) => l.startsWith("mp:")).length,
    });
    const ta = types(linesA);
    assert.ok(ta.win > 300 && ta.mp === 400, `run A emitted windows and every partial key: ${JSON.stringify(ta)}`);
    assert.ok(
      linesA.some((l) => l.includes('"incomplete":true')),
      "some partials timed out",
    );
    assert.ok(
      linesA.some((l) => /^win:w:\S+:\d+:1 /.test(l)),
      "some windows were corrected",
    );
    assert.equal(new Set(linesB).size, linesB.length, "no record stored twice after the kills");
    const onlyA = linesA.filter((l) => !linesB.includes(l));
    const onlyB = linesB.filter((l) => !linesA.includes(l));
    assert.deepEqual(
      {
        onlyA: onlyA.slice(0, 8),
        onlyB: onlyB.slice(0, 8),
        a: linesA.length,
        b: linesB.length,
        nA: onlyA.length,
        nB: onlyB.length,
      },
      { onlyA: [], onlyB: [], a: linesA.length, b: linesA.length, nA: 0, nB: 0 },
      "the killed run stores exactly what the undisturbed one does",
    );
  });
});
