// Covers @machina/invoke: ledger/query-set/trigger validation, deterministic task ids, tick grids, and the scheduler's timing.
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import type { ComponentDoc } from "@machina/config";
import { silentLogger } from "@machina/log";
import { MachinaError } from "@machina/wire";
import { buildTasks, compileLedgers, compileQuerySets, compileTriggers, currentTick, nextTick, startScheduler } from "@machina/invoke";
import type { TriggerDef } from "@machina/invoke";

const doc = (name: string, d: Record<string, unknown>, origins = [`config/default/x/${name}.yaml`]): ComponentDoc => ({ name, origins, doc: d });

/** Runs `fn` and returns the BAD_REQUEST MachinaError it must throw. */
function badRequest(fn: () => unknown): MachinaError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MachinaError, `expected MachinaError, got ${String(err)}`);
    assert.equal(err.code, "BAD_REQUEST");
    return err;
  }
  assert.fail("expected a BAD_REQUEST");
}

const ledgerDocs = [
  doc("websites", { source: "constant", lead_id: "domain", leads: [{ domain: "example.com", rank: 1 }, { domain: "example.org" }] }, ["config/default/invoke/ledgers/websites.yaml"]),
  doc("plain", { leads: [{ id: "a" }, { id: 2 }] }),
];
const ledgers = compileLedgers(ledgerDocs);
const querySets = compileQuerySets(
  [doc("websites-sitestats", { source: "sitestats", queries: ["site", "pages"], ledger: "websites" }), doc("plain-traffic", { source: "traffic", queries: ["traffic"], ledger: "plain" })],
  ledgers,
);

function trigger(over: Partial<TriggerDef> = {}): TriggerDef {
  return { name: "t", type: "timer", durationMs: 60_000, runOnStart: true, quantize: true, offsetMs: 0, querySets: ["websites-sitestats"], ...over };
}

describe("compileLedgers", () => {
  it("compiles leads keyed by lead_id (default `id`), keeping every field as args", () => {
    const w = ledgers.get("websites")!;
    assert.deepEqual(w.leads, [
      { id: "example.com", args: { domain: "example.com", rank: 1 } },
      { id: "example.org", args: { domain: "example.org" } },
    ]);
    assert.deepEqual(
      ledgers.get("plain")!.leads.map((l) => l.id),
      ["a", "2"],
    );
  });

  it("rejects an unknown key, naming the file and the key", () => {
    const err = badRequest(() => compileLedgers([doc("w", { leads: [], lead: "x" }, ["config/default/invoke/ledgers/w.yaml"])]));
    assert.match(err.message, /^config\/default\/invoke\/ledgers\/w\.yaml: lead: unknown key \(expected one of source, lead_id, leads\)/);
  });

  it("names every contributing file when a doc came from several", () => {
    const err = badRequest(() => compileLedgers([doc("w", { leads: "no" }, ["config/default/invoke/ledgers/w.yaml", "config/prod/invoke/ledgers/w.yaml"])]));
    assert.match(err.message, /^config\/default\/invoke\/ledgers\/w\.yaml \+ config\/prod\/invoke\/ledgers\/w\.yaml: leads: /);
  });

  it("rejects a lead without its id field, naming the index and the field", () => {
    for (const missing of [{}, { domain: null }, { domain: "" }]) {
      const err = badRequest(() => compileLedgers([doc("w", { lead_id: "domain", leads: [{ domain: "a.com" }, missing] })]));
      assert.match(err.message, /: leads\[1\]\.domain: missing; every lead needs its id field "domain"/);
    }
  });

  it("rejects a duplicate lead id, also across number and string spellings", () => {
    const err = badRequest(() => compileLedgers([doc("w", { leads: [{ id: "a" }, { id: "b" }, { id: "a" }] })]));
    assert.match(err.message, /leads\[2\]\.id: duplicate lead id "a"/);
    badRequest(() => compileLedgers([doc("w", { leads: [{ id: 1 }, { id: "1" }] })]));
  });

  it("rejects other malformed ledgers", () => {
    assert.match(badRequest(() => compileLedgers([doc("w", { source: "kv", leads: [] })])).message, /source: expected one of constant, got "kv"/);
    assert.match(badRequest(() => compileLedgers([doc("w", { leads: [{ id: "a" }, "b"] })])).message, /leads\[1\]: expected a mapping/);
    assert.match(badRequest(() => compileLedgers([doc("w", { lead_id: 3, leads: [] })])).message, /lead_id: expected the name of a lead field/);
    assert.match(badRequest(() => compileLedgers([doc("w", {})])).message, /leads: expected a list of leads/);
  });
});

