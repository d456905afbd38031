// Covers @machina/aggregate without servers: each stateful kind driven record by record with an
// injected clock (window boundaries, hopping, out-of-order and late records under drop and
// correct, eviction; forward_fill ages; merge_partials timeouts), state that survives an
// encode/decode round trip (a reload), the due queue's order, and what one commit holds.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { JsonObject, RecordBatch } from "@machina/protos";
import {
  DueQueue,
  PART_BYTES,
  PartitionState,
  RecentBatches,
  compileAggregators,
  makeKind,
  recordKey,
} from "@machina/aggregate";
import type { InRecord, StatefulKind } from "@machina/aggregate";

const T0 = 1_700_000_000_000;

/** A partition of one stateful type from aggregator doc `doc`, fed records by hand. */
function partition(doc: Record<string, unknown>) {
  const table = compileAggregators([{ name: "t", origins: ["t.yaml"], doc }]);
  const agg = table.stateful()[0];
  let kind: StatefulKind<unknown> = makeKind(agg);
  let state = new PartitionState(kind, { checkpoint: null, revision: 0, keys: new Map(), outbox: [], recent: [] });
  let n = 0;
  const emitted = () => state.takeCommit().outbox.flatMap((o) => o.batches);
  return {
    agg,
    get state() {
      return state;
    },
    /** Applies one record (its time from `at` or the batch's fetchedAt), after firing what `arrival` makes due. */
    apply(record: JsonObject, opts: { fetchedAt?: number; arrival?: number; source?: string } = {}): void {
      const meta: Omit<RecordBatch, "records"> = {
        id: `b${n}`,
        type: "t",
        source: opts.source ?? "s",
        query: "q",
        taskId: "",
        fetchedAt: opts.fetchedAt ?? T0,
        firstSeq: 0,
      };
      const problem = kind.check(record, meta, 0);
      if (problem !== null) throw problem;
      const key = recordKey(record, agg.key, 0);
      if (!("hash" in key)) throw key;
      const rec: InRecord = {
        record,
        keyId: key.keyId,
        key: key.key,
        time: kind.eventTime(record, meta),
        arrival: opts.arrival ?? T0,
        batch: meta,
        seq: 0,
        position: `${n}.0.0`,
        origin: `b${n}/0`,
        batchSize: 1,
      };
      n++;
      while (kind.fireDue(rec.arrival, state));
      kind.apply(rec, state);
      while (kind.fireDue(rec.arrival, state));
    },
    /** Fires what the clock makes due (an idle partition). */
    tick(clock: number): void {
      while (kind.fireDue(clock, state));
    },
    /** Output records emitted since the last call, with their window start (fetchedAt) and id. */
    out(): { id: string; at: number; record: JsonObject; source: string }[] {
      const out = emitted().map((b) => ({ id: b.id, at: b.fetchedAt, record: b.records[0], source: b.source }));
      state.committed(state.takeCommit(), 1);
      return out;
    },
    /** Stores and reloads the state, as a restart does (in-memory indexes rebuilt). */
    reload(): void {
      const w = state.takeCommit();
      const keys = new Map<string, never>();
      for (const [k, v] of state.keys) keys.set(k, kind.encode(v) as never);
      state.committed(w, 1);
      kind = makeKind(agg);
      state = new PartitionState(kind, {
        checkpoint: w.checkpoint,
        revision: 1,
        keys: new Map([...keys].map(([k, v]) => [k, JSON.parse(JSON.stringify(v))])),
        outbox: [],
        recent: [],
      });
    },
  };
}

const s = (sec: number) => T0 + sec * 1000;

