// The data side of incremental fetching against the real nats-server's KV: a cursor moves only
// once every record its task expects is stored (whole, split across messages, pages and the
// closing mark in any order), never backwards, not for a record that was refused, and two data
// replicas storing parts of one task at once move it exactly to the task's value.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { CursorAdvance } from "@machina/data";
import {
  CursorStore,
  answerMark,
  cursorKey,
  expectMark,
  incrementalOutcome,
  pageMark,
  tallyPage,
} from "@machina/fetch";
import type { IncrementalSpec } from "@machina/fetch";
import type { JsonObject, RecordBatch } from "@machina/protos";
import { meshNames } from "@machina/subjects";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";

const names = meshNames(uniquePrefix("cursadv"));
const spec: IncrementalSpec = {
  field: "updated_at",
  type: "website",
  kind: "timestamp",
  initial: "2024-01-01T00:00:00Z",
  initialOrder: Date.UTC(2024, 0, 1),
};
const SINCE = "2024-01-01T00:00:00Z";

const day = (d: number) => new Date(Date.UTC(2024, 1, d)).toISOString();
const records = (days: number[]) => days.map((d) => ({ domain: `s${d}.test`, updated_at: day(d) }));

// The batch invoke makes of an answer (or the part a partition gets), with the answer's mark.
function batch(recs: JsonObject[], cursor: JsonObject | null, firstSeq = 0): RecordBatch {
  return {
    id: `b${firstSeq}`,
    type: "website",
    source: "feed",
    query: "changes",
    taskId: "t",
    fetchedAt: 1,
    records: recs,
    firstSeq,
    ...(cursor === null ? {} : { cursor }),
  };
}

