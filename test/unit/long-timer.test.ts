// Covers setLongTimeout of @machina/runtime: delays past setTimeout's 2^31-1 ms limit fire on
// time instead of after 1 ms, and cancelling works before, between and after its chunks.
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { MAX_TIMER_DELAY_MS, setLongTimeout } from "@machina/runtime";

const DAY = 86_400_000;

/** Mocked setTimeout; `count()` is how often the callback ran. */
function setup(t: TestContext) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let runs = 0;
  return { callback: () => void runs++, count: () => runs };
}

describe("setLongTimeout", () => {
  it("fires a 30-day timer at 30 days, where a plain setTimeout fires after 1 ms", (t) => {
    const s = setup(t);
    let plain = 0;
    setTimeout(() => void plain++, 30 * DAY);
    setLongTimeout(s.callback, 30 * DAY);
    t.mock.timers.tick(1);
    assert.equal(plain, 1, "the overflow this guards against (Node clamps the delay to 1 ms)");
    assert.equal(s.count(), 0);
    // Mock timers arm a callback's timers from the end of its tick() call, so this step ends
    // on the chunk boundary.
    t.mock.timers.tick(MAX_TIMER_DELAY_MS - 1);
    assert.equal(s.count(), 0, "not at setTimeout's limit");
    t.mock.timers.tick(30 * DAY - MAX_TIMER_DELAY_MS - 1);
    assert.equal(s.count(), 0, "not 1 ms early");
    t.mock.timers.tick(1);
    assert.equal(s.count(), 1);
    t.mock.timers.tick(60 * DAY);
    assert.equal(s.count(), 1, "once");
  });

  it("chains as many chunks as needed: 100 days", (t) => {
    const s = setup(t);
    setLongTimeout(s.callback, 100 * DAY);
    const chunks = Math.floor((100 * DAY) / MAX_TIMER_DELAY_MS);
    for (let i = 0; i < chunks; i++) t.mock.timers.tick(MAX_TIMER_DELAY_MS);
    assert.equal(s.count(), 0);
    t.mock.timers.tick(100 * DAY - chunks * MAX_TIMER_DELAY_MS - 1);
    assert.equal(s.count(), 0);
    t.mock.timers.tick(1);
    assert.equal(s.count(), 1);
  });

  it("behaves as setTimeout up to the limit, and one ms past it", (t) => {
    const s = setup(t);
    setLongTimeout(s.callback, 200);
    t.mock.timers.tick(199);
    assert.equal(s.count(), 0);
    t.mock.timers.tick(1);
    assert.equal(s.count(), 1);

    setLongTimeout(s.callback, MAX_TIMER_DELAY_MS);
    t.mock.timers.tick(MAX_TIMER_DELAY_MS - 1);
    assert.equal(s.count(), 1);
    t.mock.timers.tick(1);
    assert.equal(s.count(), 2);

    setLongTimeout(s.callback, MAX_TIMER_DELAY_MS + 1);
    t.mock.timers.tick(MAX_TIMER_DELAY_MS);
    assert.equal(s.count(), 2, "not at the limit");
    t.mock.timers.tick(1);
    assert.equal(s.count(), 3);
  });

  it("runs a zero or negative delay on the next timer turn", (t) => {
    const s = setup(t);
    setLongTimeout(s.callback, 0);
    setLongTimeout(s.callback, -5);
    assert.equal(s.count(), 0, "never synchronously");
    t.mock.timers.tick(1);
    assert.equal(s.count(), 2);
  });

  it("cancels before the first chunk, between chunks and after firing; twice is harmless", (t) => {
    const s = setup(t);
    setLongTimeout(s.callback, 30 * DAY).cancel();
    const between = setLongTimeout(s.callback, 30 * DAY);
    t.mock.timers.tick(MAX_TIMER_DELAY_MS + 1);
    between.cancel();
    between.cancel();
    t.mock.timers.tick(60 * DAY);
    assert.equal(s.count(), 0);

    const fired = setLongTimeout(s.callback, 10);
    t.mock.timers.tick(10);
    fired.cancel();
    assert.equal(s.count(), 1);
  });

  it("refuses a delay that is not a finite number", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY])
      assert.throws(() => setLongTimeout(() => undefined, bad), RangeError);
  });

  it("raises no TimeoutOverflowWarning on real timers", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => void (w.name === "TimeoutOverflowWarning" && warnings.push(w.message));
    process.on("warning", onWarning);
    try {
      const timer = setLongTimeout(() => assert.fail("must not fire"), 30 * DAY);
      await new Promise((r) => setTimeout(r, 20));
      timer.cancel();
    } finally {
      process.off("warning", onWarning);
    }
    assert.deepEqual(warnings, []);
  });
});
