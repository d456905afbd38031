// How compute cuts a series range into reads that run at once: whole UTC days per part, in order,
// covering [from, to) exactly, at most SERIES_PARTS of them, and one part when an end is open.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SERIES_PARTS, seriesParts } from "@machina/compute";

const DAY = 86_400_000;
const D0 = Date.UTC(2024, 4, 1);

function assertCovers(parts: [number, number][], from: number, to: number): void {
  assert.equal(parts[0][0], from);
  assert.equal(parts.at(-1)![1], to);
  for (let i = 1; i < parts.length; i++) assert.equal(parts[i][0], parts[i - 1][1], "parts are contiguous");
  for (const [a, b] of parts) assert.ok(b > a, `part [${a}, ${b}) is not empty`);
}

describe("compute: series parts", () => {
  it("keeps a range within one or two days whole when it cannot be split in two", () => {
    assert.deepEqual(seriesParts(D0 + 5, D0 + DAY - 1), [[D0 + 5, D0 + DAY - 1]]);
    const two = seriesParts(D0 + 5, D0 + DAY + 7);
    assert.deepEqual(two, [
      [D0 + 5, D0 + DAY],
      [D0 + DAY, D0 + DAY + 7],
    ]);
  });

  it("keeps an open range (from 0: the horizon, to 0: now) as one read", () => {
    assert.deepEqual(seriesParts(0, D0), [[0, D0]]);
    assert.deepEqual(seriesParts(D0, 0), [[D0, 0]]);
  });

  it("cuts a long range at day boundaries into at most SERIES_PARTS even parts", () => {
    const from = D0 + 3 * 3_600_000;
    const to = D0 + 7 * DAY + 1;
    const parts = seriesParts(from, to);
    assert.equal(parts.length, SERIES_PARTS);
    assertCovers(parts, from, to);
    for (const [, b] of parts.slice(0, -1)) assert.equal(b % DAY, 0, "inner cuts fall on UTC midnight");
    const days = parts.map(([a, b]) => Math.ceil(b / DAY) - Math.floor(a / DAY));
    assert.ok(Math.max(...days) - Math.min(...days) <= 1, `parts of ${days.join(", ")} days are even`);
  });

  it("gives a three-day range three parts of one day", () => {
    const parts = seriesParts(D0, D0 + 3 * DAY);
    assert.deepEqual(parts, [
      [D0, D0 + DAY],
      [D0 + DAY, D0 + 2 * DAY],
      [D0 + 2 * DAY, D0 + 3 * DAY],
    ]);
  });
});
