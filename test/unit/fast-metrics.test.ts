import { test } from "node:test";
import assert from "node:assert/strict";
import { Counter, Histogram, Registry } from "prom-client";
import { FastCounter, FastHistogram } from "@machina/runtime";

// The fast metrics must expose exactly what prom-client's own Counter and Histogram would for the
// same events: same lines, same labels (default labels included), same cumulative buckets.

const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1];

/** Exposition text with each line's labels sorted and the sample lines sorted: Prometheus reads neither order. */
function normalized(text: string): string[] {
  const lines = text.trim().split("\n");
  const head = lines.filter((l) => l.startsWith("#"));
  const samples = lines
    .filter((l) => !l.startsWith("#"))
    .map((l) => {
      const m = /^([^{ ]+)(?:\{(.*)\})? (.+)$/.exec(l);
      assert.ok(m, `not a sample line: ${l}`);
      const labels = (m[2] ?? "").split(",").filter(Boolean).sort().join(",");
      return `${m[1]}{${labels}} ${m[3]}`;
    });
  return [...head, ...samples.sort()];
}

/** Registry JSON with each metric's values in one order and label keys sorted. */
function normalizedJson(metrics: { name: string; values: { labels: object; value: number; metricName?: string }[] }[]) {
  return metrics.map((m) => ({
    ...m,
    values: m.values
      .map((v) => ({ ...v, labels: Object.fromEntries(Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : 1))) }))
      .map((v) => JSON.stringify([v.metricName ?? m.name, v.labels, v.value]))
      .sort(),
  }));
}

function registries(): [Registry, Registry] {
  const a = new Registry();
  const b = new Registry();
  for (const r of [a, b]) r.setDefaultLabels({ service: "data" });
  return [a, b];
}

test("FastHistogram exposes what prom-client's Histogram does for the same observations", async () => {
  const [ours, theirs] = registries();
  const fast = new FastHistogram({
    name: "h_seconds",
    help: "handler time",
    labelNames: ["endpoint"],
    buckets: BUCKETS,
    registers: [ours],
  });
  const prom = new Histogram({
    name: "h_seconds",
    help: "handler time",
    labelNames: ["endpoint"],
    buckets: BUCKETS,
    registers: [theirs],
  });
  const bound = fast.labels({ endpoint: "query" });
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2;
  for (let i = 0; i < 2000; i++) {
    const v = i % 97 === 0 ? BUCKETS[i % BUCKETS.length] : rnd() ** 4; // exact bounds land in their own bucket (le)
    const endpoint = i % 3 === 0 ? "store" : "query";
    if (endpoint === "query") bound.observe(v);
    else fast.observe({ endpoint }, v);
    prom.observe({ endpoint }, v);
  }
  fast.observe({ endpoint: "big" }, 30); // past every bound: only +Inf, _sum, _count
  prom.observe({ endpoint: "big" }, 30);
  assert.deepEqual(normalized(await ours.metrics()), normalized(await theirs.metrics()));
  assert.deepEqual(normalizedJson(await ours.getMetricsAsJSON()), normalizedJson(await theirs.getMetricsAsJSON()));
});

test("FastCounter exposes what prom-client's Counter does, bound or not", async () => {
  const [ours, theirs] = registries();
  const fast = new FastCounter({
    name: "c_total",
    help: "calls",
    labelNames: ["endpoint", "outcome"],
    registers: [ours],
  });
  const prom = new Counter({
    name: "c_total",
    help: "calls",
    labelNames: ["endpoint", "outcome"],
    registers: [theirs],
  });
  const ok = fast.labels({ endpoint: "query", outcome: "ok" });
  for (let i = 0; i < 500; i++) {
    ok.inc();
    prom.inc({ endpoint: "query", outcome: "ok" });
    if (i % 50 === 0) {
      fast.inc({ outcome: "BAD_REQUEST", endpoint: "query" }, 2); // key order does not matter
      prom.inc({ endpoint: "query", outcome: "BAD_REQUEST" }, 2);
    }
  }
  // Label sets that would run together if their values were simply joined stay apart.
  for (const labels of [
    { endpoint: "a|b", outcome: "c" },
    { endpoint: "a", outcome: "b|c" },
    { endpoint: "a,b", outcome: "" },
    { endpoint: "a", outcome: ",b" },
  ]) {
    fast.inc(labels);
    prom.inc(labels);
  }
  assert.deepEqual(normalized(await ours.metrics()), normalized(await theirs.metrics()));
  assert.equal((await ours.getMetricsAsJSON())[0].values.length, 6);
});

test("reset zeroes every series and bound series keep counting after it", async () => {
  const [ours] = registries();
  const fast = new FastCounter({ name: "c_total", help: "calls", labelNames: ["endpoint"], registers: [ours] });
  const h = new FastHistogram({
    name: "h_seconds",
    help: "t",
    labelNames: ["endpoint"],
    buckets: [1],
    registers: [ours],
  });
  const c = fast.labels({ endpoint: "a" });
  const s = h.labels({ endpoint: "a" });
  c.inc(5);
  s.observe(0.5);
  ours.resetMetrics();
  c.inc();
  s.observe(2);
  const json = await ours.getMetricsAsJSON();
  assert.equal(json[0].values[0].value, 1);
  const hv = json[1].values.map((v) => [(v as { metricName?: string }).metricName, v.labels.le, v.value]);
  assert.deepEqual(hv, [
    ["h_seconds_bucket", 1, 0],
    ["h_seconds_bucket", "+Inf", 1],
    ["h_seconds_sum", undefined, 2],
    ["h_seconds_count", undefined, 1],
  ]);
});

test("bad labels, values and buckets are refused with what is wrong", () => {
  const c = new FastCounter({ name: "c_total", help: "calls", labelNames: ["endpoint"] });
  assert.throws(() => c.inc({ endpiont: "a" } as never), /c_total: unknown label "endpiont"/);
  assert.throws(() => c.labels({ constructor: "x" } as never), /unknown label "constructor"/);
  assert.throws(() => c.inc({ endpoint: "a" }, -1), /finite number ≥ 0/);
  assert.throws(() => c.inc({ endpoint: "a" }, Number.NaN), /finite number ≥ 0/);
  const h = new FastHistogram({ name: "h", help: "t", labelNames: ["endpoint"], buckets: [1, 2] });
  assert.throws(() => h.observe({ endpoint: "a" }, Number.POSITIVE_INFINITY), /finite number/);
  assert.throws(
    () => new FastHistogram({ name: "h2", help: "t", labelNames: [], buckets: [2, 1] }),
    /h2: buckets must be finite and ascending/,
  );
});
