// What the data service remembers of its entity-index writes: exact hits, the age limit, two
// generations bounded by the capacity, and hits moved forward while young.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RecordedDays } from "@machina/data";

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 11, 4, 12);

describe("RecordedDays", () => {
  it("knows exactly the keys of a group it was told were written", () => {
    const r = new RecordedDays();
    r.add("website\u0000dump\u00002026-12-04", '{"domain":"a.example"}', T0);
    assert.equal(r.has("website\u0000dump\u00002026-12-04", '{"domain":"a.example"}', T0 + 1), true);
    // Another day, another store, another type or another key is not the same entity day.
    assert.equal(r.has("website\u0000dump\u00002026-12-03", '{"domain":"a.example"}', T0 + 1), false);
    assert.equal(r.has("website\u0000clean\u00002026-12-04", '{"domain":"a.example"}', T0 + 1), false);
    assert.equal(r.has("site\u0000dump\u00002026-12-04", '{"domain":"a.example"}', T0 + 1), false);
    assert.equal(r.has("website\u0000dump\u00002026-12-04", '{"domain":"b.example"}', T0 + 1), false);
    assert.equal(r.size, 1);
    // Adding it again keeps one entry.
    r.add("website\u0000dump\u00002026-12-04", '{"domain":"a.example"}', T0 + 2);
    assert.equal(r.size, 1);
  });

  it("forgets a write once it is maxAge old, so the index element is written again before it expires", () => {
    const r = new RecordedDays({ maxAgeMs: DAY });
    r.add("g", "k", T0);
    assert.equal(r.has("g", "k", T0 + DAY - 1), true);
    assert.equal(r.has("g", "k", T0 + DAY), false);
    // Written again then: known from the new write on, whatever the old generation held.
    r.add("g", "k", T0 + DAY, T0 + DAY);
    assert.equal(r.has("g", "k", T0 + DAY + 1), true);
    assert.equal(r.has("g", "k", T0 + 2 * DAY - 1), true);
    assert.equal(r.has("g", "k", T0 + 2 * DAY), false);
  });

  it("counts a generation's age from its oldest write, never from a later one", () => {
    const r = new RecordedDays({ maxAgeMs: DAY });
    r.add("g", "old", T0);
    r.add("g", "new", T0 + DAY / 4, T0 + DAY / 4);
    // "new" was written a quarter day later, but shares a generation with "old": both stop
    // counting when the oldest write reaches maxAge (conservative: an extra write, never a miss).
    assert.equal(r.has("g", "new", T0 + DAY - 1), true);
    assert.equal(r.has("g", "new", T0 + DAY), false);
    assert.equal(r.has("g", "old", T0 + DAY), false);
  });

  it("holds at most the capacity, forgetting the oldest generation", () => {
    const r = new RecordedDays({ capacity: 1_000 });
    for (let i = 0; i < 5_000; i++) r.add("g", `k${i}`, T0 + i);
    assert.ok(r.size <= 1_000, `size ${r.size}`);
    const now = T0 + 5_000;
    // The newest keys are known, the oldest are not.
    for (let i = 4_500; i < 5_000; i++) assert.equal(r.has("g", `k${i}`, now), true, `k${i}`);
    for (let i = 0; i < 3_000; i++) assert.equal(r.has("g", `k${i}`, now), false, `k${i}`);
  });

  it("keeps an entity that is refreshed regularly, however many others pass through", () => {
    const r = new RecordedDays({ capacity: 100 });
    r.add("g", "steady", T0);
    let writes = 1;
    for (let round = 0; round < 50; round++) {
      // 30 new entities per round: the generations turn over every couple of rounds.
      for (let i = 0; i < 30; i++) r.add("g", `once-${round}-${i}`, T0 + round);
      if (!r.has("g", "steady", T0 + round)) {
        writes++;
        r.add("g", "steady", T0 + round);
      }
    }
    // A hit in the previous generation moves it forward, so it is never forgotten.
    assert.equal(writes, 1);
    assert.ok(r.size <= 100);
  });

  it("stops moving hits forward once their generation is half maxAge old, so the current one never inherits a stale write", () => {
    const r = new RecordedDays({ capacity: 4, maxAgeMs: DAY });
    r.add("g", "a", T0);
    r.add("g", "b", T0);
    // "a" and "b" fill the current generation; "c" starts a new one and the first goes previous.
    r.add("g", "c", T0 + DAY / 2 + 1, T0 + DAY / 2 + 1);
    // "a" is still valid (less than a day old) but too old to move forward.
    assert.equal(r.has("g", "a", T0 + DAY / 2 + 2), true);
    // The current generation did not take "a"'s old write time: "c" still counts a day from its own write.
    assert.equal(r.has("g", "c", T0 + DAY + 10), true);
    assert.equal(r.has("g", "a", T0 + DAY + 10), false);
  });

  it("turns over a generation that has aged half maxAge, even when it is not full", () => {
    const r = new RecordedDays({ capacity: 1_000_000, maxAgeMs: DAY });
    r.add("g", "first", T0);
    // Half a day later a new write opens a new generation; the old one still counts until its day is up.
    r.add("g", "later", T0 + DAY / 2, T0 + DAY / 2);
    assert.equal(r.has("g", "first", T0 + DAY - 1), true);
    assert.equal(r.has("g", "later", T0 + DAY + DAY / 4), true);
    assert.equal(r.has("g", "first", T0 + DAY), false);
  });
});