describe("compileQuerySets", () => {
  it("compiles a query set referencing a known ledger", () => {
    assert.deepEqual(querySets.get("websites-sitestats"), { name: "websites-sitestats", source: "sitestats", queries: ["site", "pages"], ledger: "websites" });
  });

  it("rejects an unknown ledger, listing the known ones", () => {
    const err = badRequest(() => compileQuerySets([doc("qs", { source: "s", queries: ["q"], ledger: "nope" }, ["config/default/invoke/query_sets/qs.yaml"])], ledgers));
    assert.match(err.message, /^config\/default\/invoke\/query_sets\/qs\.yaml: ledger: unknown ledger "nope" \(known: websites, plain\)/);
  });

  it("rejects unknown keys, bad sources and bad query lists", () => {
    assert.match(badRequest(() => compileQuerySets([doc("qs", { source: "s", queries: ["q"], ledger: "plain", extra: 1 })], ledgers)).message, /qs\.yaml: extra: unknown key/);
    for (const source of [undefined, 3, "a.b", ""]) {
      assert.match(badRequest(() => compileQuerySets([doc("qs", { source, queries: ["q"], ledger: "plain" })], ledgers)).message, /: source: expected a source name/);
    }
    // query names are tokens like in fetch source files; a '/' would make task ids ambiguous
    for (const queries of [undefined, [], "q", [""], ["q", 3], ["a/b"], ["a.b"]]) {
      assert.match(badRequest(() => compileQuerySets([doc("qs", { source: "s", queries, ledger: "plain" })], ledgers)).message, /: queries: expected a non-empty list/, JSON.stringify(queries));
    }
  });
});

describe("compileTriggers", () => {
  const compile = (d: Record<string, unknown>) => compileTriggers([doc("refresh", d, ["config/default/invoke/triggers/refresh.yaml"])], querySets).get("refresh")!;

  it("applies defaults: timer, run on start, quantized, no offset", () => {
    assert.deepEqual(compile({ duration: "1m", query_sets: ["websites-sitestats"] }), {
      name: "refresh",
      type: "timer",
      durationMs: 60_000,
      runOnStart: true,
      quantize: true,
      offsetMs: 0,
      querySets: ["websites-sitestats"],
    });
    const t = compile({ duration: "30s", offset: "5s", run_on_start: false, quantize: false, query_sets: ["plain-traffic", "websites-sitestats"] });
    assert.equal(t.offsetMs, 5000);
    assert.equal(t.runOnStart, false);
    assert.equal(t.quantize, false);
    assert.deepEqual(t.querySets, ["plain-traffic", "websites-sitestats"]);
  });

  it("does not need a duration for a manual trigger", () => {
    const t = compile({ type: "manual", query_sets: ["plain-traffic"] });
    assert.equal(t.type, "manual");
    assert.equal(t.durationMs, 0);
  });

  it("rejects an unknown query set, naming its index and the known ones", () => {
    const err = badRequest(() => compile({ duration: "1m", query_sets: ["websites-sitestats", "nope"] }));
    assert.match(err.message, /^config\/default\/invoke\/triggers\/refresh\.yaml: query_sets\[1\]: unknown query set "nope" \(known: websites-sitestats, plain-traffic\)/);
    assert.match(badRequest(() => compile({ duration: "1m", query_sets: [] })).message, /query_sets: expected a non-empty list/);
    assert.match(badRequest(() => compile({ duration: "1m" })).message, /query_sets: expected a non-empty list/);
  });

  it("rejects bad durations and offsets, quoting the value", () => {
    for (const duration of ["soon", "10", undefined, "50ms", 99, "-1m"]) {
      const err = badRequest(() => compile({ duration, query_sets: ["plain-traffic"] }));
      assert.match(err.message, /refresh\.yaml: duration: expected a duration of at least 100ms/, String(duration));
    }
    assert.equal(compile({ duration: "100ms", query_sets: ["plain-traffic"] }).durationMs, 100);
    assert.match(badRequest(() => compile({ duration: "1m", offset: "later", query_sets: ["plain-traffic"] })).message, /offset: expected a duration such as 10s, got "later"/);
  });

  it("rejects unknown keys, bad types and non-boolean flags", () => {
    assert.match(badRequest(() => compile({ duration: "1m", query_sets: ["plain-traffic"], every: "1m" })).message, /refresh\.yaml: every: unknown key/);
    assert.match(badRequest(() => compile({ type: "cron", duration: "1m", query_sets: ["plain-traffic"] })).message, /type: expected timer or manual, got "cron"/);
    assert.match(badRequest(() => compile({ duration: "1m", run_on_start: "yes", query_sets: ["plain-traffic"] })).message, /run_on_start: expected true or false/);
    assert.match(badRequest(() => compile({ duration: "1m", quantize: 1, query_sets: ["plain-traffic"] })).message, /quantize: expected true or false/);
  });
});

