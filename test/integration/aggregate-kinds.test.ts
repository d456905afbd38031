// The aggregator kinds against a real nats-server, one in-process aggregate replica with an
// injected clock: window (tumbling and hopping, the boundary, out-of-order and late records under
// drop and correct), forward_fill (max age, out of order), merge_partials (complete, timed out),
// passthrough; records go in through aggregate.save (queued in order), outputs are read off STORE.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import type { JsonObject, RecordBatch } from "@machina/protos";
import { codec } from "@machina/protos";
import { jetstreamManager } from "@nats-io/jetstream";
import { MeshClient, publishDurable } from "@machina/runtime";
import type { RunningService } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import type { AggregateConfig } from "@machina/aggregate";
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
import type { StoreCollector } from "../support/aggregate-harness";

const prefix = uniquePrefix("aggk");
const names = meshNames(prefix);
const T0 = 1_700_000_000_000; // a multiple of 10 s: the 10 s windows start at T0, T0 + 10 s, …
let offset = 0;
const clock = () => Date.now() + offset;

const configDir = aggregateConfig({
  "website.yaml": "aggregator: passthrough\n",
  "win.yaml": [
    "aggregator: window",
    "key: sensor",
    "time_field: at",
    "size: 10s",
    "allowed_lateness: 2s",
    "fields: { v: sum, avg: mean, lo: min, hi: max, open: first, close: last, n: count }",
    "",
  ].join("\n"),
  "winc.yaml": [
    "aggregator: window",
    "key: sensor",
    "time_field: at",
    "size: 10s",
    "hop: 5s",
    "late: correct",
    "keep_closed: 20s",
    "fields: { v: sum }",
    "default: last",
    "",
  ].join("\n"),
  "ff.yaml": "aggregator: forward_fill\nkey: [id]\ntime_field: at\nmax_age: 30s\npartitions: 2\n",
  "mp.yaml": "aggregator: merge_partials\nkey: id\nrequired: [a, b]\ntimeout: 3s\n",
});

let nc: NatsConnection;
let client: MeshClient;
let svc: RunningService<AggregateConfig>;
let store: StoreCollector;

/** Saves records of `type` in order, one batch per call (aggregate.save answers once they are queued). */
async function save(type: string, id: string, records: JsonObject[], fetchedAt = T0, source = "src"): Promise<void> {
  const ack = await client.request(
    names.aggregateSave(type),
    "RecordBatch",
    batch(type, id, fetchedAt, records, source),
    "Ack",
  );
  assert.equal(ack.ok, true);
}

const ofType = (type: string) => store.batches().filter((b) => b.type === type);
const recordsOf = (bs: RecordBatch[]) => bs.flatMap((b) => b.records);

