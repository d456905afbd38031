// bench-needs: cassandra
// Vertex and live config (make bench): all six services as their own processes on one prefix
// against one nats-server and one Cassandra, two measurements, each next to a baseline taken in
// the same run:
//   propagation  C config.patch requests, each changing the bench source's limiter (10 → 11 → 12 →
//            11 …): config.get for the head, config.patch (vertex asks fetch to validate it, then
//            appends it), then vertex.nodes asked back to back until all six instances report the
//            new hash as configHead. Two delays per patch, p50/p99/max: from the patch's reply and
//            from sending the patch; next to them the round trip of one plain vertex.nodes request
//            (p50, the polling's own resolution) and how many polls it took. After each patch
//            fetch.quota must show the new limit: the count of those that did not
//   stats    a day of samples at the 5 s sample interval (17,280 points) for S series, written
//            into the vertex_sample type through data.create.clean as vertex writes them; then
//            vertex.stats over that whole day for 1 series (by name) and for all S (by prefix) at
//            steps 60 s and 1 h (median of 5), against reading the same rows with the raw driver
//            (every (series, day) partition at once, into columns), each raw read right after a
//            vertex.stats run so both meet Cassandra in the same state; and the ratio of the two
// CPU seconds of the processes that do the work next to each row.
//
// Env: MACHINA_BENCH_CONFIG_PATCHES (default 50), MACHINA_BENCH_STATS_SERIES (default 20).
import { cpus, loadavg } from "node:os";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import type cassandra from "cassandra-driver";
import type { JsonObject, NodeInfo, StatsReply } from "@machina/protos";
import { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { removeNetwork } from "../support/nats-env";
import { startServiceProc, writeConfig } from "../support/service-procs";
import type { ServiceProc } from "../support/service-procs";
import { benchCqlClient } from "./pipeline-baselines";
import { CpuMeter, benchRun } from "./pipeline-procs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const C = Number(process.env.MACHINA_BENCH_CONFIG_PATCHES ?? 50);
const S = Number(process.env.MACHINA_BENCH_STATS_SERIES ?? 20);
const CQL_PORT = Number(process.env.MACHINA_CQL_PORT ?? 49042);
const SERVICES = ["vertex", "data", "fetch", "invoke", "aggregate", "compute"] as const;
const SOURCE = "benchsrc";
const LIMIT_PATH = `/fetch/sources/${SOURCE}/limiter/windows/0/limit`;
const HEARTBEAT_MS = 1000;
const PROPAGATION_TIMEOUT_MS = 15_000;
const SAMPLE_MS = 5000;
const DAY_MS = 86_400_000;
const WRITE_BATCH = 1000;
const RUNS = 5;
const SERIES_PREFIX = "bench.cfg.";

const out = (line: string) => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`[vertex-config bench] ${line}\n`);
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

// A source that is never fetched from: only its limiter matters, and it needs no secret.
const SOURCE_YAML = `name: ${SOURCE}
limiter:
  windows:
    - { limit: 10, per: 1s }
manager:
  type: http
  base_url: http://127.0.0.1:9
  timeout: 10s
queries:
  site:
    path: /v3/sites/{{lead.domain}}
    extract:
      site: { type: website, path: site }
`;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const p50 = (xs: number[]) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );

function latencyText(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  return `p50 ${ms(quantile(s, 0.5))}, p99 ${ms(quantile(s, 0.99))}, max ${ms(s[s.length - 1])}`;
}

const cpuText = (m: Map<string, number>) => [...m].map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(", ");
const median = <T extends { ms: number }>(xs: T[]) => [...xs].sort((a, b) => a.ms - b.ms)[Math.floor(xs.length / 2)];
const seriesName = (i: number) => `${SERIES_PREFIX}s${String(i).padStart(2, "0")}`;
/** The value of sample k of series i: a ramp per series, so a bucket's mean is known. */
const sampleValue = (i: number, k: number) => i * 1_000_000 + k;

