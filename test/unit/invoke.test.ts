// Covers @machina/invoke: ledger/query-set/trigger validation, deterministic task ids, tick grids, and the scheduler's timing.
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { loadComponents } from "@machina/config";
import { silentLogger } from "@machina/log";
import { MachinaError } from "@machina/wire";
import { MAX_TIMER_DELAY_MS, parseResources } from "@machina/runtime";
import {
  buildTasks,
  compileLedgers,
  compileQuerySets,
  compileTriggers,
  currentTick,
  nextTick,
  startScheduler,
} from "@machina/invoke";
import type { TriggerDef } from "@machina/invoke";
import { badRequest, componentDoc } from "../support/component-docs";

const doc = componentDoc;

const ledgerDocs = [
  doc(
    "websites",
    { source: "constant", lead_id: "domain", leads: [{ domain: "example.com", rank: 1 }, { domain: "example.org" }] },
    ["config/default/invoke/ledgers/websites.yaml"],
  ),
  doc("plain", { leads: [{ id: "a" }, { id: 2 }] }),
];
const ledgers = compileLedgers(ledgerDocs);
const querySets = compileQuerySets(
  [
    doc("websites_sitestats", { source: "sitestats", queries: ["site", "pages"], ledger: "websites" }),
    doc("plain_traffic", { source: "traffic", queries: ["traffic"], ledger: "plain" }),
  ],
  ledgers,
);

function trigger(over: Partial<TriggerDef> = {}): TriggerDef {
  return {
    name: "t",
    type: "timer",
    durationMs: 60_000,
    cron: "",
    timezone: "",
    runOnStart: true,
    quantize: true,
    offsetMs: 0,
    querySets: ["websites_sitestats"],
    ...over,
  };
}

const leadsOf = (table: ReturnType<typeof compileLedgers>, name: string) => [...table.get(name)!.store.after(null)];

