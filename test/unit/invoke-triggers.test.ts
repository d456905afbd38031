// Covers @machina/invoke's cron triggers: validation of `cron` and `timezone`, cron ticks in UTC
// and other zones (daylight-saving days included), schedule descriptions, and the scheduler
// firing cron ticks at their instants, once each.
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { silentLogger } from "@machina/log";
import { MAX_TIMER_DELAY_MS } from "@machina/runtime";
import {
  compileLedgers,
  compileQuerySets,
  compileTriggers,
  currentTick,
  describeSchedule,
  nextFireAt,
  nextTick,
  startScheduler,
} from "@machina/invoke";
import type { TriggerDef } from "@machina/invoke";
import { badRequest, componentDoc } from "../support/component-docs";

const FILE = "config/default/invoke/triggers/nightly.yaml";

const doc = componentDoc;

const ledgers = compileLedgers([doc("websites", { lead_id: "domain", leads: [{ domain: "example.com" }] })]);
const querySets = compileQuerySets(
  [
    doc("websites_sitestats", { source: "sitestats", queries: ["site"], ledger: "websites" }),
    doc("websites_traffic", { source: "traffic", queries: ["traffic"], ledger: "websites" }),
  ],
  ledgers,
);

const compile = (d: Record<string, unknown>) => compileTriggers([doc("nightly", d, [FILE])], querySets).get("nightly")!;

function cron(expr: string, timezone = "UTC", over: Partial<TriggerDef> = {}): TriggerDef {
  return {
    name: "c",
    type: "cron",
    durationMs: 0,
    cron: expr,
    timezone,
    runOnStart: true,
    quantize: true,
    offsetMs: 0,
    querySets: ["websites_sitestats"],
    ...over,
  };
}

function timer(durationMs: number, over: Partial<TriggerDef> = {}): TriggerDef {
  return cron("", "", { type: "timer", durationMs, ...over });
}

const utc = Date.UTC;
const iso = (ms: number) => new Date(ms).toISOString();
const minute = 60_000;
const hour = 60 * minute;

