import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  append,
  countSince,
  decodeLog,
  earliestFor,
  encodeLog,
  gridOf,
  remove,
  roomAt,
  type SlidingLog,
} from "@machina/fetch";

const W = 1000;

describe("sliding log of a rolling window", () => {
  const log: SlidingLog = [
    [100, 3],
    [600, 2],
    [1200, 1],
  ];

  it("counts every call that could share an interval of length W with a call sent at lb", () => {
    assert.equal(countSince(log, 1100, W), 3, "the entry at 100 is a full window behind 1100");
    assert.equal(countSince(log, 1099, W), 6);
    assert.equal(countSince(log, 2300, W), 0);
    assert.equal(roomAt(log, 1099, W, 6, 4), 0);
    assert.equal(roomAt(log, 1100, W, 6, 4), 3);
    assert.equal(roomAt(log, 5000, W, 6, 4), 4);
  });

  it("finds the earliest send time at which more calls fit", () => {
    assert.equal(earliestFor(log, W, 6, 1), 1100, "the oldest three leave at 100 + W");
    assert.equal(earliestFor(log, W, 6, 4), 1600, "four need the entries up to 600 gone");
    assert.equal(earliestFor(log, W, 10, 4), -Infinity);
    assert.equal(earliestFor(log, W, 3, 4), Infinity, "more than the quota never fits");
  });

  it("appends rounded up to the grid, merges equal times, keeps order and prunes what can never count again", () => {
    const a = append(log, 599.2, 1, W, 1, 0);
    assert.deepEqual(a, [
      [100, 3],
      [600, 3],
      [1200, 1],
    ]);
    const b = append(log, 1500, 2, W, 1, 1200);
    assert.deepEqual(
      b,
      [
        [600, 2],
        [1200, 1],
        [1500, 2],
      ],
      "100 <= 1200 - W is dropped",
    );
    assert.equal(gridOf(1000), 1);
    assert.equal(gridOf(86_400_000), 168_750);
    const day = append([], 1_000, 1, 86_400_000, gridOf(86_400_000), 0);
    assert.deepEqual(day, [[168_750, 1]]);
  });

  it("removes calls given back or moved, dropping emptied entries", () => {
    assert.deepEqual(remove(log, 599.5, 1, 1), [
      [100, 3],
      [600, 1],
      [1200, 1],
    ]);
    assert.deepEqual(remove(log, 1200, 1, 1), [
      [100, 3],
      [600, 2],
    ]);
    assert.deepEqual(remove(log, 777, 1, 1), log, "nothing recorded there: unchanged");
  });

  it("round-trips through the bucket and reads a corrupt value as a full window", () => {
    assert.deepEqual(decodeLog(encodeLog(log), 6, 0), log);
    assert.deepEqual(decodeLog("[[2,1],[1,1]]", 6, 0), [
      [1, 1],
      [2, 1],
    ]);
    for (const bad of ["nope", "{}", "[[1]]", "[[1,-2]]", '[["a",1]]'])
      assert.deepEqual(decodeLog(bad, 6, 42), [[42, 6]], bad);
  });
});