/** Writes a day of samples for S series through data.create.clean, WRITE_BATCH a request, 4 at once. */
async function loadSamples(client: MeshClient, names: MeshNames, dayStart: number, day: string): Promise<number> {
  const perSeries = DAY_MS / SAMPLE_MS;
  const chunks: { i: number; first: number }[] = [];
  for (let i = 0; i < S; i++) for (let k = 0; k < perSeries; k += WRITE_BATCH) chunks.push({ i, first: k });
  const subject = names.data("create", "clean", "vertex_sample");
  const started = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < chunks.length) {
      const { i, first } = chunks[next++];
      const records: JsonObject[] = [];
      for (let k = first; k < Math.min(perSeries, first + WRITE_BATCH); k++)
        records.push({
          series: seriesName(i),
          utc_day: day,
          value: sampleValue(i, k),
          window_start: dayStart + k * SAMPLE_MS,
        });
      await client.request(subject, "CreateRequest", { records }, "WriteReply", { timeoutMs: 60_000 });
    }
  };
  await Promise.all(Array.from({ length: 4 }, lane));
  const took = performance.now() - started;
  note(`wrote ${int(S * perSeries)} samples in ${(took / 1000).toFixed(1)} s`);
  return took;
}

/** Reads the day of the given series with the driver, every partition at once; rows read. */
async function rawRead(
  cql: cassandra.Client,
  keyspace: string,
  series: string[],
  day: string,
  from: number,
  to: number,
): Promise<number> {
  const query = `SELECT window_start, value FROM ${keyspace}.clean_vertex_sample WHERE series = ? AND utc_day = ? AND bucket = ? AND window_start >= ? AND window_start < ? ORDER BY window_start ASC`;
  const counts = await Promise.all(
    series.map(async (name) => {
      const times: number[] = [];
      const values: number[] = [];
      let pageState: string | undefined;
      do {
        const rs = await cql.execute(query, [name, day, day, new Date(from), new Date(to)], {
          prepare: true,
          fetchSize: 10_000,
          pageState,
        });
        for (const row of rs.rows) {
          times.push((row.get("window_start") as Date).getTime());
          values.push(row.get("value") as number);
        }
        pageState = rs.pageState ?? undefined;
      } while (pageState);
      // Into columns, as vertex keeps them.
      const cols = { times: Float64Array.from(times), values: Float64Array.from(values) };
      return cols.times.length;
    }),
  );
  return counts.reduce((a, n) => a + n, 0);
}