describe("compileTriggers: cron", () => {
  it("compiles a cron trigger with timezone UTC by default and no query sets by default", () => {
    assert.deepEqual(compile({ type: "cron", cron: "0 9 * * 1-5" }), {
      name: "nightly",
      type: "cron",
      durationMs: 0,
      cron: "0 9 * * 1-5",
      timezone: "UTC",
      runOnStart: true,
      quantize: true,
      offsetMs: 0,
      querySets: [],
    });
    const t = compile({
      type: "cron",
      cron: "*/15 * * * *",
      timezone: "Europe/Paris",
      run_on_start: false,
      query_sets: ["websites_traffic", "websites_sitestats"],
    });
    assert.equal(t.timezone, "Europe/Paris");
    assert.equal(t.cron, "*/15 * * * *");
    assert.equal(t.runOnStart, false);
    assert.deepEqual(t.querySets, ["websites_traffic", "websites_sitestats"]);
    // 6 fields: seconds first
    assert.equal(compile({ type: "cron", cron: "30 0 9 * * *" }).cron, "30 0 9 * * *");
  });

  it("gives timers and manual triggers an empty cron and timezone, and lets a timer have no query sets", () => {
    const t = compile({ duration: "1m" });
    assert.equal(t.type, "timer");
    assert.equal(t.cron, "");
    assert.equal(t.timezone, "");
    assert.deepEqual(t.querySets, []);
    const m = compile({ type: "manual", query_sets: [] });
    assert.equal(m.cron, "");
    assert.equal(m.timezone, "");
    assert.deepEqual(m.querySets, []);
  });

  it("still refuses duplicate and unknown query sets", () => {
    assert.match(
      badRequest(() =>
        compile({ type: "cron", cron: "0 * * * *", query_sets: ["websites_traffic", "websites_traffic"] }),
      ).message,
      /^config\/default\/invoke\/triggers\/nightly\.yaml: query_sets\[1\]: query set "websites_traffic" is listed twice$/,
    );
    assert.match(
      badRequest(() => compile({ type: "cron", cron: "0 * * * *", query_sets: ["nope"] })).message,
      /^config\/default\/invoke\/triggers\/nightly\.yaml: query_sets\[0\]: unknown query set "nope" \(known: websites_sitestats, websites_traffic\)$/,
    );
  });

  it("refuses a bad cron expression, naming the file and the field with croner's reason", () => {
    const cases: [unknown, RegExp][] = [
      ["61 * * * *", /^invalid cron expression "61 \* \* \* \*": Invalid value for minute: 61$/],
      ["0 25 * * *", /^invalid cron expression "0 25 \* \* \*": Invalid value for hour: 25$/],
      [
        "0 9 * * mon-fry",
        /^invalid cron expression "0 9 \* \* mon-fry": configuration entry 5 \(1-fry\) contains illegal characters\.$/,
      ],
      ["* * * *", /^expected 5 fields \(minute hour day-of-month month day-of-week\) or 6 \(seconds first\), got 4/],
      ["0 0 0 1 1 * 2030", /^expected 5 fields .* got 7 in "0 0 0 1 1 \* 2030"$/],
      ["0 0 30 2 *", /^"0 0 30 2 \*" never fires: no date matches it$/],
      ["", /^expected a non-empty string, got ""$/],
      [5, /^expected a non-empty string, got 5$/],
      [undefined, /^is required for a cron trigger: its times, e.g\. 0 9 \* \* 1-5$/],
    ];
    for (const [expr, re] of cases) {
      const err = badRequest(() => compile({ type: "cron", cron: expr }));
      assert.ok(err.message.startsWith(`${FILE}: cron: `), err.message);
      assert.match(err.message.slice(`${FILE}: cron: `.length), re, String(expr));
      assert.equal(err.details.field, "cron", String(expr));
    }
  });

  it("refuses an unknown time zone at the field `timezone`", () => {
    for (const tz of ["Mars/Olympus", "Europe/Pariss", "+01:00"]) {
      const err = badRequest(() => compile({ type: "cron", cron: "0 9 * * *", timezone: tz }));
      assert.equal(
        err.message,
        `${FILE}: timezone: unknown time zone ${JSON.stringify(tz)}; expected an IANA name such as UTC, Europe/Paris or America/New_York`,
      );
      assert.equal(err.details.field, "timezone");
    }
    assert.match(
      badRequest(() => compile({ type: "cron", cron: "0 9 * * *", timezone: 1 })).message,
      /nightly\.yaml: timezone: expected a non-empty string, got 1$/,
    );
    // a bad zone does not hide a bad expression
    const both = badRequest(() => compile({ type: "cron", cron: "61 * * * *", timezone: "Nowhere/Land" }));
    assert.deepEqual(both.details.problems, [
      'timezone: unknown time zone "Nowhere/Land"; expected an IANA name such as UTC, Europe/Paris or America/New_York',
      'cron: invalid cron expression "61 * * * *": Invalid value for minute: 61',
    ]);
  });

  it("refuses `cron` and `timezone` on a timer or manual trigger, naming the field", () => {
    const onTimer = badRequest(() => compile({ duration: "1m", cron: "0 9 * * *" }));
    assert.equal(
      onTimer.message,
      `${FILE}: cron: is only for a cron trigger (type: cron); this one is a timer trigger`,
    );
    assert.equal(onTimer.details.field, "cron");
    const onManual = badRequest(() => compile({ type: "manual", timezone: "UTC" }));
    assert.equal(
      onManual.message,
      `${FILE}: timezone: is only for a cron trigger (type: cron); this one is a manual trigger`,
    );
    assert.equal(onManual.details.field, "timezone");
  });

  it("lists the cron keys in the unknown-key hint", () => {
    assert.match(
      badRequest(() => compile({ type: "cron", cron: "0 9 * * *", time_zone: "UTC" })).message,
      /nightly\.yaml: time_zone: unknown key \(did you mean "timezone"\?\); expected one of type, duration, cron, timezone, run_on_start, quantize, offset, query_sets$/,
    );
  });
});