describe("compileLedgers", () => {
  it("compiles leads keyed by lead_id (default `id`), keeping every field as args, in id order", () => {
    assert.deepEqual(leadsOf(ledgers, "websites"), [
      { id: "example.com", args: { domain: "example.com", rank: 1 } },
      { id: "example.org", args: { domain: "example.org" } },
    ]);
    assert.deepEqual(
      leadsOf(ledgers, "plain").map((l) => l.id),
      ["2", "a"],
    );
  });

  it("rejects an unknown key, naming the file and the key", () => {
    const err = badRequest(() =>
      compileLedgers([doc("w", { leads: [], lead: "x" }, ["config/default/invoke/ledgers/w.yaml"])]),
    );
    assert.match(
      err.message,
      /^config\/default\/invoke\/ledgers\/w\.yaml: lead: unknown key \(did you mean "leads"\?\); expected one of source, lead_id, fields, leads, from, refresh$/,
    );
  });

  it("names every contributing file when a doc came from several", () => {
    const err = badRequest(() =>
      compileLedgers([
        doc("w", { leads: "no" }, ["config/default/invoke/ledgers/w.yaml", "config/prod/invoke/ledgers/w.yaml"]),
      ]),
    );
    assert.match(
      err.message,
      /^config\/default\/invoke\/ledgers\/w\.yaml \+ config\/prod\/invoke\/ledgers\/w\.yaml: leads: /,
    );
  });

  it("leaves out a lead without its id field, naming its index, and keeps the others", () => {
    for (const missing of [{}, { domain: null }, { domain: "" }]) {
      const l = compileLedgers([
        doc("w", { lead_id: "domain", leads: [{ domain: "a.com" }, missing, { domain: "b.com" }] }),
      ]);
      assert.deepEqual(l.get("w")!.store.ids(), ["a.com", "b.com"]);
      assert.deepEqual(l.get("w")!.rejected, [{ id: "leads[1]", error: 'missing its id field "domain"' }]);
      assert.equal(l.get("w")!.rejectedTotal, 1);
    }
  });

  it("leaves out a repeated lead id, also across number and string spellings, keeping the first", () => {
    const l = compileLedgers([
      doc("w", { leads: [{ id: "a", n: 1 }, { id: "b" }, { id: "a", n: 2 }, { id: 1 }, { id: "1" }] }),
    ]);
    assert.deepEqual(leadsOf(l, "w"), [
      { id: "1", args: { id: 1 } },
      { id: "a", args: { id: "a", n: 1 } },
      { id: "b", args: { id: "b" } },
    ]);
    assert.deepEqual(
      l.get("w")!.rejected.map((p) => p.error),
      ['leads[2]: duplicate lead id "a"', 'leads[4]: duplicate lead id "1"'],
    );
  });

  it("checks leads against the declared fields: required, typed, optional with ?, nothing undeclared", () => {
    const l = compileLedgers([
      doc("w", {
        lead_id: "domain",
        fields: { domain: "string", rank: "integer", tag: "string?" },
        leads: [
          { domain: "ok.com", rank: 1 },
          { domain: "tagged.com", rank: 2, tag: "news" },
          { domain: "norank.com" },
          { domain: "float.com", rank: 1.5 },
          { domain: "typo.com", rank: 3, tga: "x" },
          { domain: 7, rank: 4 },
          "not a mapping",
        ],
      }),
    ]);
    assert.deepEqual(l.get("w")!.store.ids(), ["ok.com", "tagged.com"]);
    assert.deepEqual(l.get("w")!.rejected, [
      { id: "leads[2]", error: 'missing field "rank" (integer)' },
      { id: "leads[3]", error: 'field "rank": expected integer, got 1.5' },
      { id: "leads[4]", error: 'undeclared field "tga" (declared: domain, rank, tag)' },
      { id: "leads[5]", error: 'field "domain": expected string, got 7' },
      { id: "leads[6]", error: 'expected a mapping of fields, got "not a mapping"' },
    ]);
  });

  it("rejects malformed ledgers as a whole, naming the field", () => {
    assert.match(
      badRequest(() => compileLedgers([doc("w", { source: "file", leads: [] })])).message,
      /source: expected one of "constant", "kv", "self"|source: .*"file"/,
    );
    assert.match(
      badRequest(() => compileLedgers([doc("w", { lead_id: 3, leads: [] })])).message,
      /lead_id: expected a name \(.*\), got 3/,
    );
    assert.match(badRequest(() => compileLedgers([doc("w", {})])).message, /leads: is required for a constant ledger/);
    assert.match(
      badRequest(() => compileLedgers([doc("w", { fields: { rank: "float" }, leads: [] })])).message,
      /fields\.rank: unknown type "float"; expected one of string, number, integer, boolean, any/,
    );
    assert.match(
      badRequest(() => compileLedgers([doc("w", { source: "kv", leads: [] })])).message,
      /leads: is for a constant ledger only; a kv ledger's leads are written through invoke.ledger.put/,
    );
    assert.match(
      badRequest(() => compileLedgers([doc("w", { source: "self", refresh: "t" })])).message,
      /from: is required for a self ledger/,
    );
    assert.match(
      badRequest(() => compileLedgers([doc("w", { source: "self", from: { computation: "distinct" } })])).message,
      /refresh: is required for a self ledger/,
    );
    assert.match(
      badRequest(() =>
        compileLedgers([doc("w", { source: "self", refresh: "t", from: { computation: "a", subject: "x.y" } })]),
      ).message,
      /from: needs exactly one of computation and subject/,
    );
    assert.match(
      badRequest(() => compileLedgers([doc("w", { leads: [], refresh: "t" })])).message,
      /refresh: is for a self ledger only/,
    );
  });

  it("compiles kv and self ledgers empty until their leads are loaded, a self ledger reading compute.get.<name>", () => {
    const l = compileLedgers(
      [
        doc("k", { source: "kv", lead_id: "domain" }),
        doc("s", {
          source: "self",
          lead_id: "domain",
          refresh: "t",
          from: { computation: "distinct", args: { type: "b" } },
        }),
      ],
      (n) => `machina.compute.get.${n}`,
    );
    assert.equal(l.get("k")!.store.size, 0);
    assert.equal(l.get("k")!.loaded, false);
    assert.equal(l.get("s")!.shape.undeclared, "drop");
    assert.deepEqual(l.get("s")!.from, {
      computation: "distinct",
      subject: "machina.compute.get.distinct",
      args: { type: "b" },
      pageSize: 500,
    });
  });

  it("refuses a ledger whose file name breaks the name rule, with the name to write", () => {
    const err = badRequest(() =>
      compileLedgers([doc("Top-Sites", { leads: [] }, ["config/default/invoke/ledgers/Top-Sites.yaml"])]),
    );
    assert.match(
      err.message,
      /^config\/default\/invoke\/ledgers\/Top-Sites\.yaml: the file name is the component's name: "Top-Sites" is not a name: .*\(write "top_sites"\)$/,
    );
    assert.match(
      badRequest(() => compileLedgers([doc("w", { lead_id: "Domain", leads: [] })])).message,
      /lead_id: "Domain" is not a name: .*\(write "domain"\)/,
    );
  });

  it("refuses a `__proto__` key of a lead parsed from JSON, leaving prototypes alone", () => {
    const raw = JSON.parse('{"leads":[{"id":"a"},{"id":"b","__proto__":{"polluted":1}}]}') as Record<string, unknown>;
    assert.match(
      badRequest(() => compileLedgers([doc("w", raw)])).message,
      /w\.yaml: leads\[1\]\.__proto__: this name is reserved/,
    );
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    // Other prototype names are ordinary lead fields.
    const l = compileLedgers([
      doc("w", JSON.parse('{"leads":[{"id":"a","constructor":"c","toString":1}]}') as Record<string, unknown>),
    ]);
    assert.deepEqual(leadsOf(l, "w")[0].args, { id: "a", constructor: "c", toString: 1 });
  });
});

