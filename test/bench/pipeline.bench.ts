// Pipeline throughput (make bench): N leads × 1 query against a local upstream that answers at
// once, all six services as separate processes against one nats-server and one Cassandra.
// Prints records/s end to end (fire request sent → last dump row stored, and → last clean row),
// the per-hop share of handler time (Machina-Timing of the STORE messages, plus the data hop from
// its /metrics), CPU seconds per process, and two raw baselines of the same run: executeConcurrent
// of the same rows into the same Cassandra, and a JetStream publish + consume loop of the same
// messages (each the median of 3 runs). The ratio is the pipeline's dump rate over the slower
// baseline. The trigger fires twice: the first fire (every entity new) warms every process up and
// is reported apart; the baselines then run on the warmed servers, and the second fire (a refresh
// of the same entities, the pipeline's steady state) is the one measured. Also a reference outside the ratio: the upstream calls alone (one
// GET per lead to the same fake API, as the fetch service sends them), which bounds any pipeline
// that makes one upstream call per record.
// Last, a floor: the CPU a record's operations (one upstream GET, the JetStream messages each
// record took through the hops, its dump and clean rows) cost in those same-run baselines, and the
// rate the machine's cores would allow if the pipeline cost nothing more, as a ratio to the slower
// baseline: what the ratio's target can be held against on this machine.
//
// Completion is watched cheaply (STORE stream: every record published to it and none still queued; the
// data service's "clean job merged" log lines, then a count of the clean table); the reported
// times come from the newest write time of the dump and clean rows, so they do not depend on the
// polling interval.
//
// Env: MACHINA_BENCH_PIPELINE_N (default 20000), MACHINA_BENCH_PIPELINE_TIMEOUT_S (default 600:
// after it the bench prints what was reached), MACHINA_BENCH_CPU_PROF=<dir> (each service runs
// with --cpu-prof into <dir>/<service>/; the top self-time functions are printed at the end).
//
// bench-needs: cassandra (run-bench.sh starts one on its own ports for a bench with this line)
import { mkdirSync, rmSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import type { Msg } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { codec } from "@machina/protos";
import { TIMING_HEADER, parseTiming } from "@machina/wire";
import { NATS_URL } from "../support/nats-env";
import { startServiceProc, type ServiceProc } from "../support/service-procs";
import {
  benchCqlClient,
  cassandraBaseline,
  jetstreamBaseline,
  medianOf,
  scanWrites,
  upstreamAlone,
  type BaselineResult,
} from "./pipeline-baselines";
import { PIPELINE, writePipelineConfig } from "../support/pipeline-config";
import { CpuMeter, benchRun } from "./pipeline-procs";
import { startFakeApiProc, type FakeApiProc } from "../support/fake-api-proc";
import { busiestProfile, formatSummary } from "./pipeline-profile-top";

const N = Number(process.env.MACHINA_BENCH_PIPELINE_N ?? 20_000);
const TIMEOUT_MS = Number(process.env.MACHINA_BENCH_PIPELINE_TIMEOUT_S ?? 600) * 1000;
const CQL_PORT = Number(process.env.MACHINA_CQL_PORT ?? 49042);
const PROF_DIR = process.env.MACHINA_BENCH_CPU_PROF ? path.resolve(process.env.MACHINA_BENCH_CPU_PROF) : undefined;
const CONCURRENCY = 64;
const WARMUP = Math.min(2_000, N);
// Each baseline runs this often; the median counts (a short run is easily disturbed by other work).
const RUNS = 3;
// The fake API's key (its rate is far above what the bench sends), and the lanes of the
// upstream-alone reference: the fetch service's default for an unlimited source.
const API_KEY = "bench-key";
const UPSTREAM_LANES = 256;
const SERVICES = ["vertex", "data", "aggregate", "invoke", "fetch", "compute"] as const;
// Worker names (the `consumer` label of machina_message_seconds) by service, in pipeline order.
const WORKERS: Record<string, string> = {
  fetch: `fetch-${PIPELINE.source}`,
  invoke: "handler",
  aggregate: "aggregate",
  data: "store",
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const out = (line: string) => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`[pipeline bench] ${line}\n`);
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Sum and count of machina_message_seconds per consumer, and non-ack outcomes, from a /metrics text. */
function handlerMetrics(text: string): {
  seconds: Map<string, { sum: number; count: number }>;
  outcomes: string[];
} {
  const seconds = new Map<string, { sum: number; count: number }>();
  const outcomes: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^machina_message_seconds_(sum|count)\{([^}]*)\} ([0-9.e+-]+)$/.exec(line);
    if (m) {
      const consumer = /consumer="([^"]+)"/.exec(m[2])?.[1] ?? "?";
      const e = seconds.get(consumer) ?? { sum: 0, count: 0 };
      if (m[1] === "sum") e.sum = Number(m[3]);
      else e.count = Number(m[3]);
      seconds.set(consumer, e);
      continue;
    }
    const o = /^machina_messages_total\{([^}]*)\} ([0-9.e+-]+)$/.exec(line);
    if (o && !/outcome="ack"/.test(o[1]) && Number(o[2]) > 0) outcomes.push(`${o[1]} ${o[2]}`);
  }
  return { seconds, outcomes };
}

