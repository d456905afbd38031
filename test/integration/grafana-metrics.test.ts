// The monitoring artefacts against the real services: all six start in this process (data on the
// test Cassandra), and each one's /metrics page is scraped. docs/metrics.md must be what
// `make docs` writes and must list exactly the metric families each service shows, with their
// types and labels; every metric and label deploy/grafana/machina-dashboard.json names must exist
// on some service; deploy/prometheus/prometheus.yml must parse and scrape each service on its
// default probe port.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import cassandra from "cassandra-driver";
import { parse as parseYaml } from "yaml";
import { aggregateService } from "@machina/aggregate";
import { computeService } from "@machina/compute";
import { dataService } from "@machina/data";
import { fetchService } from "@machina/fetch";
import { invokeService } from "@machina/invoke";
import { MeshClient, startService, type ServiceSpec } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import { vertexService } from "@machina/vertex";
import { SERVICES, collectMetrics, renderMetricsDoc, type MetricDoc } from "../../tools/gen-metrics-docs";
import { adminCqlClient, dataServiceEnv } from "../support/cassandra-env";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { writeConfig } from "../support/service-procs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const DASHBOARD = path.join(ROOT, "deploy/grafana/machina-dashboard.json");
const PROMETHEUS = path.join(ROOT, "deploy/prometheus/prometheus.yml");

const prefix = uniquePrefix("grafana");
const keyspace = `${prefix.replace(/[^a-z0-9_]/g, "_")}_ks`;

type Svc = (typeof SERVICES)[number];
const SPECS: Record<Svc, ServiceSpec<unknown>> = {
  fetch: fetchService as ServiceSpec<unknown>,
  invoke: invokeService as ServiceSpec<unknown>,
  aggregate: aggregateService as ServiceSpec<unknown>,
  data: dataService as ServiceSpec<unknown>,
  compute: computeService as ServiceSpec<unknown>,
  vertex: vertexService as ServiceSpec<unknown>,
};

// ---- the /metrics text format --------------------------------------------------------------

/** One scraped page: families by name with their type, and the label names seen on samples. */
interface Scrape {
  types: Map<string, string>;
  sampleLabels: Map<string, Set<string>>;
}