describe("compileQuerySets", () => {
  it("compiles a query set referencing a known ledger", () => {
    assert.deepEqual(querySets.get("websites_sitestats"), {
      name: "websites_sitestats",
      source: "sitestats",
      queries: ["site", "pages"],
      ledger: "websites",
      resources: "",
    });
  });

  it("rejects an unknown ledger, listing the known ones", () => {
    const err = badRequest(() =>
      compileQuerySets(
        [doc("qs", { source: "s", queries: ["q"], ledger: "nope" }, ["config/default/invoke/query_sets/qs.yaml"])],
        ledgers,
      ),
    );
    assert.match(
      err.message,
      /^config\/default\/invoke\/query_sets\/qs\.yaml: ledger: unknown ledger "nope" \(known: websites, plain\)/,
    );
  });

  it("rejects unknown keys, bad sources and bad query lists", () => {
    assert.match(
      badRequest(() =>
        compileQuerySets([doc("qs", { source: "s", queries: ["q"], ledger: "plain", extra: 1 })], ledgers),
      ).message,
      /qs\.yaml: extra: unknown key/,
    );
    const sources: [unknown, RegExp][] = [
      [undefined, /is required/],
      [3, /expected a name \(.*\), got 3/],
      ["a.b", /"a\.b" is not a name/],
      ["", /expected a name/],
    ];
    for (const [source, re] of sources) {
      assert.match(
        badRequest(() => compileQuerySets([doc("qs", { source, queries: ["q"], ledger: "plain" })], ledgers)).message,
        new RegExp(`: source: ${re.source}`),
      );
    }
    // query names are tokens like in fetch source files; a '/' would make task ids ambiguous
    const lists: [unknown, RegExp][] = [
      [undefined, /queries: is required/],
      [[], /queries: expected a non-empty list/],
      ["q", /queries: expected a list, got "q"/],
      [[""], /queries\[0\]: expected a name/],
      [["q", 3], /queries\[1\]: expected a name \(.*\), got 3/],
      [["a/b"], /queries\[0\]: "a\/b" is not a name/],
      [["a.b"], /queries\[0\]: "a\.b" is not a name/],
    ];
    for (const [queries, re] of lists) {
      assert.match(
        badRequest(() => compileQuerySets([doc("qs", { source: "s", queries, ledger: "plain" })], ledgers)).message,
        re,
        JSON.stringify(queries),
      );
    }
    assert.match(
      badRequest(() =>
        compileQuerySets([doc("qs", { source: "s", queries: ["a", "b", "a"], ledger: "plain" })], ledgers),
      ).message,
      /qs\.yaml: queries\[2\]: query "a" is listed twice/,
    );
  });

  it("turns a query set's resources into the Machina-Resources of its tasks, refusing bad amounts by field", () => {
    const [qs] = compileQuerySets(
      [doc("qs", { source: "s", queries: ["q"], ledger: "plain", resources: { ram: "2G", cpu: "500m", gpu: 1 } })],
      ledgers,
    ).values();
    assert.equal(qs.resources, `cpu=0.5, ram=${2 * 1024 ** 3}, gpu=1`);
    assert.deepEqual(parseResources(qs.resources), { cpu: 0.5, ram: 2 * 1024 ** 3, gpu: 1 });
    assert.equal(querySets.get("plain_traffic")?.resources, "");
    const bad: [unknown, RegExp][] = [
      [{ ram: "lots" }, /qs\.yaml: resources\.ram: .*"lots"/],
      [{ gpu: 0.5 }, /qs\.yaml: resources\.gpu: "0\.5" is not a whole number of GPUs/],
      [{ disk: "1G" }, /qs\.yaml: resources\.disk: unknown key/],
      [{ constructor: 1 }, /qs\.yaml: resources\.constructor: unknown key/],
      ["2G", /qs\.yaml: resources: /],
    ];
    for (const [resources, re] of bad) {
      assert.match(
        badRequest(() =>
          compileQuerySets([doc("qs", { source: "s", queries: ["q"], ledger: "plain", resources })], ledgers),
        ).message,
        re,
        JSON.stringify(resources),
      );
    }
  });

  it("applies the name rule to the file name, the source and the queries, saying what to write", () => {
    const qs = (name: string, d: Record<string, unknown>) =>
      badRequest(() => compileQuerySets([doc(name, { source: "s", queries: ["q"], ledger: "plain", ...d })], ledgers))
        .message;
    assert.match(
      qs("websites-traffic", {}),
      /websites-traffic\.yaml: the file name is the component's name: "websites-traffic" is not a name: .*\(write "websites_traffic"\)$/,
    );
    assert.match(
      qs("qs", { source: "SiteStats" }),
      /qs\.yaml: source: "SiteStats" is not a name: .*\(write "sitestats"\)$/,
    );
    assert.match(
      qs("qs", { queries: ["site", "top-pages"] }),
      /qs\.yaml: queries\[1\]: "top-pages" is not a name: .*\(write "top_pages"\)$/,
    );
    assert.match(qs("qs", { queries: ["a".repeat(43)] }), /queries\[0\]: "a{20}…" is longer than 42 characters/);
  });

  it("hints at the key meant by an unknown one", () => {
    const err = badRequest(() =>
      compileQuerySets([doc("qs", { source: "s", queries: ["q"], ledger: "plain", quries: ["x"] })], ledgers),
    );
    assert.match(
      err.message,
      /qs\.yaml: quries: unknown key \(did you mean "queries"\?\); expected one of source, queries, ledger, resources$/,
    );
  });
});