describe("window", () => {
  it("closes [start, end) when the watermark reaches end + allowed_lateness; a record at end starts the next window", () => {
    const p = partition({
      aggregator: "window",
      key: "k",
      time_field: "at",
      size: "10s",
      allowed_lateness: "2s",
      fields: { v: "sum", m: "mean", lo: "min", hi: "max", f: "first", l: "last", c: "count" },
    });
    p.apply({ k: "a", at: s(3), v: 1, m: 1, lo: 1, hi: 1, f: "3", l: "3", c: 1 });
    p.apply({ k: "a", at: s(1), v: 2, m: 3, lo: 0, hi: 5, f: "1", l: "1", c: null });
    p.apply({ k: "a", at: s(10), v: 100, m: 0, lo: 0, hi: 0, f: "10", l: "10", c: 1 });
    p.apply({ k: "a", at: s(11.999), v: 0 });
    assert.deepEqual(p.out(), [], "watermark 11.999 < 10 + 2");
    p.apply({ k: "a", at: s(9), v: 4, m: 5, lo: 2, hi: 9, f: "9", l: "9", c: 1 }, {});
    p.apply({ k: "b", at: s(12), v: 7 });
    const out = p.out();
    assert.equal(out.length, 1);
    assert.equal(out[0].at, T0);
    assert.deepEqual(out[0].record, { k: "a", v: 7, m: 3, lo: 0, hi: 9, f: "1", l: "9", c: 2 });
    // Late (watermark 12 ≥ 10 + 2): dropped, nothing emitted, nothing kept.
    p.apply({ k: "a", at: s(5), v: 1000 });
    assert.deepEqual(p.out(), []);
    assert.deepEqual([...p.state.keys.keys()].length, 2, "a and b each hold the open [10, 20)");
  });

  it("places a record in every hopping window that holds it", () => {
    const p = partition({
      aggregator: "window",
      key: "k",
      time_field: "at",
      size: "10s",
      hop: "5s",
      fields: { v: "sum" },
    });
    p.apply({ k: "a", at: s(7), v: 1 });
    p.apply({ k: "a", at: s(12), v: 10 });
    p.apply({ k: "a", at: s(30), v: 0 });
    assert.deepEqual(
      p.out().map((o) => [o.at - T0, o.record.v]),
      [
        [0, 1],
        [5000, 11],
        [10000, 10],
      ],
    );
  });

  it("with late: correct, emits revisions until keep_closed after closing, then drops; a window that was empty at close is emitted late", () => {
    const p = partition({
      aggregator: "window",
      key: "k",
      time_field: "at",
      size: "10s",
      late: "correct",
      keep_closed: "10s",
      fields: { v: "sum" },
    });
    p.apply({ k: "a", at: s(1), v: 1 });
    p.apply({ k: "a", at: s(15), v: 0 });
    assert.deepEqual(
      p.out().map((o) => [o.id.split(":").pop(), o.record.v]),
      [["0", 1]],
    );
    p.apply({ k: "a", at: s(2), v: 5 });
    p.apply({ k: "b", at: s(3), v: 9 });
    assert.deepEqual(
      p.out().map((o) => [o.id.split(":").pop(), o.record.k, o.record.v, o.at]),
      [
        ["1", "a", 6, T0],
        ["0", "b", 9, T0],
      ],
    );
    // The state survives a reload: the kept window, its revision count and the watermark.
    p.reload();
    p.apply({ k: "a", at: s(4), v: 1 });
    assert.deepEqual(
      p.out().map((o) => [o.id.split(":").pop(), o.record.v]),
      [["2", 7]],
    );
    // Watermark 20 = end + keep: [0, 10) is evicted; a record for it is dropped.
    p.apply({ k: "c", at: s(20), v: 0 });
    p.out();
    p.apply({ k: "a", at: s(5), v: 1 });
    assert.deepEqual(p.out(), []);
  });

  it("refuses a record whose numeric reducer field is not a number, or whose time field is no time", () => {
    const p = partition({ aggregator: "window", key: "k", time_field: "at", size: "1m", fields: { v: "mean" } });
    assert.throws(
      () => p.apply({ k: "a", at: s(1), v: "3" }),
      /record 0: v: the mean reducer needs a number, got the string "3"/,
    );
    assert.throws(
      () => p.apply({ k: "a", at: "soon", v: 3 }),
      /at is the event time \(time_field\), so it needs epoch ms or an ISO 8601 time, got the string "soon"/,
    );
    p.apply({ k: "a", at: "2023-11-14T22:13:21Z", v: 3 });
  });
});