describe("cron ticks", () => {
  it("UTC: the newest time at or before now, and the first one strictly after", () => {
    const t = cron("*/15 * * * *");
    const now = utc(2025, 0, 1, 10, 7, 30);
    assert.equal(iso(currentTick(t, now, 0)), "2025-01-01T10:00:00.000Z");
    assert.equal(iso(nextTick(t, now, 0)), "2025-01-01T10:15:00.000Z");
    const at = utc(2025, 0, 1, 10, 15);
    assert.equal(currentTick(t, at, 0), at, "a cron time is its own current tick");
    assert.equal(nextTick(t, at, 0), at + 15 * minute, "the next tick is strictly after");
    assert.equal(currentTick(t, at - 1, 0), at - 15 * minute);
    assert.equal(nextTick(t, at - 1, 0), at);
    assert.equal(currentTick(t, at + 999, 0), at);
    assert.equal(currentTick(t, at + 1, 0), at);
  });

  it("does not depend on the start time, so replicas agree on the tick", () => {
    const t = cron("*/15 * * * *");
    const now = utc(2025, 0, 1, 10, 7, 30);
    assert.equal(currentTick(t, now, 0), currentTick(t, now, now - 1234));
    assert.equal(nextTick(t, now, 5), nextTick(t, now, now));
  });

  it("6 fields: seconds first", () => {
    const t = cron("*/10 * * * * *");
    const now = utc(2025, 0, 1, 0, 0, 5, 500);
    assert.equal(iso(currentTick(t, now, 0)), "2025-01-01T00:00:00.000Z");
    assert.equal(iso(nextTick(t, now, 0)), "2025-01-01T00:00:10.000Z");
  });

  it("reads the fields in the trigger's zone: 9:00 on weekdays in New York, across the US DST start", () => {
    // 2025-03-07 is a Friday; the US moves to EDT on Sunday 2025-03-09. 9:00 EST = 14:00Z, 9:00 EDT = 13:00Z.
    const t = cron("0 9 * * 1-5", "America/New_York");
    const saturdayNoon = utc(2025, 2, 8, 12);
    assert.equal(currentTick(t, saturdayNoon, 0), utc(2025, 2, 7, 14), "Friday 9:00 EST");
    assert.equal(nextTick(t, saturdayNoon, 0), utc(2025, 2, 10, 13), "Monday 9:00 EDT");
    const monday = utc(2025, 2, 10, 13);
    assert.equal(currentTick(t, monday, 0), monday);
    assert.equal(currentTick(t, monday - 1, 0), utc(2025, 2, 7, 14));
    assert.equal(nextTick(t, monday, 0), utc(2025, 2, 11, 13), "Tuesday 9:00 EDT");
    // the same expression in UTC
    assert.equal(nextTick(cron("0 9 * * 1-5"), saturdayNoon, 0), utc(2025, 2, 10, 9));
    assert.equal(currentTick(cron("0 9 * * 1-5"), saturdayNoon, 0), utc(2025, 2, 7, 9));
  });

  it("finds rare times exactly: yearly and leap-day expressions", () => {
    // New Year in Paris is 23:00Z the evening before (CET, UTC+1)
    const yearly = cron("0 0 1 1 *", "Europe/Paris");
    assert.equal(iso(currentTick(yearly, utc(2025, 5, 15), 0)), "2024-12-31T23:00:00.000Z");
    assert.equal(iso(nextTick(yearly, utc(2025, 5, 15), 0)), "2025-12-31T23:00:00.000Z");
    const leap = cron("0 12 29 2 *");
    assert.equal(iso(currentTick(leap, utc(2027, 5, 1), 0)), "2024-02-29T12:00:00.000Z");
    assert.equal(iso(nextTick(leap, utc(2027, 5, 1), 0)), "2028-02-29T12:00:00.000Z");
    // 2100 is no leap year: 2096 is the newest leap day before 2103
    assert.equal(iso(currentTick(leap, utc(2103, 5, 1), 0)), "2096-02-29T12:00:00.000Z");
    assert.equal(iso(nextTick(leap, utc(2097, 0, 1), 0)), "2104-02-29T12:00:00.000Z");
  });

  it("currentTick and nextTick agree on one sequence of times, also across daylight-saving days", () => {
    const cases: [string, string, number][] = [
      ["30 2 * * *", "Europe/Paris", utc(2025, 2, 28)],
      ["30 2 * * *", "Europe/Paris", utc(2025, 9, 24)],
      ["*/30 * * * *", "Europe/Paris", utc(2025, 9, 25, 20)],
      ["30 2,14 * * *", "Europe/Paris", utc(2025, 9, 24)],
      ["15 1-3 * * *", "America/New_York", utc(2025, 10, 1)],
      ["0 9 * * 1-5", "America/New_York", utc(2025, 2, 5)],
      ["*/20 * * * * *", "Australia/Lord_Howe", utc(2025, 3, 5, 14, 50)],
    ];
    for (const [expr, tz, from] of cases) {
      const t = cron(expr, tz);
      let tick = nextTick(t, from, 0);
      for (let i = 0; i < 60; i++) {
        const next = nextTick(t, tick, 0);
        const label = `${expr} in ${tz} at ${iso(tick)}`;
        assert.ok(next > tick, label);
        assert.equal(currentTick(t, tick, 0), tick, label);
        assert.equal(currentTick(t, next - 1, 0), tick, label);
        assert.equal(currentTick(t, Math.floor((tick + next) / 2), 0), tick, label);
        assert.equal(nextTick(t, next - 1, 0), next, label);
        tick = next;
      }
    }
  });
});