describe("buildTasks", () => {
  const qs = querySets.get("websites-sitestats")!;

  it("builds leads × queries with every field filled from the query set and the tick", () => {
    const tasks = buildTasks(qs, ledgers, { trigger: "refresh", time: 1_700_000_040_000 }, 1_700_000_041_000);
    assert.equal(tasks.length, 4);
    assert.deepEqual(
      tasks.map((t) => [t.lead.id, t.query]),
      [
        ["example.com", "site"],
        ["example.com", "pages"],
        ["example.org", "site"],
        ["example.org", "pages"],
      ],
    );
    for (const t of tasks) {
      assert.equal(t.source, "sitestats");
      assert.equal(t.trigger, "refresh");
      assert.equal(t.tick, 1_700_000_040_000);
      assert.equal(t.createdAt, 1_700_000_041_000);
      assert.equal(t.querySet, "websites-sitestats");
      assert.deepEqual(t.lead, ledgers.get(qs.ledger)!.leads.find((l) => l.id === t.lead.id));
    }
  });

  it("gives deterministic ids that do not depend on when the tasks are built", () => {
    const a = buildTasks(qs, ledgers, { trigger: "refresh", time: 60_000 }, 1);
    const b = buildTasks(qs, ledgers, { trigger: "refresh", time: 60_000 }, 999_999);
    assert.deepEqual(
      a.map((t) => t.id),
      b.map((t) => t.id),
    );
  });

  it("gives ids unique per (trigger, tick, query set, lead, query), even with look-alike names", () => {
    // lead ids may contain '/', '@' and digits that mimic other parts of the id
    const tricky = compileLedgers([doc("tricky", { leads: [{ id: "a" }, { id: "a/b" }, { id: "b" }, { id: "60000" }, { id: "x@1" }] })]);
    const allLedgers = new Map([...ledgers, ...tricky]);
    const sets = compileQuerySets(
      [
        doc("qs", { source: "s", queries: ["b", "c", "b-c"], ledger: "tricky" }),
        doc("qs-2", { source: "s", queries: ["b", "c"], ledger: "tricky" }),
      ],
      allLedgers,
    );
    const seen = new Map<string, string>();
    for (const trig of ["t", "t@6", "t-2"]) {
      for (const time of [6, 60_000, 660_000]) {
        for (const name of ["qs", "qs-2"]) {
          for (const task of buildTasks(sets.get(name)!, allLedgers, { trigger: trig, time })) {
            const tuple = JSON.stringify([trig, time, name, task.lead.id, task.query]);
            const prior = seen.get(task.id);
            assert.ok(prior === undefined || prior === tuple, `id ${task.id} for ${tuple} and ${prior}`);
            seen.set(task.id, tuple);
          }
        }
      }
    }
    // 3 triggers × 3 ticks × (5 leads × 3 queries + 5 leads × 2 queries)
    assert.equal(seen.size, 3 * 3 * (15 + 10));
  });

  it("fails with NOT_FOUND when the query set's ledger is gone", () => {
    assert.throws(
      () => buildTasks({ name: "x", source: "s", queries: ["q"], ledger: "gone" }, ledgers, { trigger: "t", time: 0 }),
      (e: unknown) => e instanceof MachinaError && e.code === "NOT_FOUND" && /unknown ledger "gone"/.test(e.message),
    );
  });
});