describe("forward_fill", () => {
  it("fills nulls from the key's last value at or before the record's time, within max_age, across a reload", () => {
    const p = partition({ aggregator: "forward_fill", key: "k", max_age: "1m", fields: ["x", "y"] });
    const passed: JsonObject[] = [];
    const take = () => passed.push(...p.state.takePassed().map((x) => x.record));
    p.apply({ k: "a", x: 1, y: "one", z: 5 }, { fetchedAt: s(0) });
    take();
    p.reload();
    p.apply({ k: "a", x: null, y: null, z: null }, { fetchedAt: s(30) });
    p.apply({ k: "a", x: null, y: "two" }, { fetchedAt: s(61) });
    // Out of order (older than y's last value): not filled from it.
    p.apply({ k: "a", y: null }, { fetchedAt: s(50) });
    take();
    assert.deepEqual(passed, [
      { k: "a", x: 1, y: "one", z: 5 },
      { k: "a", x: 1, y: "one", z: null },
      { k: "a", x: null, y: "two" },
      { k: "a", y: null },
    ]);
  });
});

describe("merge_partials", () => {
  it("merges partials per key until the required fields are present, else emits at the deadline (arrival + timeout) marked incomplete", () => {
    const p = partition({ aggregator: "merge_partials", key: "k", required: ["a", "b"], timeout: "5s" });
    p.apply({ k: "x", a: 1 }, { arrival: s(0), source: "s1", fetchedAt: s(0) });
    p.apply({ k: "y", b: 2 }, { arrival: s(1) });
    p.apply({ k: "x", b: 3, c: null }, { arrival: s(4.999), source: "s2", fetchedAt: s(4) });
    assert.deepEqual(
      p.out().map((o) => [o.record, o.source, o.at]),
      [[{ k: "x", a: 1, b: 3 }, "s1+s2", s(4)]],
    );
    p.tick(s(5.999));
    assert.deepEqual(p.out(), [], "y's deadline is 1 s + 5 s");
    p.tick(s(6));
    assert.deepEqual(
      p.out().map((o) => o.record),
      [{ k: "y", b: 2, incomplete: true }],
    );
  });

  it("times out by the clock when idle, and a completion that arrived before the deadline wins even if applied after it", () => {
    const p = partition({ aggregator: "merge_partials", key: "k", required: ["a", "b"], timeout: "5s" });
    p.apply({ k: "x", a: 1 }, { arrival: s(0) });
    p.apply({ k: "y", a: 1 }, { arrival: s(0) });
    p.tick(s(4.999));
    assert.deepEqual(p.out(), []);
    // y's completion arrived at 4.9 s; applying it later (a backlog after a restart) still completes it.
    p.reload();
    p.apply({ k: "y", b: 2 }, { arrival: s(4.9) });
    p.tick(s(5));
    const out = p.out();
    assert.deepEqual(
      out.map((o) => o.record),
      [
        { k: "y", a: 1, b: 2 },
        { k: "x", a: 1, incomplete: true },
      ],
    );
  });
});

describe("due queue", () => {
  it("pops by due time, ties by key then tag, however it was filled", () => {
    const items = [
      { due: 5, keyId: "b", tag: "1" },
      { due: 3, keyId: "z", tag: "1" },
      { due: 5, keyId: "a", tag: "2" },
      { due: 5, keyId: "a", tag: "1" },
      { due: 9, keyId: "a", tag: "1" },
    ];
    for (const order of [items, [...items].reverse()]) {
      const q = new DueQueue();
      for (const i of order) q.push(i);
      const out = [];
      while (q.size > 0) out.push(q.pop()!);
      assert.deepEqual(
        out.map((i) => `${i.due}${i.keyId}${i.tag}`),
        ["3z1", "5a1", "5a2", "5b1", "9a1"],
      );
    }
  });
});