async function metric(line: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${svc.probePort}/metrics`)).text();
  const m = text.split("\n").find((l) => line.test(l));
  return m === undefined ? 0 : Number(m.split(" ").pop());
}

before(async () => {
  nc = await connect({ servers: NATS_URL });
  client = new MeshClient(nc);
  svc = await startAggregate({ configDir, prefix, node: "kinds-1", clock });
  store = await collectStore(nc, names);
});

after(async () => {
  await store?.stop();
  await svc?.stop();
  client?.close();
  await dropNetwork(nc, names);
  await nc?.close();
});

describe("window", () => {
  it("reduces each key's records per epoch-aligned window and emits once the watermark passes end + lateness", async () => {
    const at = (s: number) => T0 + s * 1000;
    await save("win", "w1", [
      { sensor: "a", at: at(1), v: 1, avg: 10, lo: 5, hi: 5, open: "x1", close: "x1", n: 1 },
      { sensor: "b", at: at(2), v: 100, avg: 1, lo: 1, hi: 1, open: "y", close: "y", n: 1 },
    ]);
    // Out of order within the window, a null (skipped by every reducer), and the boundary:
    // at(10) is the first instant of the next window.
    await save("win", "w2", [
      { sensor: "a", at: at(9), v: 2, avg: 20, lo: 3, hi: 9, open: "x9", close: "x9", n: 1 },
      { sensor: "a", at: at(0), v: 4, avg: null, lo: 7, hi: 1, open: "x0", close: "x0", n: null },
      { sensor: "a", at: at(10), v: 1000, avg: 0, lo: 0, hi: 0, open: "next", close: "next", n: 1 },
    ]);
    // The watermark is at(10): window [0, 10) is open until at(12).
    await save("win", "w3", [{ sensor: "b", at: at(11), v: 1, avg: 1, lo: 1, hi: 1, open: "b11", close: "b11", n: 1 }]);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(ofType("win"), [], "nothing closes before the watermark passes end + allowed lateness");
    // Within the lateness: still counted.
    await save("win", "w4", [{ sensor: "a", at: at(8), v: 8, avg: 30, lo: 4, hi: 4, open: "x8", close: "x8", n: 1 }]);
    await save("win", "w5", [{ sensor: "b", at: at(12), v: 1, avg: 1, lo: 1, hi: 1, open: "b12", close: "b12", n: 1 }]);
    const out = await eventually("window [0, 10) of both keys", async () => {
      const bs = ofType("win");
      return bs.length >= 2 ? bs : undefined;
    });
    const byKey = new Map(out.map((b) => [b.records[0].sensor as string, b]));
    assert.deepEqual(byKey.get("a")!.records[0], {
      sensor: "a",
      v: 15,
      avg: 20,
      lo: 3,
      hi: 9,
      open: "x0",
      close: "x9",
      n: 3,
    });
    assert.deepEqual(byKey.get("b")!.records[0], {
      sensor: "b",
      v: 100,
      avg: 1,
      lo: 1,
      hi: 1,
      open: "y",
      close: "y",
      n: 1,
    });
    const a = byKey.get("a")!;
    assert.equal(a.fetchedAt, T0, "the row's time is the window start");
    assert.equal(a.source, "window");
    assert.equal(a.query, "10s");

    // Late: the watermark is at(12), so [0, 10) has closed; this record is dropped and counted.
    await save("win", "w6", [
      { sensor: "a", at: at(5), v: 9999, avg: 1, lo: 1, hi: 1, open: "late", close: "late", n: 1 },
    ]);
    await eventually("the late record counted", async () =>
      (await metric(/^machina_aggregate_records_total\{[^}]*type="win"[^}]*outcome="late_dropped"/)) >= 1
        ? true
        : undefined,
    );
    // [10, 20) closes at watermark at(22); the empty window [20, 30) of key a emits nothing.
    await save("win", "w7", [{ sensor: "b", at: at(35), v: 1, avg: 1, lo: 1, hi: 1, open: "z", close: "z", n: 1 }]);
    const next = await eventually("window [10, 20)", async () => {
      const bs = ofType("win").filter((b) => b.fetchedAt === at(10));
      return bs.length >= 2 ? bs : undefined;
    });
    assert.deepEqual(next.map((b) => [b.records[0].sensor, b.records[0].v]).sort(), [
      ["a", 1000],
      ["b", 2],
    ]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ofType("win").filter((b) => b.fetchedAt === at(20)).length, 0, "an empty window emits nothing");
    assert.equal(ofType("win").length, 4, "each key's window is emitted once");
  });

  it("with late: correct, emits a late record's window again as a new revision of the same row; hopping windows overlap", async () => {
    const at = (s: number) => T0 + s * 1000;
    // Windows of 10 s every 5 s: at(7) is in [0, 10) and [5, 15).
    await save("winc", "c1", [{ sensor: "a", at: at(7), v: 1, label: "first" }]);
    await save("winc", "c2", [{ sensor: "a", at: at(16), v: 10, label: "second" }]);
    const first = await eventually("windows [0,10) and [5,15)", async () => {
      const bs = ofType("winc");
      return bs.length >= 2 ? bs : undefined;
    });
    assert.deepEqual(first.map((b) => [b.fetchedAt - T0, b.records[0].v, b.records[0].label, b.query]).sort(), [
      [0, 1, "first", "10s/5s"],
      [5000, 1, "first", "10s/5s"],
    ]);
    // Late for [5, 15) (closed at watermark 15), within keep_closed: a correction.
    await save("winc", "c3", [{ sensor: "a", at: at(12), v: 100, label: "late" }]);
    const corrected = await eventually("the correction", async () => {
      const bs = ofType("winc").filter((b) => b.fetchedAt === at(5));
      return bs.length >= 2 ? bs : undefined;
    });
    const [rev0, rev1] = corrected.sort((x, y) => x.id.localeCompare(y.id));
    assert.match(rev0.id, /:0$/);
    assert.match(rev1.id, /:1$/);
    assert.deepEqual(
      rev1.records[0],
      { sensor: "a", v: 101, at: at(12), label: "late" },
      "default: last covers `at` too",
    );
    assert.deepEqual(
      [rev1.fetchedAt, rev1.source, rev1.query, rev1.firstSeq],
      [rev0.fetchedAt, rev0.source, rev0.query, rev0.firstSeq],
      "the same dump row, so the correction replaces it",
    );
    assert.equal(await metric(/^machina_aggregate_records_total\{[^}]*type="winc"[^}]*outcome="late_corrected"/), 1);
    assert.equal(
      ofType("winc").filter((b) => b.fetchedAt === at(10)).length,
      0,
      "[10, 20) is still open (closes at watermark 20)",
    );
  });
});

describe("forward_fill", () => {
  it("carries each key's last known value into nulls, not past max_age and not backwards in time", async () => {
    const at = (s: number) => T0 + s * 1000;
    await save("ff", "f1", [
      { id: "k1", at: at(0), title: "A", rank: 1 },
      { id: "k2", at: at(0), title: "B", rank: null },
    ]);
    await save("ff", "f2", [
      { id: "k1", at: at(10), title: "A2", rank: null },
      { id: "k2", at: at(5), title: null, rank: 7 },
    ]);
    // Out of order for k1's title (its last value, at(10), is newer): not carried backwards.
    await save("ff", "f3", [{ id: "k1", at: at(5), title: null, rank: 2 }]);
    // rank was last seen at at(5): past max_age (30 s) at at(36); title (at(10)) is not.
    await save("ff", "f4", [{ id: "k1", at: at(36), title: null, rank: null }]);
    const out = await eventually("four batches passed on", async () => {
      const bs = ofType("ff");
      return recordsOf(bs).length >= 6 ? bs : undefined;
    });
    // Two partitions: a batch whose keys fall in both leaves as two, `<id>` or `<id>@<first index>`.
    const rec = (id: string) =>
      out
        .filter((b) => b.id === id || b.id.startsWith(`${id}@`))
        .sort((x, y) => x.firstSeq - y.firstSeq)
        .flatMap((b) => b.records);
    assert.deepEqual(rec("f1"), [
      { id: "k1", at: at(0), title: "A", rank: 1 },
      { id: "k2", at: at(0), title: "B", rank: null },
    ]);
    assert.deepEqual(rec("f2"), [
      { id: "k1", at: at(10), title: "A2", rank: 1 },
      { id: "k2", at: at(5), title: "B", rank: 7 },
    ]);
    assert.deepEqual(rec("f3"), [{ id: "k1", at: at(5), title: null, rank: 2 }]);
    assert.deepEqual(rec("f4"), [{ id: "k1", at: at(36), title: "A2", rank: null }]);
    const f2 = out.filter((b) => b.id === "f2" || b.id.startsWith("f2@"));
    assert.deepEqual(
      f2.map((b) => [b.source, b.query, b.fetchedAt]),
      f2.map(() => ["src", "q", T0]),
    );
    assert.deepEqual(
      f2.map((b) => b.firstSeq).sort(),
      f2.length === 1 ? [0] : [0, 1],
      "every record keeps its input row (first_seq + index)",
    );
  });
});

describe("merge_partials", () => {
  it("emits a key's merged record once the required fields are present, or what is known, marked incomplete, after the timeout", async () => {
    await save("mp", "m1", [{ id: "x", a: 1 }], T0, "s1");
    await save("mp", "m2", [{ id: "y", b: 2, extra: "e" }], T0 + 5, "s1");
    await save("mp", "m3", [{ id: "x", b: 3, a: null }], T0 + 9, "s2");
    const complete = await eventually("x complete", async () => ofType("mp").find((b) => b.records[0].id === "x"));
    assert.deepEqual(complete.records[0], { id: "x", a: 1, b: 3 });
    assert.equal(complete.source, "s1+s2");
    assert.equal(complete.fetchedAt, T0 + 9);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(ofType("mp").length, 1, "y waits for a");
    // The injected clock jumps past y's deadline (3 s after its arrival).
    offset = 5_000;
    const timedOut = await eventually("y timed out", async () => ofType("mp").find((b) => b.records[0].id === "y"));
    assert.deepEqual(timedOut.records[0], { id: "y", b: 2, extra: "e", incomplete: true });
    assert.equal(await metric(/^machina_aggregate_records_total\{[^}]*type="mp"[^}]*outcome="timed_out"/), 1);
    offset = 0;
  });
});

describe("records a partition's owner cannot take", () => {
  it("parks each alone on the dead-letter stream, under an id of its own, and aggregates the rest", async () => {
    const bad = batch("mp", "direct-1", T0, [{ id: "z", a: 1, b: 2 }, { a: 1 }]);
    const wrong = batch("win", "direct-2", T0, [{ sensor: "q", at: T0, v: 1 }]);
    await publishDurable(
      client,
      names.task.aggregatePartition("mp", 0),
      "RecordBatches",
      { batches: [bad, wrong] },
      {
        msgID: "direct",
      },
    );
    // Through the router too (the type's own subject): refused there, before any partition.
    await sendBatches(nc, names, [batch("mp", "routed-1", T0, [{ b: 7 }, { id: "z2", a: 1, b: 2 }])]);
    const out = await eventually("z merged", async () => ofType("mp").find((b) => b.records[0].id === "z"));
    await eventually("z2 merged", async () => ofType("mp").find((b) => b.records[0].id === "z2"));
    assert.deepEqual(out.records[0], { id: "z", a: 1, b: 2 });
    const jsm = await jetstreamManager(nc);
    const letters = await eventually("three dead letters", async () => {
      const n = (await jsm.streams.info(names.streams.DLQ)).state.messages;
      if (n < 3) return undefined;
      const all = [];
      for (let seq = 1; seq <= n; seq++) {
        const sm = await jsm.streams.getMessage(names.streams.DLQ, { seq });
        all.push(codec("DeadLetter").decode(sm!.data));
      }
      return all;
    });
    const parts = letters.map((l) => [
      l.errorCode,
      codec("RecordBatches").decode(l.payload).batches[0].id,
      l.errorMessage,
    ]);
    assert.deepEqual(parts.map(([code, id]) => [code, id]).sort(), [
      ["BAD_REQUEST", "direct-1#r1"],
      ["BAD_REQUEST", "direct-2#r0"],
      ["BAD_REQUEST", "routed-1#r0"],
    ]);
    const routed = letters.find((l) => codec("RecordBatches").decode(l.payload).batches[0].id === "routed-1#r0")!;
    assert.equal(
      routed.subject,
      names.task.aggregate("mp"),
      "parked from the type's own subject: a replay is routed again",
    );
    const message = (id: string) => String(parts.find((p) => p[1] === id)![2]);
    assert.match(message("direct-1#r1"), /record 1: key field id needs a text, number or boolean value/);
    assert.match(message("direct-2#r0"), /a batch of type "win" on a partition of type mp/);
  });
});

describe("passthrough and aggregate.save", () => {
  it("stores a passthrough batch as it came", async () => {
    await save("website", "p1", [{ domain: "p.example", rank: 3 }]);
    const b = await eventually("the batch on STORE", async () => ofType("website").find((x) => x.id === "p1"));
    assert.deepEqual(b.records, [{ domain: "p.example", rank: 3 }]);
  });
});