describe("cron ticks on daylight-saving days (croner's rules)", () => {
  // Europe/Paris: 2025-03-30 02:00 CET jumps to 03:00 CEST (at 01:00Z); 2025-10-26 03:00 CEST
  // falls back to 02:00 CET (at 01:00Z), so 02:30 happens at 00:30Z and again at 01:30Z.
  const paris = cron("30 2 * * *", "Europe/Paris");

  it("a fixed time missing on the spring-forward day fires once, when the clock jumps", () => {
    const ticks = [nextTick(paris, utc(2025, 2, 29), 0)];
    while (ticks.length < 3) ticks.push(nextTick(paris, ticks[ticks.length - 1], 0));
    assert.deepEqual(ticks.map(iso), [
      "2025-03-29T01:30:00.000Z", // 02:30 CET
      "2025-03-30T01:00:00.000Z", // 02:30 does not exist: 03:00 CEST, when the clock jumps
      "2025-03-31T00:30:00.000Z", // 02:30 CEST
    ]);
    assert.equal(iso(currentTick(paris, utc(2025, 2, 30, 1), 0)), "2025-03-30T01:00:00.000Z");
    assert.equal(iso(currentTick(paris, utc(2025, 2, 30, 1) - 1, 0)), "2025-03-29T01:30:00.000Z");
    assert.equal(iso(currentTick(paris, utc(2025, 2, 30, 12), 0)), "2025-03-30T01:00:00.000Z");
  });

  it("a fixed time repeated on the fall-back day fires once, at its first occurrence", () => {
    const first = utc(2025, 9, 26, 0, 30); // 02:30 CEST
    assert.equal(nextTick(paris, utc(2025, 9, 25, 12), 0), first);
    assert.equal(iso(nextTick(paris, first, 0)), "2025-10-27T01:30:00.000Z", "not 01:30Z on the 26th");
    assert.equal(currentTick(paris, utc(2025, 9, 26, 1, 30), 0), first, "02:30 CET is no tick");
  });

  it("an expression that is no single fixed time skips the missing hour and fires twice in the repeated one", () => {
    const twice = cron("30 2,14 * * *", "Europe/Paris");
    assert.deepEqual(
      [nextTick(twice, utc(2025, 2, 29, 12), 0), nextTick(twice, utc(2025, 2, 29, 14), 0)].map(iso),
      ["2025-03-29T13:30:00.000Z", "2025-03-30T12:30:00.000Z"],
      "no 02:30 on 2025-03-30",
    );
    const fall: number[] = [nextTick(twice, utc(2025, 9, 25, 14), 0)];
    while (fall.length < 3) fall.push(nextTick(twice, fall[fall.length - 1], 0));
    assert.deepEqual(fall.map(iso), [
      "2025-10-26T00:30:00.000Z", // 02:30 CEST
      "2025-10-26T01:30:00.000Z", // 02:30 CET
      "2025-10-26T13:30:00.000Z", // 14:30 CET
    ]);
    assert.equal(iso(currentTick(twice, utc(2025, 9, 26, 1, 45), 0)), "2025-10-26T01:30:00.000Z");
  });
});

describe("nextFireAt and describeSchedule", () => {
  it("nextFireAt: null for manual, nextTick otherwise", () => {
    const now = utc(2025, 0, 1, 10, 7, 30);
    assert.equal(nextFireAt(cron("", "", { type: "manual" }), now, 0), null);
    assert.equal(nextFireAt(timer(minute), now, 0), utc(2025, 0, 1, 10, 8));
    assert.equal(nextFireAt(timer(minute, { quantize: false }), now, now - 1000), now + minute - 1000);
    assert.equal(nextFireAt(cron("0 * * * *"), now, 0), utc(2025, 0, 1, 11));
    assert.equal(nextFireAt(cron("0 * * * *", "Asia/Kathmandu"), now, 0), utc(2025, 0, 1, 10, 15), "UTC+5:45");
  });

  it("describeSchedule: the period for a timer, the expression for cron, manual", () => {
    assert.equal(describeSchedule(compile({ duration: "60s" })), "every 1m");
    assert.equal(describeSchedule(compile({ duration: "30d" })), "every 30d");
    assert.equal(describeSchedule(compile({ duration: "1500ms" })), "every 1500ms");
    assert.equal(describeSchedule(compile({ duration: "1m", offset: "10s" })), "every 1m, offset 10s");
    assert.equal(describeSchedule(compile({ duration: "1m", offset: "1m" })), "every 1m");
    assert.equal(describeSchedule(compile({ duration: "1h", quantize: false })), "every 1h, since start");
    assert.equal(
      describeSchedule(compile({ type: "cron", cron: "0 9 * * 1-5", timezone: "Europe/Paris" })),
      "0 9 * * 1-5",
    );
    assert.equal(describeSchedule(compile({ type: "manual" })), "manual");
  });
});