describe("tick grids", () => {
  const minute = 60_000;

  it("quantized triggers with the same duration share one grid whatever their start time", () => {
    const t1 = trigger({ name: "a" });
    const t2 = trigger({ name: "b" });
    const now = 1_700_000_123_456;
    const expected = Math.floor(now / minute) * minute;
    // replica A started long ago, replica B a second ago: same tick, so the same task ids
    assert.equal(currentTick(t1, now, 1_699_000_000_001), expected);
    assert.equal(currentTick(t2, now, now - 1000), expected);
    assert.equal(currentTick(t2, now, now), expected);
    assert.equal(nextTick(t1, now, 17), expected + minute);
    const idsA = buildTasks(querySets.get("websites-sitestats")!, ledgers, { trigger: "refresh", time: currentTick(t1, now, 5) }).map((t) => t.id);
    const idsB = buildTasks(querySets.get("websites-sitestats")!, ledgers, { trigger: "refresh", time: currentTick(t2, now, now - 7) }).map((t) => t.id);
    assert.deepEqual(idsA, idsB);
  });

  it("a grid point is its own current tick and the next one is a full period later", () => {
    const t = trigger();
    assert.equal(currentTick(t, 10 * minute, 0), 10 * minute);
    assert.equal(currentTick(t, 10 * minute - 1, 0), 9 * minute);
    assert.equal(nextTick(t, 10 * minute, 0), 11 * minute);
    assert.equal(nextTick(t, 10 * minute - 1, 0), 10 * minute);
  });

  it("the offset shifts the quantized grid, also when it exceeds the duration", () => {
    const t = trigger({ offsetMs: 10_000 });
    assert.equal(currentTick(t, 10 * minute + 5_000, 0), 9 * minute + 10_000);
    assert.equal(currentTick(t, 10 * minute + 10_000, 0), 10 * minute + 10_000);
    assert.equal(nextTick(t, 10 * minute + 10_000, 0), 11 * minute + 10_000);
    const wrapped = trigger({ offsetMs: minute + 10_000 });
    assert.equal(currentTick(wrapped, 10 * minute + 5_000, 0), 9 * minute + 10_000);
  });

  it("without quantize the grid follows the start time", () => {
    const t = trigger({ quantize: false });
    const started = 1_700_000_007_777;
    assert.equal(currentTick(t, started, started), started);
    assert.equal(currentTick(t, started + minute - 1, started), started);
    assert.equal(currentTick(t, started + 2.5 * minute, started), started + 2 * minute);
    assert.equal(nextTick(t, started + 1, started), started + minute);
    // two non-quantized replicas started at different times do not share ticks
    assert.notEqual(currentTick(t, started + 3 * minute, started), currentTick(t, started + 3 * minute, started + 1234));
  });

  it("a manual trigger's tick is simply now", () => {
    const t = trigger({ type: "manual", durationMs: 0 });
    assert.equal(currentTick(t, 123_456, 0), 123_456);
  });
});