describe("compileTriggers", () => {
  const compile = (d: Record<string, unknown>) =>
    compileTriggers([doc("refresh", d, ["config/default/invoke/triggers/refresh.yaml"])], querySets).get("refresh")!;

  it("applies defaults: timer, run on start, quantized, no offset", () => {
    assert.deepEqual(compile({ duration: "1m", query_sets: ["websites_sitestats"] }), {
      name: "refresh",
      type: "timer",
      durationMs: 60_000,
      cron: "",
      timezone: "",
      runOnStart: true,
      quantize: true,
      offsetMs: 0,
      querySets: ["websites_sitestats"],
    });
    const t = compile({
      duration: "30s",
      offset: "5s",
      run_on_start: false,
      quantize: false,
      query_sets: ["plain_traffic", "websites_sitestats"],
    });
    assert.equal(t.offsetMs, 5000);
    assert.equal(t.runOnStart, false);
    assert.equal(t.quantize, false);
    assert.deepEqual(t.querySets, ["plain_traffic", "websites_sitestats"]);
  });

  it("does not need a duration for a manual trigger", () => {
    const t = compile({ type: "manual", query_sets: ["plain_traffic"] });
    assert.equal(t.type, "manual");
    assert.equal(t.durationMs, 0);
  });

  it("rejects an unknown query set, naming its index and the known ones", () => {
    const err = badRequest(() => compile({ duration: "1m", query_sets: ["websites_sitestats", "nope"] }));
    assert.match(
      err.message,
      /^config\/default\/invoke\/triggers\/refresh\.yaml: query_sets\[1\]: unknown query set "nope" \(known: websites_sitestats, plain_traffic\)/,
    );
    // query_sets is optional (default []): a trigger may only refresh ledgers
    assert.deepEqual(compile({ duration: "1m", query_sets: [] }).querySets, []);
    assert.deepEqual(compile({ duration: "1m" }).querySets, []);
  });

  it("rejects bad durations and offsets, quoting the value", () => {
    const durations: [unknown, RegExp][] = [
      ["soon", /expected a duration such as .*, got "soon"/],
      ["10", /expected a duration such as .*, got "10"/],
      [undefined, /is required for a timer/],
      ["50ms", /must be at least 100ms, got "50ms"/],
      [99, /expected a duration with a unit .*, got the bare number 99/],
      ["-1m", /expected a duration such as .*, got "-1m"/],
    ];
    for (const [duration, re] of durations) {
      const err = badRequest(() => compile({ duration, query_sets: ["plain_traffic"] }));
      assert.match(err.message, new RegExp(`refresh\\.yaml: duration: ${re.source}`), String(duration));
    }
    assert.equal(compile({ duration: "100ms", query_sets: ["plain_traffic"] }).durationMs, 100);
    assert.match(
      badRequest(() => compile({ duration: "1m", offset: "later", query_sets: ["plain_traffic"] })).message,
      /offset: expected a duration such as .*, got "later"/,
    );
  });

  it("rejects unknown keys, bad types and non-boolean flags", () => {
    assert.match(
      badRequest(() => compile({ duration: "1m", query_sets: ["plain_traffic"], every: "1m" })).message,
      /refresh\.yaml: every: unknown key/,
    );
    assert.match(
      badRequest(() => compile({ type: "hourly", duration: "1m", query_sets: ["plain_traffic"] })).message,
      /type: expected one of timer, cron, manual, got "hourly"/,
    );
    assert.match(
      badRequest(() => compile({ duration: "1m", run_on_start: "yes", query_sets: ["plain_traffic"] })).message,
      /run_on_start: expected true or false/,
    );
    assert.match(
      badRequest(() => compile({ duration: "1m", quantize: 1, query_sets: ["plain_traffic"] })).message,
      /quantize: expected true or false/,
    );
    assert.match(
      badRequest(() => compile({ duration: "1m", query_sets: ["plain_traffic", "plain_traffic"] })).message,
      /query_sets\[1\]: query set "plain_traffic" is listed twice/,
    );
  });

  it("refuses a bare number as a duration or offset, asking for the unit", () => {
    // `300` used to mean 300 ms; it could as well be seconds, so the unit must be written.
    const err = badRequest(() => compile({ duration: 300, query_sets: ["plain_traffic"] }));
    assert.equal(
      err.message,
      "config/default/invoke/triggers/refresh.yaml: duration: expected a duration with a unit such as 250ms, 1s, 15m, 1h or 1d, got the bare number 300; write 300ms or 300s, whichever is meant",
    );
    assert.equal(err.details.field, "duration");
    assert.match(
      badRequest(() => compile({ duration: "1m", offset: 10, query_sets: ["plain_traffic"] })).message,
      /offset: .*got the bare number 10; write 10ms or 10s/,
    );
    assert.equal(compile({ duration: "300ms", query_sets: ["plain_traffic"] }).durationMs, 300);
  });

  it("refuses a bare number from an env override, naming the variable", () => {
    const docs = loadComponents("invoke/triggers", { env: { MACHINA_INVOKE_TRIGGERS_REFRESH_DURATION: "300" } }).filter(
      (d) => d.name === "refresh",
    );
    const sets = new Map([...querySets, ["websites_traffic", querySets.get("plain_traffic")!]]);
    const err = badRequest(() => compileTriggers(docs, sets));
    assert.match(
      err.message,
      /^config\/default\/invoke\/triggers\/refresh\.yaml \+ env MACHINA_INVOKE_TRIGGERS_REFRESH_DURATION: duration: .*the bare number 300/,
    );
  });

  it("accepts periods longer than setTimeout's limit, e.g. 30 days", () => {
    const t = compile({ duration: "30d", query_sets: ["plain_traffic"] });
    assert.equal(t.durationMs, 30 * 86_400_000);
    assert.ok(t.durationMs > MAX_TIMER_DELAY_MS);
  });

  it("applies the name rule to the file name and the query set names", () => {
    const err = badRequest(() =>
      compileTriggers([doc("Refresh", { duration: "1m", query_sets: ["plain_traffic"] })], querySets),
    );
    assert.match(
      err.message,
      /Refresh\.yaml: the file name is the component's name: "Refresh" is not a name: .*\(write "refresh"\)$/,
    );
    assert.match(
      badRequest(() => compile({ duration: "1m", query_sets: ["websites-sitestats"] })).message,
      /query_sets\[0\]: "websites-sitestats" is not a name: .*\(write "websites_sitestats"\)$/,
    );
  });

  it("hints at the key meant by an unknown one, also next to the key it leaves missing", () => {
    const err = badRequest(() => compile({ duration: "1m", query_sets: ["plain_traffic"], run_on_strat: false }));
    assert.match(
      err.message,
      /refresh\.yaml: run_on_strat: unknown key \(did you mean "run_on_start"\?\); expected one of type, duration, cron, timezone, run_on_start, quantize, offset, query_sets$/,
    );
    const missing = badRequest(() => compile({ duration: "1m", qurey_sets: ["plain_traffic"] }));
    assert.ok(
      (missing.details.problems as string[]).some((p) =>
        /^qurey_sets: unknown key \(did you mean "query_sets"\?\)/.test(p),
      ),
      String(missing.details.problems),
    );
  });
});