/** Handler metrics of each service, from its /metrics. */
async function readHandlerMetrics(
  procs: readonly ServiceProc[],
): Promise<Map<string, ReturnType<typeof handlerMetrics>>> {
  const metrics = new Map<string, ReturnType<typeof handlerMetrics>>();
  for (const p of procs) {
    const text = await (await fetch(`http://127.0.0.1:${p.probePort}/metrics`)).text().catch(() => "");
    metrics.set(p.service, handlerMetrics(text));
  }
  return metrics;
}

async function main(): Promise<void> {
  if (!Number.isInteger(N) || N < 1) throw new Error(`MACHINA_BENCH_PIPELINE_N must be a positive integer, got ${N}`);
  const { prefix, names, keyspace, rawKeyspace, natsPid, cassandraPid } = benchRun("pipe", CQL_PORT, note);

  const nc = await connect({ servers: NATS_URL, maxReconnectAttempts: -1 });
  const jsm = await jetstreamManager(nc);
  const cql = benchCqlClient(CQL_PORT);
  await cql.connect();
  let api: FakeApiProc | undefined;
  const procs: ServiceProc[] = [];
  // For the profiles: when the services were spawned, and the measured span (epoch ms).
  let spawnedAt = 0;
  let configDir: string | undefined;
  let span: { from: number; to: number } | undefined;
  try {
    api = await startFakeApiProc(`${API_KEY}:1000000000/1000`);

    // 1. The mesh: six processes on one config tree.
    note(`starting the six services (prefix ${prefix}, ${N} leads)`);
    const dir = writePipelineConfig(N, api.url);
    configDir = dir;
    const env = {
      [PIPELINE.keyEnv]: API_KEY,
      MACHINA_DATA_CASSANDRA_KEYSPACE: keyspace,
      MACHINA_DATA_CASSANDRA_PORT: String(CQL_PORT),
      // MACHINA_BENCH_CLEAN_INTERVAL_MS (default 500) spaces the clean job out, to see what it costs.
      MACHINA_DATA_CLEAN_INTERVAL_MS: process.env.MACHINA_BENCH_CLEAN_INTERVAL_MS ?? "500",
    };
    if (PROF_DIR) rmSync(PROF_DIR, { recursive: true, force: true });
    spawnedAt = Date.now();
    const started = await Promise.allSettled(
      SERVICES.map((service) => {
        const nodeArgs: string[] = [];
        if (PROF_DIR) {
          mkdirSync(path.join(PROF_DIR, service), { recursive: true });
          nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${path.join(PROF_DIR, service)}`);
        }
        return startServiceProc(service, { configDir: dir, prefix, env, nodeArgs, readyTimeoutMs: 120_000 });
      }),
    );
    for (const s of started) if (s.status === "fulfilled") procs.push(s.value);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const byName = new Map(procs.map((p) => [p.service, p]));

    // Clean progress: the data service logs how many entities each clean run merged.
    let cleanLogged = 0;
    let partial = "";
    byName.get("data")!.child.stdout?.on("data", (d: Buffer) => {
      const lines = (partial + d.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines)
        if (l.includes("clean job merged dirty entities")) {
          const m = /"entities":(\d+)/.exec(l);
          if (m) cleanLogged += Number(m[1]);
        }
    });

    // Machina-Timing of every STORE message (fetch, invoke and aggregate have appended theirs),
    // seen by a plain subscription on the stream's subjects.
    const hops = new Map<string, { ms: number; n: number }>();
    let storeMsgs = 0;
    let storeBytes = 0;
    // Records published to STORE; once all N are and the work-queue stream is empty, all are stored.
    let storeRecords = 0;
    const storeCodec = codec("RecordBatches");
    const sub = nc.subscribe(names.streamSubjects.STORE, {
      callback: (_err, m: Msg) => {
        storeMsgs++;
        storeBytes += m.data.length;
        for (const b of storeCodec.decode(m.data).batches) storeRecords += b.records.length;
        for (const e of parseTiming(m.headers?.get(TIMING_HEADER))) {
          const h = hops.get(e.hop) ?? { ms: 0, n: 0 };
          h.ms += e.ms;
          h.n++;
          hops.set(e.hop, h);
        }
      },
    });

    // Fires the trigger once and follows the STORE stream (empty once acked = stored) and the
    // clean log until both reach N rows written since the fire.
    const cleanTable = `${keyspace}.clean_${PIPELINE.type}`;
    const dumpTable = `${keyspace}.dump_${PIPELINE.type}`;
    const fireOnce = async (label: string) => {
      storeMsgs = 0;
      storeBytes = 0;
      storeRecords = 0;
      cleanLogged = 0;
      hops.clear();
      const meter = new CpuMeter({
        ...Object.fromEntries(procs.map((p) => [p.service, p.child.pid])),
        "nats-server": natsPid,
        cassandra: cassandraPid,
        "fake-api": api!.pid,
        bench: "self",
      });
      const loadStart = loadavg()[0];
      const t0 = Date.now();
      const deadline = t0 + TIMEOUT_MS;
      let firedAt: number | undefined;
      let fireReply = "";
      nc.request(names.invoke.fire, JSON.stringify({ trigger: PIPELINE.trigger }), { timeout: TIMEOUT_MS }).then(
        (m) => {
          firedAt = Date.now();
          fireReply = m.headers?.get("Nats-Service-Error")
            ? `error ${m.headers.get("Nats-Service-Error")}`
            : m.string();
        },
        (err: unknown) => (fireReply = `failed: ${(err as Error).message}`),
      );
      let dumpSeenAt: number | undefined;
      let cleanSeenAt: number | undefined;
      let lastCleanScan = 0;
      let lastNote = t0;
      while (Date.now() < deadline) {
        await sleep(250);
        if (dumpSeenAt === undefined) {
          const queued = (await jsm.streams.info(names.streams.STORE)).state.messages;
          if (storeRecords >= N && queued === 0) dumpSeenAt = Date.now();
        }
        if (cleanLogged >= N && Date.now() - lastCleanScan > 2_000) {
          lastCleanScan = Date.now();
          if ((await scanWrites(cql, cleanTable, "sources", t0)).rows >= N) {
            cleanSeenAt = Date.now();
            break;
          }
        }
        if (Date.now() - lastNote >= 10_000) {
          lastNote = Date.now();
          note(
            `${label}, ${secs(lastNote - t0)}: ${storeRecords} records sent to STORE, ${cleanLogged} merged${firedAt ? "" : ", fire still publishing"}`,
          );
        }
      }
      const wallMs = (cleanSeenAt ?? Date.now()) - t0;
      const cpu = meter.used();
      const loadEnd = loadavg()[0];
      // Exact times from the rows' write times (the data service's client clock, this machine's).
      const dump = await scanWrites(cql, dumpTable, "task_id", t0);
      const clean = await scanWrites(cql, cleanTable, "sources", t0);
      const dumpMs = dump.lastWriteMs - t0;
      return {
        t0,
        wallMs,
        cpu,
        loadStart,
        loadEnd,
        firedAt,
        fireReply,
        dump,
        clean,
        dumpMs,
        cleanMs: clean.lastWriteMs - t0,
        dumpRate: (dump.rows * 1000) / dumpMs,
      };
    };

    // 3. A first fire warms every process up (JIT, caches, connections): a fresh Cassandra spent
    // most of a core compiling during it. It is reported, not counted; the baselines then run on
    // the warmed servers, and the second fire, a refresh of the same entities, is the one measured.
    note("first fire (warm-up)");
    const cold = await fireOnce("first fire");
    out(
      `pipeline  first fire (warm-up, not in the ratio; every entity new): ` +
        (cold.dump.rows >= N
          ? `dump ${secs(cold.dumpMs)} (${int(cold.dumpRate)} rec/s)`
          : `dump INCOMPLETE ${int(cold.dump.rows)} of ${int(N)} rows`) +
        `; cpu s: ` +
        [...cold.cpu.entries()].map(([n, v]) => `${n} ${v.toFixed(1)}`).join(", "),
    );

    const afterFirst = await readHandlerMetrics(procs);

    // 4. Baselines, after a warm-up of each (a fresh JVM and server are slow for their first seconds).
    note(`baselines: warm-up of ${WARMUP}, then ${N} rows / messages`);
    await cassandraBaseline(cql, rawKeyspace, WARMUP, CONCURRENCY, "warm");
    await jetstreamBaseline(nc, prefix, WARMUP, CONCURRENCY, "warm");
    const cassCpu = new CpuMeter({ cassandra: cassandraPid, bench: "self" });
    const cass = await medianOf(RUNS, (i) => cassandraBaseline(cql, rawKeyspace, N, CONCURRENCY, `raw${i}`));
    const cassUsed = cassCpu.used();
    const jsCpu = new CpuMeter({ "nats-server": natsPid, bench: "self" });
    const jsb = await medianOf(RUNS, (i) => jetstreamBaseline(nc, prefix, N, CONCURRENCY, `raw${i}`));
    const jsUsed = jsCpu.used();
    // The upstream calls alone, with the lanes the fetch service gives an unlimited source.
    await upstreamAlone(api.url, API_KEY, WARMUP, UPSTREAM_LANES, "warm");
    const upCpu = new CpuMeter({ "fake-api": api.pid, bench: "self" });
    const up = await medianOf(RUNS, (i) => upstreamAlone(api!.url, API_KEY, N, UPSTREAM_LANES, `up${i}`));
    const upUsed = upCpu.used();

    // 5. The measured fire.
    note("second fire (measured)");
    const run = await fireOnce("second fire");
    const { t0, wallMs, cpu, loadStart, loadEnd, firedAt, fireReply, dump, clean, dumpMs, cleanMs, dumpRate } = run;
    span = { from: t0, to: t0 + wallMs };
    sub.unsubscribe();

    const slower: BaselineResult = cass.perSecond <= jsb.perSecond ? cass : jsb;
    const ratio = dumpRate / slower.perSecond;
    const dlq = (await jsm.streams.info(names.streams.DLQ).catch(() => null))?.state.messages ?? 0;

    const complete = dump.rows >= N && clean.rows >= N;
    out(
      `pipeline  ${int(N)} records: ` +
        (dump.rows >= N
          ? `dump ${secs(dumpMs)} (${int(dumpRate)} rec/s)`
          : `dump INCOMPLETE ${int(dump.rows)} of ${int(N)} rows in ${secs(wallMs)}`) +
        ", " +
        (clean.rows >= N
          ? `clean ${secs(cleanMs)} (${int((clean.rows * 1000) / cleanMs)} rec/s)`
          : `clean INCOMPLETE ${int(clean.rows)} of ${int(N)} rows`) +
        `; baselines: cassandra ${int(cass.perSecond)} rows/s, jetstream ${int(jsb.perSecond)} msgs/s; ` +
        `ratio ${ratio.toFixed(2)}× of the slower (${slower === cass ? "cassandra" : "jetstream"}) ` +
        `(target ≥ 0.5×, first milestone 0.25×)${complete ? "" : ` — timed out after ${secs(TIMEOUT_MS)}`}`,
    );
    out(
      `pipeline  fire → all ${int(N)} tasks published: ${firedAt ? secs(firedAt - t0) : "not answered"} (${fireReply.slice(0, 160)}); ` +
        `dead letters: ${dlq}`,
    );

    const cpuNames = [...SERVICES, "nats-server", "cassandra", "fake-api", "bench"];
    const total = [...cpu.values()].reduce((a, b) => a + b, 0);
    out(
      `pipeline  cpu s (fire → ${complete ? "last clean row" : "time-out"}, ${secs(wallMs)} wall): ` +
        cpuNames
          .filter((n) => cpu.has(n))
          .map((n) => `${n} ${cpu.get(n)!.toFixed(1)}`)
          .join(", ") +
        `; total ${total.toFixed(1)} = ${(total / (wallMs / 1000)).toFixed(2)} of ${cpus().length} cores busy on average ` +
        `(machine load average ${loadStart.toFixed(1)} at fire, ${loadEnd.toFixed(1)} at the end: other work on the machine counts)`,
    );

    // Per-hop shares: Machina-Timing (handler time up to the publish of its output) and /metrics
    // (whole handler time, publish included; the only source for data, the last hop).
    // Of the measured fire only: the counters less what they were after the first fire.
    const metrics = await readHandlerMetrics(procs);
    for (const [service, m] of metrics) {
      const before = afterFirst.get(service);
      for (const [consumer, e] of m.seconds) {
        const b = before?.seconds.get(consumer);
        if (b) m.seconds.set(consumer, { sum: e.sum - b.sum, count: e.count - b.count });
      }
    }
    const dataStore = metrics.get("data")?.seconds.get(WORKERS.data);
    const timingHops = ["fetch", "invoke", "aggregate"].map((h) => {
      const e = hops.get(h);
      return { hop: h, meanMs: e && e.n ? e.ms / e.n : 0 };
    });
    timingHops.push({
      hop: "data",
      meanMs: dataStore && dataStore.count ? (dataStore.sum * 1000) / dataStore.count : 0,
    });
    const timingSum = timingHops.reduce((a, h) => a + h.meanMs, 0);
    out(
      `pipeline  hop share (mean handler ms per message; Machina-Timing of ${int(storeMsgs)} STORE msgs ` +
        `(${storeMsgs ? (storeRecords / storeMsgs).toFixed(1) : 0} records each) of ` +
        `${storeMsgs ? Math.round(storeBytes / storeMsgs) : 0} B, data from /metrics): ` +
        timingHops
          .map((h) => `${h.hop} ${h.meanMs.toFixed(2)} ms ${((h.meanMs / (timingSum || 1)) * 100).toFixed(0)} %`)
          .join(", "),
    );
    const metricHops = Object.entries(WORKERS).map(([service, worker]) => {
      const e = metrics.get(service)?.seconds.get(worker);
      return { service, sum: e?.sum ?? 0, count: e?.count ?? 0 };
    });
    const metricSum = metricHops.reduce((a, h) => a + h.sum, 0);
    out(
      `pipeline  handler time incl. publish (/metrics machina_message_seconds, total s / msgs, share): ` +
        metricHops
          .map(
            (h) =>
              `${h.service} ${h.sum.toFixed(1)} s / ${int(h.count)} ${((h.sum / (metricSum || 1)) * 100).toFixed(0)} %`,
          )
          .join(", "),
    );
    const odd = [...metrics.entries()].flatMap(([s, m]) => m.outcomes.map((o) => `${s}: ${o}`));
    if (odd.length) out(`pipeline  non-ack outcomes: ${odd.join("; ")}`);

    const perRun = (m: Map<string, number>, k: string) => ((m.get(k) ?? NaN) / RUNS).toFixed(1);
    out(
      `baseline  cassandra: ${int(N)} dump rows, executeConcurrent(${CONCURRENCY}) in ${secs(cass.ms)} = ` +
        `${int(cass.perSecond)} rows/s (median of ${RUNS}: ${cass.range}); cpu s per run: cassandra ` +
        `${perRun(cassUsed, "cassandra")}, bench ${perRun(cassUsed, "bench")}`,
    );
    out(
      `reference upstream alone (not in the ratio): ${int(N)} GETs of the pipeline's query, ${UPSTREAM_LANES} in flight ` +
        `over keep-alive node:http, in ${secs(up.ms)} = ${int(up.perSecond)} req/s (median of ${RUNS}: ${up.range}); ` +
        `cpu s per run: fake-api ${perRun(upUsed, "fake-api")}, bench ${perRun(upUsed, "bench")}; ` +
        `the pipeline's dump rate is ${(dumpRate / up.perSecond).toFixed(2)}× of it`,
    );
    out(
      `baseline  jetstream: ${int(N)} msgs of ${jsb.bytes} B published (${CONCURRENCY} in flight) and consumed ` +
        `(pull, ack each) in ${secs(jsb.ms)} = ${int(jsb.perSecond)} msgs/s (median of ${RUNS}: ${jsb.range}); ` +
        `cpu s per run: nats-server ${perRun(jsUsed, "nats-server")}, bench ${perRun(jsUsed, "bench")}`,
    );

    // What the target asks against what the machine can give: a record costs at least what its
    // operations cost in the baselines above (measured now, client CPU included), so even a
    // pipeline with no overhead of its own could not pass this rate on these cores.
    const perOp = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0) / RUNS / N;
    const msgsPerRecord = metricHops.reduce((x, h) => x + h.count, 0) / N;
    const rowsPerRecord = (dump.rows + clean.rows) / N;
    const floorS = perOp(upUsed) + msgsPerRecord * perOp(jsUsed) + rowsPerRecord * perOp(cassUsed);
    const ceiling = cpus().length / floorS;
    out(
      `floor     a record's operations at their baseline CPU cost (1 upstream GET ${(perOp(upUsed) * 1e3).toFixed(2)} ms, ` +
        `${msgsPerRecord.toFixed(2)} JetStream msgs × ${(perOp(jsUsed) * 1e3).toFixed(2)} ms, ` +
        `${rowsPerRecord.toFixed(2)} Cassandra rows (dump, clean) × ${(perOp(cassUsed) * 1e3).toFixed(2)} ms; ` +
        `entity index, dirty marks and merging not counted): ${(floorS * 1e3).toFixed(2)} ms CPU per record → ` +
        `at most ${int(ceiling)} rec/s on ${cpus().length} cores = ${(ceiling / slower.perSecond).toFixed(2)}× of the slower baseline; ` +
        `the pipeline used ${((total / N) * 1e3).toFixed(2)} ms CPU per record (${(total / N / floorS).toFixed(2)}× the floor)`,
    );
  } finally {
    await Promise.allSettled(procs.map((p) => p.stop()));
    if (process.env.MACHINA_BENCH_VERBOSE)
      for (const p of procs) process.stderr.write(`--- ${p.service}\n${p.output().slice(-4000)}\n`);
    for (const st of Object.values(names.streams)) await jsm.streams.delete(st).catch(() => undefined);
    for (const b of Object.values(names.buckets)) await jsm.streams.delete(`KV_${b}`).catch(() => undefined);
    for (const ks of [keyspace, rawKeyspace])
      await cql.execute(`DROP KEYSPACE IF EXISTS ${ks}`, [], { prepare: false }).catch(() => undefined);
    await cql.shutdown();
    await nc.close();
    await api?.stop();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  }

  if (PROF_DIR) {
    if (span)
      out(
        `profile   top self time in fire → last clean row (from ${span.from - spawnedAt} ms to ${span.to - spawnedAt} ms of each profile)`,
      );
    for (const service of SERVICES) {
      // Only the measured span (fire → last clean row), not start-up.
      const window = span ? { fromMs: span.from - spawnedAt, toMs: span.to - spawnedAt } : {};
      const best = busiestProfile(path.join(PROF_DIR, service), 15, window);
      if (best === undefined) out(`profile   ${service}: no .cpuprofile written`);
      else for (const l of formatSummary(best, `profile   ${service} (${best.file})`)) out(l);
    }
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`pipeline bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