describe("recent batches", () => {
  it("remembers applied batch ids for 5 minutes of arrival time, stored per second and read back", () => {
    const r = new RecentBatches();
    r.add("b1", s(0));
    r.add("b2", s(0.5));
    r.add("b3", s(1));
    assert.equal(r.has("b1", s(299)), true);
    assert.equal(r.has("b1", s(300)), false, "past the window");
    assert.equal(r.has("b9", s(1)), false);
    const stored = [...r.takeChanged().values()];
    assert.equal(stored.length, 2, "one entry per second");
    assert.deepEqual(r.takeChanged().size, 0, "nothing changed since");
    const again = new RecentBatches(stored);
    assert.equal(again.has("b2", s(10)), true, "a reload knows them");
    // The slot of second 0 is reused 300 s later: its ids are forgotten.
    again.add("b4", s(300));
    assert.equal(again.has("b1", s(300)), false);
    assert.equal(again.has("b3", s(300)), true);
    assert.equal(again.size, 2);
  });

  it("splits a busy second into parts that each fit a KV entry, and rewrites only the part that grew", () => {
    const r = new RecentBatches();
    const slot7 = Math.floor(s(7) / 1000) % 300;
    const ids = Array.from({ length: 60_000 }, (_, i) => `task-${i.toString(36).padStart(8, "0")}-0f8e6b2a#${i % 7}`);
    for (const id of ids) r.add(id, s(7.2));
    const parts = r.takeChanged();
    assert.ok(parts.size >= 3, `60,000 ids of one second in ${parts.size} part(s)`);
    let total = 0;
    for (const [suffix, v] of parts) {
      const bytes = Buffer.byteLength(JSON.stringify(v));
      assert.ok(bytes <= PART_BYTES + 64, `part ${suffix}: ${bytes} B`);
      assert.match(suffix, new RegExp(`^${slot7}\\.\\d+$`));
      total += (v as { ids: string[] }).ids.length;
    }
    assert.equal(total, 60_000);
    r.add("one-more", s(7.9));
    const grown = r.takeChanged();
    assert.deepEqual([...grown.keys()], [`${slot7}.${parts.size - 1}`], "only the last part is written again");
    const again = new RecentBatches([...parts.values(), ...grown.values()]);
    assert.equal(again.size, 60_001);
    assert.equal(again.has(ids[12_345], s(200)), true);
    assert.equal(again.has("one-more", s(200)), true);
    // More ids of the same second after a reload go on in its last part.
    again.add("after-reload", s(7.5));
    assert.deepEqual([...again.takeChanged().keys()], [`${slot7}.${parts.size - 1}`]);
  });

  it("reads entries of the one-per-second layout, and ignores parts an older second left in a reused slot", () => {
    const at = (x: number) => Math.floor(s(x) / 1000);
    const old = { second: at(5), ids: ["a", "b"] }; // the first layout: no part
    const r = new RecentBatches([old]);
    assert.equal(r.has("a", s(6)), true);
    // Second 305 reuses second 5's slot with one part; part 1 of second 5 is still in the bucket.
    const stale = { second: at(5), part: 1, ids: ["c"] };
    const fresh = { second: at(305), part: 0, ids: ["d"] };
    const reloaded = new RecentBatches([stale, old, fresh]);
    assert.equal(reloaded.has("d", s(306)), true);
    assert.equal(reloaded.has("a", s(6)), false, "the slot belongs to second 305 now");
    assert.equal(reloaded.has("c", s(6)), false);
    assert.equal(reloaded.size, 1);
  });
});

describe("one commit", () => {
  it("holds changed keys (a deleted one as null), outbox entries of at most 256 batches, and the advanced checkpoint", () => {
    const p = partition({ aggregator: "window", key: "k", time_field: "at", size: "1s", fields: { v: "sum" } });
    for (let i = 0; i < 300; i++) p.apply({ k: `k${i}`, at: s(0), v: i });
    p.apply({ k: "last", at: s(5), v: 0 });
    const w = p.state.takeCommit();
    assert.equal(w.outbox.length, 2);
    assert.deepEqual(
      w.outbox.map((o) => [o.n, o.batches.length]),
      [
        [0, 256],
        [1, 44],
      ],
    );
    assert.equal(w.checkpoint.out, 2);
    const nulls = [...w.keys.values()].filter((v) => v === null).length;
    assert.equal(nulls, 300, "every closed key's state goes");
    assert.equal(w.keys.size, 301);
    assert.equal(w.expectRevision, 0);
  });
});
