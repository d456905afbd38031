// Covers @machina/invoke's Scheduler taking new triggers while it runs (a config head applied
// live), under mocked timers: a changed interval re-arms on the new grid without firing twice, a
// new trigger starts as at start (run-on-start), a removed one never fires again, a change of
// query sets alone keeps the timer and fires the new list, and manual triggers are never armed.
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "@machina/log";
import { Scheduler } from "@machina/invoke";
import type { TriggerDef } from "@machina/invoke";

const second = 1_000;
const T0 = Date.UTC(2025, 0, 1, 10, 0, 0, 500);

function timer(name: string, durationMs: number, over: Partial<TriggerDef> = {}): TriggerDef {
  return {
    name,
    type: "timer",
    durationMs,
    cron: "",
    timezone: "",
    runOnStart: false,
    quantize: true,
    offsetMs: 0,
    querySets: ["qs"],
    ...over,
  };
}

function setup(t: TestContext) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: T0 });
  const fired: { name: string; tick: number; querySets: string[] }[] = [];
  const s = new Scheduler(
    async (tr, tick) => void fired.push({ name: tr.name, tick, querySets: tr.querySets }),
    silentLogger(),
  );
  const ticks = (name: string) => fired.filter((f) => f.name === name).map((f) => f.tick - T0);
  return { s, fired, ticks, advance: (ms: number) => t.mock.timers.tick(ms) };
}

describe("Scheduler.update", () => {
  it("re-arms a trigger whose interval changed on its new grid, without firing a tick twice", (t) => {
    const { s, ticks, advance } = setup(t);
    s.update([timer("a", 60 * second)]);
    assert.equal(s.nextFire("a"), Date.UTC(2025, 0, 1, 10, 1));
    s.update([timer("a", 2 * second)]);
    assert.equal(s.nextFire("a"), Date.UTC(2025, 0, 1, 10, 0, 2));
    advance(1_500);
    advance(2_000);
    assert.deepEqual(ticks("a"), [1_500, 3_500]);
    // Back to a minute: the next grid point after the last tick, not a repeat of one.
    s.update([timer("a", 60 * second)]);
    advance(60_000);
    assert.deepEqual(ticks("a"), [1_500, 3_500, 59_500]);
    s.stop();
  });

  it("starts a new trigger as at start and stops a removed one", (t) => {
    const { s, ticks, advance } = setup(t);
    s.update([timer("old", second)]);
    // Mocked callbacks see the end of a tick() call as the time: step onto each fire time.
    advance(500);
    advance(1_000);
    assert.deepEqual(ticks("old"), [500, 1_500]);
    s.update([timer("new", second, { runOnStart: true })]);
    assert.deepEqual(ticks("new"), [1_500], "run on start: the current grid point");
    assert.equal(s.nextFire("old"), null);
    for (let i = 0; i < 5; i++) advance(1_000);
    assert.deepEqual(ticks("old"), [500, 1_500], "no tick after removal");
    assert.deepEqual(ticks("new"), [1_500, 2_500, 3_500, 4_500, 5_500, 6_500]);
    s.stop();
    advance(5_000);
    assert.equal(ticks("new").length, 6, "none after stop");
  });

  it("keeps the timer when only the query sets change, and fires the new list", (t) => {
    const { s, fired, advance } = setup(t);
    s.update([timer("a", 10 * second)]);
    const at = s.nextFire("a");
    advance(5_000);
    s.update([timer("a", 10 * second, { querySets: ["qs", "more"], runOnStart: true })]);
    assert.equal(s.nextFire("a"), at);
    assert.equal(fired.length, 0, "run on start is for triggers that start, not for edits");
    advance(5_000);
    assert.deepEqual(fired, [{ name: "a", tick: at, querySets: ["qs", "more"] }]);
    s.stop();
  });

  it("never arms a manual trigger, and arms one that stops being manual", (t) => {
    const { s, ticks, advance } = setup(t);
    s.update([timer("m", second, { type: "manual" })]);
    assert.equal(s.nextFire("m"), null);
    advance(3_000);
    assert.deepEqual(ticks("m"), []);
    s.update([timer("m", second)]);
    advance(500);
    assert.equal(ticks("m").length, 1);
    s.update([timer("m", second, { type: "manual" })]);
    advance(3_000);
    assert.equal(ticks("m").length, 1);
    s.stop();
  });
});