function parseExposition(text: string): Scrape {
  const types = new Map<string, string>();
  const sampleLabels = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    const t = line.match(/^# TYPE (\S+) (\S+)$/);
    if (t) {
      types.set(t[1], t[2]);
      continue;
    }
    if (line === "" || line.startsWith("#")) continue;
    const s = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /);
    assert.ok(s, `unparsable /metrics line: ${line}`);
    const family = familyOf(s[1], types);
    assert.ok(family !== undefined, `sample ${s[1]} has no # TYPE line before it`);
    const labels = sampleLabels.get(family) ?? new Set<string>();
    for (const m of (s[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) labels.add(m[1]);
    sampleLabels.set(family, labels);
  }
  return { types, sampleLabels };
}

/** The family a series name belongs to: itself, or a histogram's/summary's `_bucket|_sum|_count`. */
function familyOf(series: string, types: Map<string, string>): string | undefined {
  if (types.has(series)) return series;
  const m = series.match(/^(.*)_(bucket|sum|count)$/);
  if (m === null) return undefined;
  const type = types.get(m[1]);
  if (type === "histogram" || (type === "summary" && m[2] !== "bucket")) return m[1];
  return undefined;
}

// ---- PromQL: the metric and label names an expression uses ----------------------------------

/** A metric named in an expression, with the labels its own selector matches on. */
interface MetricRef {
  name: string;
  selectorLabels: string[];
}

/** What an expression names: metrics (with their selectors), and labels of by/without/on/… lists. */
export interface PromqlNames {
  metrics: MetricRef[];
  groupingLabels: string[];
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end"]);
const LABEL_LISTS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
// Aggregations may put their `by (…)` before the parenthesis: `sum by (x) (…)`.
const AGGREGATIONS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);

/**
 * Scans a PromQL expression (with Grafana's `$var`/`${var}` macros) for the names in it: an
 * identifier followed by `(` is a function or aggregation (so is an aggregation before `by`),
 * unless it opens a label list; strings, numbers, durations and `[range]`s are skipped; `{…}`
 * holds label matchers.
 */
export function promqlNames(expr: string): PromqlNames {
  const metrics: MetricRef[] = [];
  const groupingLabels: string[] = [];
  let i = 0;
  const n = expr.length;
  const skipSpace = () => {
    while (i < n && /\s/.test(expr[i])) i++;
  };
  const readString = () => {
    const q = expr[i++];
    while (i < n && expr[i] !== q) i += expr[i] === "\\" ? 2 : 1;
    i++;
  };
  const readIdent = () => {
    const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i));
    if (m === null) return undefined;
    i += m[0].length;
    return m[0];
  };
  const readLabelList = () => {
    // At `(`: labels separated by commas.
    i++;
    for (;;) {
      skipSpace();
      if (i >= n) throw new Error(`unclosed label list in: ${expr}`);
      if (expr[i] === ")") {
        i++;
        return;
      }
      if (expr[i] === ",") {
        i++;
        continue;
      }
      const id = readIdent();
      if (id === undefined) throw new Error(`unexpected ${expr[i]} in a label list of: ${expr}`);
      groupingLabels.push(id);
    }
  };
  const readMatchers = (): string[] => {
    // At `{`: label op "value" pairs.
    i++;
    const labels: string[] = [];
    for (;;) {
      skipSpace();
      if (i >= n) throw new Error(`unclosed selector in: ${expr}`);
      const c = expr[i];
      if (c === "}") {
        i++;
        return labels;
      }
      if (c === "," || c === "=" || c === "!" || c === "~") i++;
      else if (c === '"' || c === "'" || c === "`") readString();
      else {
        const id = readIdent();
        if (id === undefined) throw new Error(`unexpected ${c} in a selector of: ${expr}`);
        labels.push(id);
      }
    }
  };
  while (i < n) {
    skipSpace();
    if (i >= n) break;
    const c = expr[i];
    if (c === '"' || c === "'" || c === "`") {
      readString();
    } else if (c === "[") {
      const close = expr.indexOf("]", i);
      if (close < 0) throw new Error(`unclosed [ in: ${expr}`);
      i = close + 1;
    } else if (c === "$") {
      // Grafana variable: $name, ${name} or ${name:format}.
      i++;
      if (expr[i] === "{") i = expr.indexOf("}", i) + 1;
      else readIdent();
    } else if (/[0-9.]/.test(c)) {
      const m = /^(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)[a-zA-Z]*/.exec(expr.slice(i));
      i += m === null ? 1 : m[0].length;
    } else if (c === "{") {
      // A selector without a metric name, e.g. {__name__="…"}: not used here, so refused.
      const labels = readMatchers();
      throw new Error(`a selector without a metric name ({${labels.join(",")}}) in: ${expr}`);
    } else if (/[a-zA-Z_:]/.test(c)) {
      const id = readIdent()!;
      skipSpace();
      const lower = id.toLowerCase();
      if (expr[i] === "(") {
        if (LABEL_LISTS.has(lower)) readLabelList();
        // Otherwise a function or aggregation: its arguments are scanned as the loop goes on.
      } else if (KEYWORDS.has(lower) || LABEL_LISTS.has(lower) || AGGREGATIONS.has(lower)) {
        // An operator keyword, group_left without a label list, or `sum by (…) (…)`.
      } else {
        const selectorLabels = expr[i] === "{" ? readMatchers() : [];
        metrics.push({ name: id, selectorLabels });
      }
    } else {
      i++;
    }
  }
  return { metrics, groupingLabels };
}

/** The metric-bearing queries of a Grafana template variable, e.g. `label_values(m{…}, label)`. */
function variableQueries(query: string): { expr: string; label?: string }[] {
  const lv = query.match(/^\s*label_values\((.*)\)\s*$/s);
  if (lv) {
    const args = lv[1];
    const comma = args.lastIndexOf(",");
    if (comma < 0) return [];
    return [{ expr: args.slice(0, comma), label: args.slice(comma + 1).trim() }];
  }
  const qr = query.match(/^\s*query_result\((.*)\)\s*$/s);
  if (qr) return [{ expr: qr[1] }];
  const mt = query.match(/^\s*metrics\((.*)\)\s*$/s);
  if (mt) return [];
  return [];
}