describe("data: cursors move once an incremental task's records are stored", () => {
  let nc: NatsConnection;
  let advance: CursorAdvance;
  let store: CursorStore;
  let parts: KV;

  before(async () => {
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    const opts = { cursors: names.buckets.fetchCursors, parts: names.buckets.fetchCursorParts };
    advance = await CursorAdvance.open(new Kvm(nc), opts);
    store = await CursorStore.open(nc, { bucket: names.buckets.fetchCursors });
    parts = await new Kvm(nc).open(names.buckets.fetchCursorParts);
  });

  after(async () => {
    if (nc !== undefined) await removeNetwork(nc, names);
    await nc?.close();
  });

  const scope = (lead: string, task = `t/${lead}`) => ({ source: "feed", query: "changes", lead, task });
  const cursorOf = async (lead: string) => (await store.read("feed", "changes", lead))?.value ?? null;

  it("a one-request answer stored whole moves the cursor to its greatest value, never back", async () => {
    const recs = records([3, 9, 5]);
    const mark = answerMark(incrementalOutcome(spec, SINCE, { website: recs }), scope("whole"))!;
    assert.equal(await cursorOf("whole"), null);
    assert.equal(await advance.stored([batch(recs, mark)]), 1);
    assert.equal(await cursorOf("whole"), day(9));
    // The same message again (a redelivery) changes nothing; an older task cannot move it back.
    assert.equal(await advance.stored([batch(recs, mark)]), 0);
    const older = records([4]);
    const oldMark = answerMark(incrementalOutcome(spec, SINCE, { website: older }), scope("whole", "t0"))!;
    assert.equal(await advance.stored([batch(older, oldMark)]), 0);
    assert.equal(await cursorOf("whole"), day(9));
    const entry = await store.read("feed", "changes", "whole");
    assert.deepEqual([entry?.lead, entry?.answer, entry?.source], ["whole", "t/whole", "feed"]);
  });

  it("an answer split across two messages (two partitions) moves it only when the second is stored", async () => {
    const recs = records([1, 2, 7, 4]);
    const mark = answerMark(incrementalOutcome(spec, SINCE, { website: recs }), scope("split"))!;
    assert.equal(await advance.stored([batch(recs.slice(2), mark, 2)]), 0);
    assert.equal(await cursorOf("split"), null, "records 0 and 1 are not stored yet");
    assert.equal(await advance.stored([batch(recs.slice(2), mark, 2)]), 0, "the same part again is still half");
    assert.equal(await advance.stored([batch(recs.slice(0, 2), mark, 0)]), 1);
    assert.equal(await cursorOf("split"), day(7));
    const key = (await parts.keys()) as AsyncIterable<string>;
    const left: string[] = [];
    for await (const k of key) left.push(k);
    assert.deepEqual(left, [], "a finished task's parts are dropped");
  });

  it("a refused record keeps its answer from moving the cursor until it is stored", async () => {
    const recs = records([5, 8]);
    const mark = answerMark(incrementalOutcome(spec, SINCE, { website: recs }), scope("refused"))!;
    // Record 1 went to the dead-letter stream: only record 0 is stored.
    assert.equal(await advance.stored([batch(recs, mark)], [[1]]), 0);
    assert.equal(await cursorOf("refused"), null);
    // Replayed from the DLQ as a batch of one (its own position), it completes the answer.
    assert.equal(await advance.stored([batch([recs[1]], mark, 1)]), 1);
    assert.equal(await cursorOf("refused"), day(8));
  });

  it("a paginated task moves it after every page and the closing mark are stored, in any order", async () => {
    const pages = [records([1, 2]), records([6, 3]), records([4])];
    let tally = null;
    const marks: JsonObject[] = [];
    for (const [i, recs] of pages.entries()) {
      const o = incrementalOutcome(spec, SINCE, { website: recs });
      tally = tallyPage(tally, i + 1, o);
      marks.push(pageMark(o, i + 1, scope("paged"))!);
    }
    // The last page is empty: it carries no mark, the closing batch says what to expect.
    tally = tallyPage(tally, 4, incrementalOutcome(spec, SINCE, { website: [] }));
    const closing = batch([], expectMark(tally, scope("paged")));
    assert.equal(await advance.stored([closing]), 0, "the closing mark first: no page is stored yet");
    assert.equal(await advance.stored([batch(pages[2], marks[2])]), 0);
    assert.equal(await advance.stored([batch(pages[0], marks[0])]), 0);
    assert.equal(await cursorOf("paged"), null, "page 2 is still missing");
    assert.equal(await advance.stored([batch(pages[1], marks[1])]), 1);
    assert.equal(await cursorOf("paged"), day(6));
  });

  it("a task that never closes (superseded mid-way) never moves the cursor", async () => {
    const recs = records([20]);
    const o = incrementalOutcome(spec, SINCE, { website: recs });
    assert.equal(await advance.stored([batch(recs, pageMark(o, 1, scope("open"))!)]), 0);
    assert.equal(await cursorOf("open"), null);
  });

  it("two data replicas storing the parts of one task at once move it once, to the task's value", async () => {
    const other = await CursorAdvance.open(new Kvm(nc), {
      cursors: names.buckets.fetchCursors,
      parts: names.buckets.fetchCursorParts,
    });
    const recs = records(Array.from({ length: 20 }, (_, i) => i + 1));
    const mark = answerMark(incrementalOutcome(spec, SINCE, { website: recs }), scope("race"))!;
    const halves = [0, 1, 2, 3].map((q) => batch(recs.slice(q * 5, q * 5 + 5), mark, q * 5));
    const moved = await Promise.all([
      advance.stored([halves[0]]),
      other.stored([halves[1]]),
      advance.stored([halves[2]]),
      other.stored([halves[3]]),
    ]);
    assert.equal(
      moved.reduce((a, b) => a + b, 0),
      1,
      "exactly one of them saw the task complete",
    );
    assert.equal(await cursorOf("race"), day(20));
  });

  it("ignores a mark it cannot read, and the batch moves nothing", async () => {
    const seen: string[] = [];
    const strict = await CursorAdvance.open(new Kvm(nc), {
      cursors: names.buckets.fetchCursors,
      parts: names.buckets.fetchCursorParts,
      onMalformed: (problem) => seen.push(problem),
    });
    assert.equal(await strict.stored([batch(records([1]), { key: "a b", total: 1 })]), 0);
    assert.match(seen[0], /has no source text|not a KV key/);
    assert.equal(cursorKey("feed", "changes", "x").startsWith("feed.changes."), true);
  });
});