async function main(): Promise<void> {
  if (![C, S].every((x) => Number.isInteger(x) && x > 0))
    throw new Error("MACHINA_BENCH_CONFIG_PATCHES and MACHINA_BENCH_STATS_SERIES must be positive integers");
  const run = benchRun("vcfg", CQL_PORT, note);
  const { prefix, names, keyspace, natsPid, cassandraPid } = run;
  const nc = await connect({ servers: process.env.MACHINA_NATS_URL, maxReconnectAttempts: -1 });
  const client = new MeshClient(nc);
  const cql = benchCqlClient(CQL_PORT);
  await cql.connect();
  const procs: ServiceProc[] = [];
  try {
    const configDir = writeConfig({
      [`fetch/sources/${SOURCE}.yaml`]: SOURCE_YAML,
      "data/types/vertex_sample.yaml": readFileSync(
        path.join(ROOT, "config/default/data/types/vertex_sample.yaml"),
        "utf8",
      ),
    });
    const env = {
      MACHINA_DATA_CASSANDRA_KEYSPACE: keyspace,
      MACHINA_DATA_CLEAN_INTERVAL_MS: "0",
      MACHINA_VERTEX_HEARTBEAT_MS: String(HEARTBEAT_MS),
      // No sampling of its own: the stats rows read only the bench's samples.
      MACHINA_VERTEX_MONITORING_INTERVAL_MS: "0",
      MACHINA_VERTEX_DASHBOARD_PORT: "0",
    };
    note(`starting ${SERVICES.join(", ")} (prefix ${prefix}, keyspace ${keyspace})`);
    // Vertex first (it serves the config chain), then the other five at once.
    const start = async (service: string) => {
      const p = await startServiceProc(service, { configDir, prefix, env, readyTimeoutMs: 120_000 });
      procs.push(p);
      return p;
    };
    await start("vertex");
    await Promise.all(SERVICES.slice(1).map(start));
    const pid = (s: string) => procs.find((p) => p.service === s)?.child.pid;
    const basePids = { "nats-server": natsPid, bench: "self" as const };

    const nodes = async (): Promise<NodeInfo[]> =>
      (await client.request(names.vertex.nodes, "Empty", {}, "NodeList", { timeoutMs: 5000 })).nodes;
    const getHead = async () =>
      (await client.request(names.config.get, "ConfigGetRequest", { path: "" }, "ConfigDocument")).head;
    const sourceLimit = async () => {
      const q = await client.request(names.fetch.quota, "QuotaRequest", { source: SOURCE }, "QuotaReply");
      return q.windows.find((w) => w.perMs === 1000)?.quota;
    };
    /** Services (of the six) whose instance does not report `head`: none listed counts as not there. */
    const behind = (listed: NodeInfo[], head: string) =>
      SERVICES.filter((s) => !listed.some((n) => n.service === s && n.configHead === head));

    // ---- propagation ----
    const root = await getHead();
    note(`waiting for all six instances at the root ${root.slice(0, 12)}`);
    const waitStart = performance.now();
    for (;;) {
      const listed = await nodes();
      if (behind(listed, root).length === 0) break;
      if (performance.now() - waitStart > 60_000)
        throw new Error(`not every service reports the root after 60 s: missing ${behind(listed, root).join(", ")}`);
      await sleep(100);
    }
    const instances = (await nodes()).length;
    if ((await sourceLimit()) !== 10) throw new Error("fetch.quota does not show the file limit of 10");

    // Baseline: a plain vertex.nodes round trip, after a warm-up.
    for (let k = 0; k < 50; k++) await nodes();
    const nodesRtt: number[] = [];
    for (let k = 0; k < 300; k++) {
      const s = performance.now();
      await nodes();
      nodesRtt.push(performance.now() - s);
    }

    note(`propagation: ${C} patches, each followed by vertex.nodes back to back until all six report it`);
    const fromReply: number[] = [];
    const fromSend: number[] = [];
    const patchRtt: number[] = [];
    const polls: number[] = [];
    const wrongQuota: string[] = [];
    const neverReached: string[] = [];
    const lagging = new Map<string, number>();
    // Per service: when vertex.nodes first showed it at the new head, ms after the patch's reply.
    const perService = new Map<string, number[]>(SERVICES.map((s) => [s, []]));
    const propPids = {
      vertex: pid("vertex"),
      fetch: pid("fetch"),
      invoke: pid("invoke"),
      aggregate: pid("aggregate"),
      data: pid("data"),
      compute: pid("compute"),
      ...basePids,
    };
    const propMeter = new CpuMeter(propPids);
    for (let k = 0; k < C; k++) {
      const limit = 11 + (k % 2);
      const parent = await getHead();
      const sent = performance.now();
      const p = await client.request(
        names.config.patch,
        "ConfigPatchRequest",
        { parent, author: "vertex-config bench", ops: [{ op: "replace", path: LIMIT_PATH, value: limit }] as never },
        "ConfigPatch",
        { timeoutMs: 10_000 },
      );
      const replied = performance.now();
      let n = 0;
      let missing: string[] = [];
      const seen = new Set<string>();
      for (;;) {
        n++;
        missing = behind(await nodes(), p.hash);
        const at = performance.now() - replied;
        for (const s of SERVICES)
          if (!missing.includes(s) && !seen.has(s)) {
            seen.add(s);
            perService.get(s)!.push(at);
          }
        if (missing.length === 0) break;
        if (performance.now() - replied > PROPAGATION_TIMEOUT_MS) break;
      }
      const reached = performance.now();
      if (missing.length > 0) {
        neverReached.push(`patch ${k} (${p.hash.slice(0, 12)}): ${missing.join(", ")}`);
        for (const s of missing) lagging.set(s, (lagging.get(s) ?? 0) + 1);
      } else {
        patchRtt.push(replied - sent);
        fromReply.push(reached - replied);
        fromSend.push(reached - sent);
        polls.push(n);
      }
      const shown = await sourceLimit();
      if (shown !== limit) wrongQuota.push(`patch ${k}: ${shown} for ${limit}`);
    }
    const propCpu = propMeter.used();

    // ---- stats over a day ----
    const dayStart = Math.floor(Date.now() / DAY_MS) * DAY_MS - DAY_MS;
    const day = new Date(dayStart).toISOString().slice(0, 10);
    const from = dayStart;
    const to = dayStart + DAY_MS;
    const perSeries = DAY_MS / SAMPLE_MS;
    note(`stats: writing a day (${day}) of ${int(perSeries)} samples for ${S} series through data.create.clean`);
    const loadMs = await loadSamples(client, names, dayStart, day);
    const allSeries = Array.from({ length: S }, (_, i) => seriesName(i));
    const statsPids = {
      vertex: pid("vertex"),
      data: pid("data"),
      cassandra: cassandraPid,
      ...basePids,
    };
    const statsOnce = async (req: { series?: string[]; prefix?: string }, stepMs: number, want: string[]) => {
      const meter = new CpuMeter(statsPids);
      const s = performance.now();
      const r: StatsReply = await client.request(
        names.vertex.stats,
        "StatsRequest",
        { series: req.series ?? [], prefix: req.prefix ?? "", from, to, stepMs, reducer: "mean" },
        "StatsReply",
        { timeoutMs: 120_000 },
      );
      const took = performance.now() - s;
      const buckets = DAY_MS / stepMs;
      const perBucket = stepMs / SAMPLE_MS;
      if (
        r.series
          .map((x) => x.name)
          .sort()
          .join(",") !== want.join(",")
      )
        throw new Error(
          `vertex.stats gave series ${r.series.map((x) => x.name).join(",")}, expected ${want.join(",")}`,
        );
      for (const x of r.series) {
        if (x.buckets.length !== buckets)
          throw new Error(`${x.name}: ${x.buckets.length} buckets, expected ${buckets}`);
        const i = allSeries.indexOf(x.name);
        for (const b of [0, buckets - 1]) {
          const bucket = x.buckets[b];
          const mean = (sampleValue(i, b * perBucket) + sampleValue(i, (b + 1) * perBucket - 1)) / 2;
          if (bucket.n !== perBucket || Math.abs((bucket.value ?? NaN) - mean) > 1e-6)
            throw new Error(
              `${x.name} bucket ${b}: n ${bucket.n} mean ${bucket.value}, expected ${perBucket} and ${mean}`,
            );
        }
      }
      return { ms: took, cpu: meter.used() };
    };
    const rawOnce = async (series: string[]) => {
      const meter = new CpuMeter(statsPids);
      const s = performance.now();
      const rows = await rawRead(cql, keyspace, series, day, from, to);
      const took = performance.now() - s;
      if (rows !== series.length * perSeries)
        throw new Error(`raw read gave ${rows} rows, expected ${series.length * perSeries}`);
      return { ms: took, cpu: meter.used() };
    };
    // Each row's raw reads alternate with its vertex.stats runs, so both meet Cassandra in the
    // same state (its memtables and compactions settle while the rows run).
    type Timed = { ms: number; cpu: Map<string, number> };
    type Row = { label: string; count: number; stats: Timed; runs: number[]; raw: Timed; rawRuns: number[] };
    const rows: Row[] = [];
    note(
      `stats: vertex.stats for 1 and ${S} series at steps 60 s and 1 h, each run next to a raw read, median of ${RUNS}`,
    );
    for (const stepMs of [60_000, 3_600_000]) {
      for (const count of [1, S]) {
        const req = count === 1 ? { series: [allSeries[0]] } : { prefix: SERIES_PREFIX };
        const want = allSeries.slice(0, count);
        await statsOnce(req, stepMs, want);
        await rawOnce(want);
        const runs: Timed[] = [];
        const rawRuns: Timed[] = [];
        for (let r = 0; r < RUNS; r++) {
          runs.push(await statsOnce(req, stepMs, want));
          rawRuns.push(await rawOnce(want));
        }
        rows.push({
          label: `${count === 1 ? "1 series (by name)" : `${S} series (by prefix)`}, step ${stepMs === 60_000 ? "60 s" : "1 h"}`,
          count,
          stats: median(runs),
          runs: runs.map((r) => r.ms),
          raw: median(rawRuns),
          rawRuns: rawRuns.map((r) => r.ms),
        });
      }
    }

    // ---- report ----
    out(
      `vertex-config bench: six services as processes, ${instances} instances in vertex.nodes; ${C} config patches; ${S} series × ${int(perSeries)} samples`,
    );
    out(
      `machine: ${cpus().length} cores, load ${loadavg()[0].toFixed(2)}; nats-server ${process.env.MACHINA_NATS_URL}, CQL port ${CQL_PORT}; heartbeat ${HEARTBEAT_MS} ms`,
    );
    out(`config.patch → all six report the new configHead in vertex.nodes (${fromReply.length} of ${C} patches):`);
    if (fromReply.length > 0) {
      out(`  from the patch's reply   ${latencyText(fromReply)}`);
      out(`  from sending the patch   ${latencyText(fromSend)}`);
      out(`  config.patch round trip  ${latencyText(patchRtt)}  (fetch validates, then the append)`);
      const sortedPolls = [...polls].sort((a, b) => a - b);
      out(
        `  polls of vertex.nodes per patch: p50 ${quantile(sortedPolls, 0.5)}, max ${sortedPolls[sortedPolls.length - 1]}`,
      );
    }
    const seenAt = [...perService].map(([svc, xs]) => ({ svc, p50: xs.length > 0 ? p50(xs) : Infinity }));
    seenAt.sort((a, b) => a.p50 - b.p50);
    out(
      `  first seen at the new head, p50 after the reply: ${seenAt.map((x) => `${x.svc} ${Number.isFinite(x.p50) ? ms(x.p50) : "never"}`).join(", ")}`,
    );
    const rttP50 = p50(nodesRtt);
    out(
      `  baseline: one vertex.nodes round trip p50 ${ms(rttP50)} (${latencyText(nodesRtt)}, 300 requests); reply-to-all p50 ÷ it: ${(fromReply.length > 0 ? p50(fromReply) / rttP50 : NaN).toFixed(1)}×`,
    );
    out(`  cpu over the patches: ${cpuText(propCpu)}`);
    out(
      `  fetch.quota without the new limit after the head reached all six: ${wrongQuota.length} of ${C}${wrongQuota.length ? ` (${wrongQuota.slice(0, 5).join("; ")})` : ""}`,
    );
    if (neverReached.length > 0)
      out(
        `  NOT reached within ${PROPAGATION_TIMEOUT_MS / 1000} s: ${neverReached.length} patches; lagging ${[...lagging].map(([s, n]) => `${s} ×${n}`).join(", ")}; first: ${neverReached[0]}`,
      );
    out(
      `vertex.stats over one day (${day}, ${int(perSeries)} samples a series, mean), loaded in ${(loadMs / 1000).toFixed(1)} s (${int((S * perSeries * 1000) / loadMs)} rows/s through data.create.clean); median of ${RUNS}:`,
    );
    for (const r of rows) {
      out(`  ${r.label}:`);
      out(
        `    vertex.stats     ${ms(r.stats.ms).padStart(10)}  ${(r.stats.ms / r.raw.ms).toFixed(2)}× raw  (${int((r.count * perSeries * 1000) / r.stats.ms)} points/s; runs ${r.runs.map(ms).join(", ")})  cpu: ${cpuText(r.stats.cpu)}`,
      );
      out(
        `    raw driver read  ${ms(r.raw.ms).padStart(10)}            (${int((r.count * perSeries * 1000) / r.raw.ms)} points/s; runs ${r.rawRuns.map(ms).join(", ")})  cpu: ${cpuText(r.raw.cpu)}`,
      );
    }
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => undefined);
    await removeNetwork(nc, names).catch(() => undefined);
    await cql.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { prepare: false }).catch(() => undefined);
    await cql.shutdown();
    client.close();
    await nc.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