// ---- the dashboard ---------------------------------------------------------------------------

interface Panel {
  id?: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: { expr?: string; refId?: string; legendFormat?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: {
    list: { type: string; name: string; query?: string | { query: string }; datasource?: { uid?: string } }[];
  };
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Every expression of the dashboard: panel targets, and template variable queries. */
function dashboardQueries(d: Dashboard): { where: string; expr: string; legend?: string; extraLabel?: string }[] {
  const out: { where: string; expr: string; legend?: string; extraLabel?: string }[] = [];
  for (const p of allPanels(d.panels))
    for (const t of p.targets ?? [])
      if (t.expr !== undefined)
        out.push({ where: `panel "${p.title}" target ${t.refId}`, expr: t.expr, legend: t.legendFormat });
  for (const v of d.templating.list) {
    if (v.type !== "query" || v.query === undefined) continue;
    const q = typeof v.query === "string" ? v.query : v.query.query;
    for (const e of variableQueries(q)) out.push({ where: `variable $${v.name}`, expr: e.expr, extraLabel: e.label });
  }
  return out;
}

/** Labels Prometheus gives every scraped series, beside the `service` default label. */
const SCRAPE_LABELS = ["service", "job", "instance"];

type Known = Map<string, { type: string; labels: Set<string> }>;

/** Problems with the names a dashboard uses, given the families that exist (name → type, labels). */
function dashboardProblems(d: Dashboard, known: Known): string[] {
  const problems: string[] = [];
  for (const q of dashboardQueries(d)) {
    let names: PromqlNames;
    try {
      names = promqlNames(q.expr);
    } catch (err) {
      problems.push(`${q.where}: ${(err as Error).message}`);
      continue;
    }
    if (names.metrics.length === 0) problems.push(`${q.where}: names no metric: ${q.expr}`);
    const exprLabels = new Set<string>(SCRAPE_LABELS);
    for (const ref of names.metrics) {
      const types = new Map([...known].map(([k, v]) => [k, v.type]));
      const family = familyOf(ref.name, types);
      if (family === undefined) {
        problems.push(`${q.where}: metric ${ref.name} is on no service's /metrics (in: ${q.expr})`);
        continue;
      }
      const labels = new Set([...known.get(family)!.labels, ...SCRAPE_LABELS]);
      if (ref.name.endsWith("_bucket") && family !== ref.name) labels.add("le");
      for (const l of labels) exprLabels.add(l);
      for (const l of ref.selectorLabels)
        if (!labels.has(l)) problems.push(`${q.where}: ${ref.name} has no label ${l} (in: ${q.expr})`);
    }
    for (const l of names.groupingLabels)
      if (!exprLabels.has(l)) problems.push(`${q.where}: no metric of the expression has label ${l} (in: ${q.expr})`);
    if (q.extraLabel !== undefined && !exprLabels.has(q.extraLabel))
      problems.push(`${q.where}: no metric of the expression has label ${q.extraLabel}`);
    for (const m of (q.legend ?? "").matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g))
      if (!exprLabels.has(m[1])) problems.push(`${q.where}: legend names label ${m[1]}, which its metrics lack`);
  }
  return problems;
}

// ---- the test ----------------------------------------------------------------------------------

describe("Prometheus, Grafana and docs/metrics.md against the running services", { timeout: 240_000 }, () => {
  const running: { name: Svc; probePort: number; stop(): Promise<void> }[] = [];
  const scrapes = new Map<Svc, Scrape>();
  let nc: NatsConnection;
  let admin: cassandra.Client;

  const scrape = async (svc: (typeof running)[number]) => {
    const res = await fetch(`http://127.0.0.1:${svc.probePort}/metrics`);
    assert.equal(res.status, 200, `${svc.name} /metrics answered ${res.status}`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    return parseExposition(await res.text());
  };

  before(async () => {
    const { client, localDataCenter } = await adminCqlClient();
    admin = client;
    const configDir = writeConfig({});
    const env = dataServiceEnv(NATS_URL, prefix, keyspace, localDataCenter);
    for (const name of SERVICES) {
      const r = await startService(SPECS[name], { handleSignals: false, configDir, env });
      running.push({ name, probePort: r.probePort, stop: () => r.stop() });
    }
    nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
    // Some traffic, so request counters and histograms have series whose labels can be checked.
    const client2 = new MeshClient(nc);
    const names = meshNames(prefix);
    const counted = await client2.request(
      names.data("count", "dump", "website"),
      "CountRequest",
      { criteria: { domain: "example.com" } },
      "CountReply",
    );
    assert.equal(Number(counted.count), 0);
    for (const svc of running) scrapes.set(svc.name, await scrape(svc));
  });

  after(async () => {
    for (const r of running.reverse()) await r.stop().catch(() => undefined);
    if (nc) {
      await removeNetwork(nc, meshNames(prefix));
      await nc.close();
    }
    await admin?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
    await admin?.shutdown();
  });

  it("every service answers /metrics, /healthz and /readyz on its probe port", async () => {
    assert.equal(running.length, 6);
    for (const svc of running) {
      for (const p of ["/healthz", "/readyz"]) {
        const res = await fetch(`http://127.0.0.1:${svc.probePort}${p}`);
        const body = (await res.json()) as { ok: boolean; service: string };
        assert.equal(res.status, 200, `${svc.name} ${p}`);
        assert.deepEqual([body.ok, body.service], [true, svc.name]);
      }
      const none = await fetch(`http://127.0.0.1:${svc.probePort}/nope`);
      assert.equal(none.status, 404);
      await none.body?.cancel();
      assert.ok(scrapes.get(svc.name)!.types.has("machina_requests_total"), `${svc.name}: no machina_requests_total`);
    }
  });

  it("docs/metrics.md is what `make docs` writes", async () => {
    const committed = readFileSync(path.join(ROOT, "docs/metrics.md"), "utf8");
    assert.ok(committed === (await renderMetricsDoc()), "docs/metrics.md is stale: run `make docs`");
  });

  it("docs/metrics.md lists exactly the families each service exposes, with their types and labels", async () => {
    const catalog = await collectMetrics();
    const problems: string[] = [];
    for (const svc of SERVICES) {
      const page = scrapes.get(svc)!;
      const documented = new Map<string, MetricDoc>();
      for (const d of [...catalog.shared, ...catalog.byService[svc]]) documented.set(d.name, d);
      for (const [name, type] of page.types) {
        const d = documented.get(name);
        if (d === undefined) problems.push(`${svc} exposes ${name} (${type}), which docs/metrics.md does not list`);
        else if (d.type !== type) problems.push(`${svc}: ${name} is a ${type}, docs/metrics.md says ${d.type}`);
      }
      for (const name of documented.keys())
        if (!page.types.has(name))
          problems.push(`docs/metrics.md lists ${name} under ${svc}, which does not expose it`);
      for (const [family, seen] of page.sampleLabels) {
        const d = documented.get(family);
        if (d === undefined) continue;
        const allowed = new Set([...d.labels, "service", "le", "quantile"]);
        for (const l of seen)
          if (!allowed.has(l)) problems.push(`${svc}: ${family} has label ${l}, docs/metrics.md lists ${d.labels}`);
      }
    }
    assert.deepEqual(problems, []);
    // Traffic reached the runtime's counters, so their labels were really compared above.
    const dataLabels = scrapes.get("data")!.sampleLabels.get("machina_requests_total");
    assert.deepEqual([...(dataLabels ?? [])].sort(), ["endpoint", "outcome", "service"]);
  });

  it("the PromQL scan finds metrics and labels, and reports what does not exist", () => {
    const names = promqlNames(
      'histogram_quantile(0.99, sum by (le, service) (rate(machina_request_seconds_bucket{service=~"$service", endpoint!="a,b}"}[$__rate_interval]))) / ignoring(x) group_left count(up) > bool 0.5e3 offset 5m',
    );
    assert.deepEqual(
      names.metrics.map((m) => [m.name, m.selectorLabels]),
      [
        ["machina_request_seconds_bucket", ["service", "endpoint"]],
        ["up", []],
      ],
    );
    assert.deepEqual(names.groupingLabels, ["le", "service", "x"]);
    const known: Known = new Map([["machina_requests_total", { type: "counter", labels: new Set(["endpoint"]) }]]);
    const bad = {
      schemaVersion: 39,
      uid: "x",
      title: "x",
      templating: { list: [] },
      panels: [
        {
          type: "timeseries",
          title: "Broken",
          targets: [
            { refId: "A", expr: "sum by (endpoint) (rate(machina_requets_total[5m]))" },
            { refId: "B", expr: 'rate(machina_requests_total{outcom="ok"}[5m])', legendFormat: "{{node}}" },
          ],
        },
      ],
    } satisfies Dashboard;
    assert.deepEqual(dashboardProblems(bad, known), [
      'panel "Broken" target A: metric machina_requets_total is on no service\'s /metrics (in: sum by (endpoint) (rate(machina_requets_total[5m])))',
      'panel "Broken" target A: no metric of the expression has label endpoint (in: sum by (endpoint) (rate(machina_requets_total[5m])))',
      'panel "Broken" target B: machina_requests_total has no label outcom (in: rate(machina_requests_total{outcom="ok"}[5m]))',
      'panel "Broken" target B: legend names label node, which its metrics lack',
    ]);
  });

  it("every metric and label the Grafana dashboard names is on some service's /metrics", async () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
    const catalog = await collectMetrics();
    const declared = new Map<string, MetricDoc>();
    for (const d of [...catalog.shared, ...SERVICES.flatMap((s) => catalog.byService[s])]) declared.set(d.name, d);
    // Known = what was really scraped; labels from the code (a family without samples shows none).
    const known: Known = new Map();
    for (const page of scrapes.values())
      for (const [name, type] of page.types) {
        const labels = new Set([...(declared.get(name)?.labels ?? []), ...(page.sampleLabels.get(name) ?? [])]);
        known.set(name, { type, labels });
      }
    assert.deepEqual(dashboardProblems(dash, known), []);
    // The dashboard charts what the issue asks for; each of these must be in some panel.
    const used = new Set(dashboardQueries(dash).flatMap((q) => promqlNames(q.expr).metrics.map((m) => m.name)));
    for (const m of [
      "machina_messages_total",
      "machina_message_seconds_bucket",
      "machina_request_seconds_bucket",
      "machina_consumer_pending",
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "machina_compute_requests_total",
      "machina_data_queue_rows",
    ])
      assert.ok(used.has(m), `no panel uses ${m}`);
  });

  it("the dashboard is a Grafana dashboard on the ${DS_PROMETHEUS} datasource variable", () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
    assert.ok(dash.schemaVersion >= 36 && dash.schemaVersion <= 41, `schemaVersion ${dash.schemaVersion}`);
    assert.ok(dash.uid && dash.title);
    const ds = dash.templating.list.find((v) => v.name === "DS_PROMETHEUS");
    assert.equal(ds?.type, "datasource");
    assert.equal(ds?.query, "prometheus");
    const panels = allPanels(dash.panels);
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids repeat");
    for (const p of panels) {
      if (p.type === "row") continue;
      assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has no targets`);
      assert.equal(p.datasource?.uid, "${DS_PROMETHEUS}", `panel "${p.title}" datasource`);
      for (const t of p.targets ?? [])
        assert.equal(t.datasource?.uid, "${DS_PROMETHEUS}", `panel "${p.title}" target ${t.refId} datasource`);
    }
  });

  it("prometheus.yml parses and scrapes every service on its default probe port", () => {
    const cfg = parseYaml(readFileSync(PROMETHEUS, "utf8")) as {
      global?: { scrape_interval?: string };
      scrape_configs: { job_name: string; metrics_path?: string; static_configs?: { targets: string[] }[] }[];
    };
    assert.match(cfg.global?.scrape_interval ?? "", /^\d+(s|m)$/);
    const jobs = new Map(cfg.scrape_configs.map((j) => [j.job_name, j]));
    assert.equal(jobs.size, cfg.scrape_configs.length, "job names repeat");
    for (const svc of SERVICES) {
      const job = jobs.get(svc);
      assert.ok(job, `no scrape job for ${svc}`);
      assert.equal(job.metrics_path ?? "/metrics", "/metrics");
      const targets = (job.static_configs ?? []).flatMap((s) => s.targets);
      assert.deepEqual(targets, [`127.0.0.1:${SPECS[svc].httpPort}`], `${svc} targets`);
    }
  });
});
