// bench-needs: cassandra
// Compute (make bench): data and compute as their own processes against one nats-server and one
// Cassandra, three measurements, each next to a baseline taken in the same run:
//   latest   compute.get.latest over E entities, once uncached (every request a miss that reads
//            data) and once more cached; requests/s and p50/p99 of each, and the ratio
//   series   one entity with P points 500 ms apart in clean_<type> (loaded straight into the
//            table and its entity index, as data writes them); compute.get.series over the whole
//            range in ~1,000 mean buckets with the cache dropped first, against reading the same
//            rows with the raw driver (every day partition at once) and against the bucketing
//            kernel alone on the same columns in this process
//   invalidation  a cached latest, then a clean write through data.create.clean, then latest asked
//            back to back until it shows the new value: the delay from the write's reply to the
//            first answer with it (p50/p99/max over I writes), and how many stale answers came first
// CPU seconds of every process next to each row say which side limits it on a small machine.
//
// Env: MACHINA_BENCH_COMPUTE_ENTITIES (default 10000), MACHINA_BENCH_COMPUTE_POINTS (default
// 1000000), MACHINA_BENCH_COMPUTE_INVALIDATIONS (default 200).
import { cpus, loadavg } from "node:os";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type cassandra from "cassandra-driver";
import { bucketGrid, bucketReduce } from "@machina/compute";
import { entityBucketOf } from "@machina/data";
import type { ComputeReply, JsonObject } from "@machina/protos";
import { MeshClient } from "@machina/runtime";
import type { MeshNames } from "@machina/subjects";
import { startServiceProc, writeConfig } from "../support/service-procs";
import type { ServiceProc } from "../support/service-procs";
import { benchCqlClient } from "./pipeline-baselines";
import { CpuMeter, benchRun } from "./pipeline-procs";

const E = Number(process.env.MACHINA_BENCH_COMPUTE_ENTITIES ?? 10_000);
const P = Number(process.env.MACHINA_BENCH_COMPUTE_POINTS ?? 1_000_000);
const I = Number(process.env.MACHINA_BENCH_COMPUTE_INVALIDATIONS ?? 200);
const CQL_PORT = Number(process.env.MACHINA_CQL_PORT ?? 49042);
const IN_FLIGHT = 32;
const SPACING_MS = 500;
const BUCKETS = 1000;
const RUNS = 3;
const DAY_MS = 86_400_000;

const out = (line: string) => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`[compute bench] ${line}\n`);
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;

const SITE_TYPE = `key: [domain]
fields: { domain: text, visits: int, category: text }
merge: { default: latest_non_null }
clean_window: 1h
`;
const POINT_TYPE = `key: [id]
fields: { id: text, v: double }
merge: { default: latest_non_null }
clean_window: 1m
`;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function latencyText(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  return `p50 ${ms(quantile(s, 0.5))}, p99 ${ms(quantile(s, 0.99))}, max ${ms(s[s.length - 1])}`;
}

const cpuText = (m: Map<string, number>) => [...m].map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(", ");

/** Runs `n` jobs with IN_FLIGHT at once; the latency of each in ms. */
async function lanes(n: number, job: (i: number) => Promise<void>): Promise<{ ms: number; latencies: number[] }> {
  const latencies = new Array<number>(n);
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < n) {
      const i = next++;
      const s = performance.now();
      await job(i);
      latencies[i] = performance.now() - s;
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, n) }, lane));
  return { ms: performance.now() - t0, latencies };
}

const domainOf = (i: number) => `e${i}.bench`;
const visitsOf = (i: number) => (i * 7919) % 100_000;

/** Writes the E site entities through data.create.clean, 500 a request. */
async function loadSites(client: MeshClient, names: MeshNames): Promise<void> {
  const chunk = 500;
  const starts = Array.from({ length: Math.ceil(E / chunk) }, (_, k) => k * chunk);
  let next = 0;
  const lane = async () => {
    while (next < starts.length) {
      const first = starts[next++];
      const records: JsonObject[] = [];
      for (let i = first; i < Math.min(E, first + chunk); i++)
        records.push({ domain: domainOf(i), visits: visitsOf(i), category: `c${i % 20}` });
      await client.request(names.data("create", "clean", "site"), "CreateRequest", { records }, "WriteReply", {
        timeoutMs: 60_000,
      });
    }
  };
  await Promise.all(Array.from({ length: 4 }, lane));
}

/** The value of point i of the series entity: a ramp, so each bucket's mean is known. */
const pointValue = (i: number) => i;