describe("buildTasks", () => {
  const qs = querySets.get("websites_sitestats")!;

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
      assert.equal(t.querySet, "websites_sitestats");
      assert.deepEqual(
        t.lead,
        leadsOf(ledgers, qs.ledger).find((l) => l.id === t.lead.id),
      );
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
    const tricky = compileLedgers([
      doc("tricky", { leads: [{ id: "a" }, { id: "a/b" }, { id: "b" }, { id: "60000" }, { id: "x@1" }] }),
    ]);
    const allLedgers = new Map([...ledgers, ...tricky]);
    const sets = compileQuerySets(
      [
        doc("qs", { source: "s", queries: ["b", "c", "b_c"], ledger: "tricky" }),
        doc("qs_2", { source: "s", queries: ["b", "c"], ledger: "tricky" }),
      ],
      allLedgers,
    );
    const seen = new Map<string, string>();
    for (const trig of ["t", "t@6", "t-2"]) {
      for (const time of [6, 60_000, 660_000]) {
        for (const name of ["qs", "qs_2"]) {
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
      () =>
        buildTasks({ name: "x", source: "s", queries: ["q"], ledger: "gone", resources: "" }, ledgers, {
          trigger: "t",
          time: 0,
        }),
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
    const idsA = buildTasks(querySets.get("websites_sitestats")!, ledgers, {
      trigger: "refresh",
      time: currentTick(t1, now, 5),
    }).map((t) => t.id);
    const idsB = buildTasks(querySets.get("websites_sitestats")!, ledgers, {
      trigger: "refresh",
      time: currentTick(t2, now, now - 7),
    }).map((t) => t.id);
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
    assert.notEqual(
      currentTick(t, started + 3 * minute, started),
      currentTick(t, started + 3 * minute, started + 1234),
    );
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
    assert.deepEqual(s.fired, [
      ["a", 1_000_000],
      ["a", 1_000_200],
    ]);
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
      [
        trigger({ name: "quiet", durationMs: 200, runOnStart: false }),
        trigger({ name: "manual", type: "manual", durationMs: 0 }),
      ],
      s.fire,
      log,
      s.now,
    );
    assert.deepEqual(s.fired, []);
    s.advance(150);
    s.advance(200);
    assert.deepEqual(s.fired, [
      ["quiet", 1_000_200],
      ["quiet", 1_000_400],
    ]);
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

  it("fires a 30-day trigger after 30 days, not at once (no setTimeout overflow)", (t) => {
    const day = 86_400_000;
    const period = 30 * day;
    const start = 600 * period + 5_000; // 5 s past a grid point
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: start });
    const fired: number[] = [];
    const stop = startScheduler(
      [trigger({ name: "monthly", durationMs: period, runOnStart: false })],
      async (_tr, tick) => void fired.push(tick),
      log,
    );
    // Mock timers run callbacks at the end time of their tick() call, and a long timeout arms
    // its next chunk from there: every step below ends on a chunk boundary or the fire time.
    const delay = period - 5_000;
    t.mock.timers.tick(1);
    assert.deepEqual(fired, [], "nothing at 1 ms");
    t.mock.timers.tick(MAX_TIMER_DELAY_MS - 1);
    assert.deepEqual(fired, [], "nothing at setTimeout's limit");
    t.mock.timers.tick(delay - MAX_TIMER_DELAY_MS - 1);
    assert.deepEqual(fired, [], "nothing 1 ms before the grid point");
    t.mock.timers.tick(1);
    assert.deepEqual(fired, [601 * period]);
    t.mock.timers.tick(MAX_TIMER_DELAY_MS);
    t.mock.timers.tick(period - MAX_TIMER_DELAY_MS - 1);
    assert.deepEqual(fired, [601 * period]);
    t.mock.timers.tick(1);
    assert.deepEqual(fired, [601 * period, 602 * period]);
    t.mock.timers.tick(MAX_TIMER_DELAY_MS);
    stop();
    t.mock.timers.tick(2 * period);
    assert.equal(fired.length, 2, "stop cancels a long timer between its chunks");
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
    const stop = startScheduler(
      [trigger({ name: "a", durationMs: 200 }), trigger({ name: "b", durationMs: 300 })],
      s.fire,
      log,
      s.now,
    );
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
    const stop = startScheduler(
      [trigger({ name: "real", durationMs: 200 })],
      async (_tr, tick) => void fired.push(tick),
      log,
    );
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