describe("startScheduler", () => {
  const log = silentLogger();

  /** Mocked setTimeout and Date starting at `start`; `lag` makes the scheduler's clock run behind the timers. */
  function setup(t: TestContext, start: number) {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: start });
    const fired: [string, number][] = [];
    const clock = { lag: 0 };
    const now = () => Date.now() - clock.lag;
    // 1ms steps: mock timers show the end time of one tick() call to every callback it runs
    const advance = (ms: number) => {
      for (let i = 0; i < ms; i++) t.mock.timers.tick(1);
    };
    const fire = async (tr: TriggerDef, tick: number) => {
      fired.push([tr.name, tick]);
    };
    return { fired, now, fire, advance, clock };
  }

  it("fires run-on-start once for the current grid point, then on every grid point", (t) => {
    const s = setup(t, 1_000_050); // 50ms past a 200ms grid point
    const stop = startScheduler([trigger({ name: "a", durationMs: 200 })], s.fire, log, s.now);
    assert.deepEqual(s.fired, [["a", 1_000_000]]);
    s.advance(149);
    assert.deepEqual(s.fired, [["a", 1_000_000]]);
    s.advance(1);
    assert.deepEqual(s.fired, [["a", 1_000_000], ["a", 1_000_200]]);
    s.advance(200);
    s.advance(200);
    assert.deepEqual(
      s.fired.map(([, tick]) => tick),
      [1_000_000, 1_000_200, 1_000_400, 1_000_600],
    );
    stop();
  });

  it("fires a tick only once when the timer runs a little before the wall clock reaches it", (t) => {
    const s = setup(t, 1_000_000);
    const stop = startScheduler([trigger({ name: "a", durationMs: 200 })], s.fire, log, s.now);
    s.clock.lag = 1; // the timer fires when now() still says 1_000_199
    s.advance(200);
    s.clock.lag = 0;
    s.advance(1);
    assert.deepEqual(
      s.fired.map(([, tick]) => tick),
      [1_000_000, 1_000_200],
    );
    s.advance(200); // the lagging clock armed the next timer 1ms late: it fires at 1_000_401
    assert.deepEqual(
      s.fired.map(([, tick]) => tick),
      [1_000_000, 1_000_200, 1_000_400],
    );
    stop();
  });

  it("waits for the next grid point when run_on_start is off, and skips manual triggers", (t) => {
    const s = setup(t, 1_000_050);
    const stop = startScheduler(
      [trigger({ name: "quiet", durationMs: 200, runOnStart: false }), trigger({ name: "manual", type: "manual", durationMs: 0 })],
      s.fire,
      log,
      s.now,
    );
    assert.deepEqual(s.fired, []);
    s.advance(150);
    s.advance(200);
    assert.deepEqual(s.fired, [["quiet", 1_000_200], ["quiet", 1_000_400]]);
    stop();
  });

  it("puts quantized triggers started at different times on the same ticks; offset and non-quantized grids differ", (t) => {
    const s = setup(t, 5_000_030);
    const stop = startScheduler(
      [
        trigger({ name: "q", durationMs: 200, runOnStart: false }),
        trigger({ name: "off", durationMs: 200, runOnStart: false, offsetMs: 50 }),
        trigger({ name: "free", durationMs: 200, runOnStart: false, quantize: false }),
      ],
      s.fire,
      log,
      s.now,
    );
    s.advance(400);
    const ticks = (name: string) => s.fired.filter(([n]) => n === name).map(([, tick]) => tick);
    assert.deepEqual(ticks("q"), [5_000_200, 5_000_400]);
    assert.deepEqual(ticks("off"), [5_000_050, 5_000_250]);
    assert.deepEqual(ticks("free"), [5_000_230, 5_000_430]);
    stop();
  });

  it("keeps firing after a tick fails", (t) => {
    const s = setup(t, 2_000_000);
    const ticks: number[] = [];
    const failing = async (_tr: TriggerDef, tick: number) => {
      ticks.push(tick);
      throw new Error("publish failed");
    };
    const stop = startScheduler([trigger({ name: "f", durationMs: 200 })], failing, log, s.now);
    s.advance(200);
    s.advance(200);
    assert.deepEqual(ticks, [2_000_000, 2_000_200, 2_000_400]);
    stop();
  });

  it("stops cleanly: no fire after stop, and stopping twice is harmless", (t) => {
    const s = setup(t, 1_000_000);
    const stop = startScheduler([trigger({ name: "a", durationMs: 200 }), trigger({ name: "b", durationMs: 300 })], s.fire, log, s.now);
    s.advance(200);
    const before = s.fired.length;
    stop();
    s.advance(5_000);
    assert.equal(s.fired.length, before);
    stop();
  });

  it("runs on real timers with a 200ms period and leaves no timer behind", async () => {
    const fired: number[] = [];
    const started = Date.now();
    const stop = startScheduler([trigger({ name: "real", durationMs: 200 })], async (_tr, tick) => void fired.push(tick), log);
    await new Promise((r) => setTimeout(r, 650));
    stop();
    const count = fired.length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(fired.length, count, "no tick after stop");
    // run-on-start tick, then grid points, each fired once (a loaded machine may skip one, never repeat one)
    assert.equal(fired[0], Math.floor(started / 200) * 200);
    assert.ok(count >= 2, `fired ${count}`);
    for (let i = 1; i < count; i++) {
      assert.equal(fired[i] % 200, 0, `ticks ${fired.join(",")}`);
      assert.ok(fired[i] > fired[i - 1], `ticks ${fired.join(",")}`);
    }
  });
});