describe("startScheduler: cron", () => {
  const log = silentLogger();

  /** Mocked setTimeout and Date from `start`; `lag` makes the scheduler's clock run behind the timers. */
  function setup(t: TestContext, start: number) {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: start });
    const fired: [string, number][] = [];
    const clock = { lag: 0 };
    const now = () => Date.now() - clock.lag;
    const fire = async (tr: TriggerDef, tick: number) => {
      fired.push([tr.name, tick]);
    };
    // Mock timers show the end time of a tick() call to every callback it runs, so each step
    // below ends exactly on a fire time (or 1 ms before one).
    const until = (at: number) => t.mock.timers.tick(at - Date.now());
    const ticks = (name?: string) =>
      fired.filter(([n]) => name === undefined || n === name).map(([, tick]) => iso(tick));
    return { fired, now, fire, until, ticks, clock };
  }

  it("fires run-on-start for the latest cron time, then at each cron time", (t) => {
    const s = setup(t, utc(2025, 0, 1, 10, 7, 30));
    const stop = startScheduler([cron("*/15 * * * *", "UTC", { name: "q" })], s.fire, log, s.now);
    assert.deepEqual(s.ticks(), ["2025-01-01T10:00:00.000Z"]);
    s.until(utc(2025, 0, 1, 10, 15) - 1);
    assert.deepEqual(s.ticks(), ["2025-01-01T10:00:00.000Z"], "nothing before 10:15");
    s.until(utc(2025, 0, 1, 10, 15));
    assert.deepEqual(s.ticks(), ["2025-01-01T10:00:00.000Z", "2025-01-01T10:15:00.000Z"]);
    s.until(utc(2025, 0, 1, 10, 30) - 1);
    assert.equal(s.fired.length, 2);
    s.until(utc(2025, 0, 1, 10, 30));
    s.until(utc(2025, 0, 1, 10, 45));
    assert.deepEqual(s.ticks(), [
      "2025-01-01T10:00:00.000Z",
      "2025-01-01T10:15:00.000Z",
      "2025-01-01T10:30:00.000Z",
      "2025-01-01T10:45:00.000Z",
    ]);
    stop();
  });

  it("fires a cron tick only once when the timer runs a little before the wall clock reaches it", (t) => {
    const s = setup(t, utc(2025, 0, 1, 10, 7, 30));
    const stop = startScheduler([cron("*/15 * * * *", "UTC", { runOnStart: false })], s.fire, log, s.now);
    s.clock.lag = 1; // the timer fires when now() still says 10:14:59.999
    s.until(utc(2025, 0, 1, 10, 15));
    s.clock.lag = 0;
    t.mock.timers.tick(1);
    assert.deepEqual(s.ticks(), ["2025-01-01T10:15:00.000Z"]);
    s.until(utc(2025, 0, 1, 10, 30) + 1); // armed from the lagging clock: 1 ms late
    assert.deepEqual(s.ticks(), ["2025-01-01T10:15:00.000Z", "2025-01-01T10:30:00.000Z"]);
    stop();
  });

  it("waits for the next cron time without run_on_start, in the trigger's zone, next to timers and manual triggers", (t) => {
    // Saturday noon UTC; the next 9:00 New York weekday is Monday 13:00Z (EDT since Sunday)
    const s = setup(t, utc(2025, 2, 8, 12));
    const stop = startScheduler(
      [
        cron("0 9 * * 1-5", "America/New_York", { name: "ny", runOnStart: false }),
        cron("", "", { name: "manual", type: "manual" }),
        timer(12 * hour, { name: "timer", runOnStart: false }),
      ],
      s.fire,
      log,
      s.now,
    );
    assert.deepEqual(s.fired, []);
    for (const at of [utc(2025, 2, 9, 0), utc(2025, 2, 9, 12), utc(2025, 2, 10, 0), utc(2025, 2, 10, 12)]) s.until(at);
    s.until(utc(2025, 2, 10, 13) - 1);
    assert.deepEqual(s.ticks("ny"), []);
    assert.deepEqual(s.ticks("timer"), [
      "2025-03-09T00:00:00.000Z",
      "2025-03-09T12:00:00.000Z",
      "2025-03-10T00:00:00.000Z",
      "2025-03-10T12:00:00.000Z",
    ]);
    s.until(utc(2025, 2, 10, 13));
    assert.deepEqual(s.ticks("ny"), ["2025-03-10T13:00:00.000Z"]);
    s.until(utc(2025, 2, 11, 13));
    assert.deepEqual(s.ticks("ny"), ["2025-03-10T13:00:00.000Z", "2025-03-11T13:00:00.000Z"]);
    assert.deepEqual(s.ticks("manual"), []);
    stop();
  });

  it("two schedulers started at different times fire the same cron ticks", (t) => {
    const s = setup(t, utc(2025, 0, 1, 10, 7, 30));
    const a = startScheduler([cron("*/15 * * * *", "UTC", { name: "a" })], s.fire, log, s.now);
    s.until(utc(2025, 0, 1, 10, 12));
    const b = startScheduler([cron("*/15 * * * *", "UTC", { name: "b" })], s.fire, log, s.now);
    s.until(utc(2025, 0, 1, 10, 15));
    assert.deepEqual(s.ticks("a"), ["2025-01-01T10:00:00.000Z", "2025-01-01T10:15:00.000Z"]);
    assert.deepEqual(s.ticks("b"), s.ticks("a"));
    a();
    b();
  });

  it("fires a fixed time missing on the spring-forward day once, when the clock jumps", (t) => {
    const s = setup(t, utc(2025, 2, 30, 0, 59));
    const stop = startScheduler([cron("30 2 * * *", "Europe/Paris")], s.fire, log, s.now);
    assert.deepEqual(s.ticks(), ["2025-03-29T01:30:00.000Z"], "run on start: yesterday's 02:30 CET");
    s.until(utc(2025, 2, 30, 1) - 1);
    assert.equal(s.fired.length, 1);
    s.until(utc(2025, 2, 30, 1));
    assert.deepEqual(s.ticks(), ["2025-03-29T01:30:00.000Z", "2025-03-30T01:00:00.000Z"]);
    s.until(utc(2025, 2, 31, 0, 30));
    assert.deepEqual(s.ticks().slice(2), ["2025-03-31T00:30:00.000Z"]);
    stop();
  });

  it("fires a fixed time repeated on the fall-back day once", (t) => {
    const f = setup(t, utc(2025, 9, 26, 0));
    const stopFall = startScheduler([cron("30 2 * * *", "Europe/Paris", { runOnStart: false })], f.fire, log, f.now);
    f.until(utc(2025, 9, 26, 0, 30));
    f.until(utc(2025, 9, 26, 1, 30));
    f.until(utc(2025, 9, 27, 1, 30));
    assert.deepEqual(f.ticks(), ["2025-10-26T00:30:00.000Z", "2025-10-27T01:30:00.000Z"]);
    stopFall();
  });

  it("waits past setTimeout's limit for a yearly cron time, and stops cleanly", (t) => {
    const start = utc(2025, 5, 15);
    const s = setup(t, start);
    const stop = startScheduler([cron("0 0 1 1 *", "UTC", { runOnStart: false })], s.fire, log, s.now);
    const at = utc(2026, 0, 1);
    // a long timeout arms each chunk from the end of the previous one: step chunk by chunk
    let left = at - start;
    while (left > MAX_TIMER_DELAY_MS) {
      t.mock.timers.tick(MAX_TIMER_DELAY_MS);
      left -= MAX_TIMER_DELAY_MS;
      assert.deepEqual(s.fired, [], `nothing at ${iso(Date.now())}`);
    }
    t.mock.timers.tick(left - 1);
    assert.deepEqual(s.fired, [], "nothing 1 ms before New Year");
    t.mock.timers.tick(1);
    assert.deepEqual(s.ticks(), ["2026-01-01T00:00:00.000Z"]);
    stop();
    t.mock.timers.tick(400 * 86_400_000);
    assert.equal(s.fired.length, 1, "no fire after stop");
  });
});