/**
 * Loads P points of entity "p1" into clean_point, one unlogged batch of 100 rows per request
 * (every row of a batch in one day partition), and records their days in the entity index.
 */
async function loadPoints(cql: cassandra.Client, keyspace: string, t0: number): Promise<number> {
  const started = performance.now();
  const insert = `INSERT INTO ${keyspace}.clean_point (id, bucket, window_start, v, merged_at, sources) VALUES (?, ?, ?, ?, ?, ?)`;
  const batches: { query: string; params: unknown[] }[][] = [];
  const days = new Set<string>();
  let batch: { query: string; params: unknown[] }[] = [];
  let batchDay = "";
  const merged = new Date();
  for (let i = 0; i < P; i++) {
    const t = t0 + i * SPACING_MS;
    const day = new Date(Math.floor(t / DAY_MS) * DAY_MS).toISOString().slice(0, 10);
    if (batch.length === 100 || (batch.length > 0 && day !== batchDay)) {
      batches.push(batch);
      batch = [];
    }
    batchDay = day;
    days.add(day);
    batch.push({ query: insert, params: ["p1", day, new Date(t), pointValue(i), merged, 1] });
  }
  if (batch.length > 0) batches.push(batch);
  let next = 0;
  const lane = async () => {
    while (next < batches.length) {
      const b = batches[next++];
      await cql.batch(b, { prepare: true, logged: false });
    }
  };
  await Promise.all(Array.from({ length: 16 }, lane));
  await cql.execute(
    `UPDATE ${keyspace}.entity_index_point SET clean_days = clean_days + ? WHERE bucket = ? AND id = ?`,
    [[...days], entityBucketOf(JSON.stringify({ id: "p1" })), "p1"],
    { prepare: true },
  );
  note(`loaded ${int(P)} points over ${days.size} days in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return days.size;
}

/** Reads every point of "p1" with the driver, every day partition at once, into two Float64Arrays. */
async function rawRead(
  cql: cassandra.Client,
  keyspace: string,
  days: string[],
  from: number,
  to: number,
): Promise<{ times: Float64Array; values: Float64Array }> {
  const query = `SELECT window_start, v FROM ${keyspace}.clean_point WHERE id = ? AND bucket = ? AND window_start >= ? AND window_start < ? ORDER BY window_start ASC`;
  const perDay = await Promise.all(
    days.map(async (day) => {
      const times: number[] = [];
      const values: number[] = [];
      let pageState: string | undefined;
      do {
        const rs = await cql.execute(query, ["p1", day, new Date(from), new Date(to)], {
          prepare: true,
          fetchSize: 10_000,
          pageState,
        });
        for (const row of rs.rows) {
          times.push((row.get("window_start") as Date).getTime());
          values.push(row.get("v") as number);
        }
        pageState = rs.pageState ?? undefined;
      } while (pageState);
      return { times, values };
    }),
  );
  const n = perDay.reduce((a, d) => a + d.times.length, 0);
  const times = new Float64Array(n);
  const values = new Float64Array(n);
  let k = 0;
  for (const d of perDay) {
    times.set(d.times, k);
    values.set(d.values, k);
    k += d.times.length;
  }
  return { times, values };
}

async function main(): Promise<void> {
  if (![E, P, I].every((x) => Number.isInteger(x) && x > 0))
    throw new Error("MACHINA_BENCH_COMPUTE_* must be positive integers");
  const run = benchRun("cmpb", CQL_PORT, note);
  const { prefix, names, keyspace, natsPid, cassandraPid } = run;
  const nc = await connect({ servers: process.env.MACHINA_NATS_URL, maxReconnectAttempts: -1 });
  const client = new MeshClient(nc);
  const cql = benchCqlClient(CQL_PORT);
  await cql.connect();
  const procs: ServiceProc[] = [];
  try {
    const configDir = writeConfig({
      "data/types/site.yaml": SITE_TYPE,
      "data/types/point.yaml": POINT_TYPE,
      "compute/caches/results.yaml": "kind: memory\nmax_size: 512M\n",
    });
    const env = { MACHINA_DATA_CASSANDRA_KEYSPACE: keyspace, MACHINA_DATA_CLEAN_INTERVAL_MS: "0" };
    note(`starting data and compute (prefix ${prefix}, keyspace ${keyspace})`);
    const data = await startServiceProc("data", { configDir, prefix, env, readyTimeoutMs: 120_000 });
    procs.push(data);
    const compute = await startServiceProc("compute", { configDir, prefix, env, readyTimeoutMs: 120_000 });
    procs.push(compute);
    const pids = {
      data: data.child.pid,
      compute: compute.child.pid,
      cassandra: cassandraPid,
      "nats-server": natsPid,
      bench: "self" as const,
    };
    const get = (name: string, args: JsonObject) =>
      client.request(names.computeGet(name), "ComputeRequest", { args }, "ComputeReply", { timeoutMs: 60_000 });
    const drop = (type: string) =>
      client.request(names.computeCache("drop"), "CacheInvalidate", { type }, "CacheStats", { timeoutMs: 10_000 });

    // ---- latest over E entities ----
    note(`writing ${int(E)} site entities through data.create.clean`);
    await loadSites(client, names);
    const latestPass = async (expectCached: boolean) => {
      let wrong = 0;
      const meter = new CpuMeter(pids);
      const r = await lanes(E, async (i) => {
        const reply: ComputeReply = await get("latest", { type: "site", key: { domain: domainOf(i) } });
        if (reply.cached !== expectCached || reply.rows[0]?.visits !== visitsOf(i)) wrong++;
      });
      if (wrong > 0)
        throw new Error(
          `${wrong} of ${E} latest replies were not ${expectCached ? "cached" : "fresh"} or had the wrong value`,
        );
      return { ...r, cpu: meter.used() };
    };
    // A warm-up on a few entities, then an empty cache, so the uncached pass starts with a warm JIT.
    await lanes(
      Math.min(E, 500),
      async (i) => void (await get("latest", { type: "site", key: { domain: domainOf(i) } })),
    );
    await drop("");
    note("latest: uncached pass, then cached pass");
    const uncached = await latestPass(false);
    const cached = await latestPass(true);

    // ---- series over P points ----
    const t0 = Math.ceil((Date.now() - (P * SPACING_MS + DAY_MS)) / 1_000_000) * 1_000_000;
    const days = await loadPoints(cql, keyspace, t0);
    const span = P * SPACING_MS;
    const step = Math.ceil(span / BUCKETS / 1000) * 1000;
    const from = t0;
    const to = t0 + span;
    const grid = bucketGrid(from, to, step);
    const perBucket = step / SPACING_MS;
    const expectedMean = (b: number) => {
      const first = Math.ceil((grid.start + b * step - t0) / SPACING_MS);
      const last = Math.min(P, Math.ceil((grid.start + (b + 1) * step - t0) / SPACING_MS)) - 1;
      return (pointValue(Math.max(0, first)) + pointValue(last)) / 2;
    };
    const seriesArgs = {
      type: "point",
      key: { id: "p1" },
      field: "v",
      from,
      to,
      step: `${step / 1000}s`,
      reducer: "mean",
    };
    const seriesOnce = async () => {
      await drop("point");
      const meter = new CpuMeter(pids);
      const s = performance.now();
      const reply = await get("series", seriesArgs);
      const took = performance.now() - s;
      if (reply.cached) throw new Error("series answered from the cache after compute.cache.drop");
      if (reply.rows.length !== grid.count)
        throw new Error(`series gave ${reply.rows.length} buckets, expected ${grid.count}`);
      for (const b of [0, Math.floor(grid.count / 2), grid.count - 1]) {
        const v = reply.rows[b].value as number;
        if (Math.abs(v - expectedMean(b)) > 1e-6)
          throw new Error(`bucket ${b}: mean ${v}, expected ${expectedMean(b)}`);
      }
      return { ms: took, cpu: meter.used() };
    };
    const dayNames = Array.from({ length: Math.ceil((to - Math.floor(from / DAY_MS) * DAY_MS) / DAY_MS) }, (_, d) =>
      new Date(Math.floor(from / DAY_MS) * DAY_MS + d * DAY_MS).toISOString().slice(0, 10),
    );
    const rawOnce = async () => {
      const meter = new CpuMeter(pids);
      const s = performance.now();
      const cols = await rawRead(cql, keyspace, dayNames, from, to);
      const took = performance.now() - s;
      if (cols.times.length !== P) throw new Error(`raw read gave ${cols.times.length} rows, expected ${P}`);
      return { ms: took, cpu: meter.used(), cols };
    };
    note(`series: warm-up, then ${RUNS} runs each of compute.get.series and the raw read`);
    await seriesOnce();
    const rawWarm = await rawOnce();
    const seriesRuns: { ms: number; cpu: Map<string, number> }[] = [];
    const rawRuns: { ms: number; cpu: Map<string, number> }[] = [];
    for (let r = 0; r < RUNS; r++) {
      seriesRuns.push(await seriesOnce());
      rawRuns.push(await rawOnce());
    }
    const median = <T extends { ms: number }>(xs: T[]) =>
      [...xs].sort((a, b) => a.ms - b.ms)[Math.floor(xs.length / 2)];
    const series = median(seriesRuns);
    const raw = median(rawRuns);
    const kernelTimes: number[] = [];
    for (let r = 0; r < 20; r++) {
      const s = performance.now();
      const red = bucketReduce(rawWarm.cols.times, rawWarm.cols.values, grid, "mean", to);
      kernelTimes.push(performance.now() - s);
      if (red.counts[1] !== perBucket)
        throw new Error(`kernel: bucket 1 holds ${red.counts[1]} points, expected ${perBucket}`);
    }
    kernelTimes.sort((a, b) => a - b);

    // ---- invalidation delay ----
    note(`invalidation: ${I} clean writes, each followed by latest until it shows the new value`);
    const key = { domain: "inv.bench" };
    const write = (visits: number) =>
      client.request(
        names.data("create", "clean", "site"),
        "CreateRequest",
        { records: [{ domain: "inv.bench", visits, category: "inv" }] },
        "WriteReply",
      );
    await write(-1);
    const delays: number[] = [];
    let stale = 0;
    let missedCache = 0;
    const invMeter = new CpuMeter(pids);
    for (let k = 0; k < I; k++) {
      // Make sure the old value is cached, so the write has something to invalidate.
      let warm = await get("latest", { type: "site", key });
      if (!warm.cached) warm = await get("latest", { type: "site", key });
      if (!warm.cached) missedCache++;
      await write(k);
      const acked = performance.now();
      for (;;) {
        const reply = await get("latest", { type: "site", key });
        if (reply.rows[0]?.visits === k) break;
        stale++;
        if (performance.now() - acked > 10_000) throw new Error(`write ${k} not visible through compute within 10 s`);
      }
      delays.push(performance.now() - acked);
    }
    const invCpu = invMeter.used();

    // ---- report ----
    out(
      `compute bench: ${int(E)} entities for latest, ${int(P)} points for series, ${I} invalidations; ${IN_FLIGHT} requests in flight`,
    );
    out(
      `machine: ${cpus().length} cores, load ${loadavg()[0].toFixed(2)}; nats-server ${process.env.MACHINA_NATS_URL}, CQL port ${CQL_PORT}`,
    );
    const rate = (r: { ms: number }) => (E * 1000) / r.ms;
    out(
      `latest uncached   ${int(rate(uncached)).padStart(7)} req/s  ${latencyText(uncached.latencies)}  cpu: ${cpuText(uncached.cpu)}`,
    );
    out(
      `latest cached     ${int(rate(cached)).padStart(7)} req/s  ${latencyText(cached.latencies)}  cpu: ${cpuText(cached.cpu)}`,
    );
    out(
      `cached ÷ uncached: ${(rate(cached) / rate(uncached)).toFixed(2)}× req/s, p50 ${(
        quantile(
          [...uncached.latencies].sort((a, b) => a - b),
          0.5,
        ) /
        quantile(
          [...cached.latencies].sort((a, b) => a - b),
          0.5,
        )
      ).toFixed(1)}× lower`,
    );
    out(
      `series ${int(P)} points → ${grid.count} buckets (step ${step / 1000} s, mean), ${days} day partitions; median of ${RUNS}:`,
    );
    out(
      `  compute.get.series (uncached)  ${ms(series.ms).padStart(10)}  (${int((P * 1000) / series.ms)} points/s; runs ${seriesRuns.map((r) => ms(r.ms)).join(", ")})  cpu: ${cpuText(series.cpu)}`,
    );
    out(
      `  raw driver read, all days      ${ms(raw.ms).padStart(10)}  (${int((P * 1000) / raw.ms)} points/s; runs ${rawRuns.map((r) => ms(r.ms)).join(", ")})  cpu: ${cpuText(raw.cpu)}`,
    );
    out(
      `  bucketReduce kernel alone      ${ms(kernelTimes[10]).padStart(10)}  (median of 20; min ${ms(kernelTimes[0])})`,
    );
    out(`  series ÷ raw read: ${(series.ms / raw.ms).toFixed(2)}× the time`);
    out(
      `invalidation (write reply → first answer with the new value): ${latencyText(delays)}; ${stale} stale answers in ${I} writes (${missedCache} warm-ups not cached)  cpu: ${cpuText(invCpu)}`,
    );
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => undefined);
    const jsm = await jetstreamManager(nc);
    for (const s of Object.values(names.streams)) await jsm.streams.delete(s).catch(() => undefined);
    for (const b of Object.values(names.buckets)) await jsm.streams.delete(`KV_${b}`).catch(() => undefined);
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
