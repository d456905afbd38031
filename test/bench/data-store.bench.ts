// Data-service dump writes (make bench): N website records published to the STORE stream as the
// pipeline's aggregate publishes them (RecordBatches messages of K one-record batches, each batch
// its own task id and fetchedAt), consumed by the data service alone (one process, no other
// services) and written as dump rows, then merged into clean rows by its clean job. Compared with
// a raw baseline of the same run: executeConcurrent(64) of N rows of the same shape into the same
// Cassandra (median of 3 runs). The ratio is the data service's dump rate over the baseline's
// (target ≥ 0.7×). Both paths are warmed up alike first (5,000 rows each, on the Cassandra left to
// settle after the data service created its schema), and each measured run starts on a quiet
// Cassandra: a fresh JVM runs a path several times slower until it has compiled it, so warming
// only one side measured the JIT, not the data service. Then a refresh of the same N entities
// (new answers the same day) is timed the same way: the tracked entities' steady state, where the
// entity index already knows the day and a row costs its insert and its dirty mark.
//
// Timed from the first publish to the newest write time of the dump rows (and of the clean rows),
// so the reported times do not depend on how often completion is polled. Completion is watched
// cheaply: every record published and the STORE work queue empty (acked = stored), then the data
// service's "clean job merged" log lines and a count of the clean table. Also prints CPU seconds of
// the data process, Cassandra, nats-server and the bench, and the dead-letter count (should be 0).
//
// Env: MACHINA_BENCH_DATA_N (records, default 20000), MACHINA_BENCH_DATA_BATCH (records per STORE
// message, default 25), MACHINA_BENCH_DATA_CLEAN_INTERVAL_MS (the data service's clean job
// interval, default 10000 as the service's own default; the clean job shares Cassandra and the
// cores with the dump writes: a short one such as 1000 measures the dump rate with the clean job
// running beside it all along, a long one such as 600000 with a short time-out the dump rate alone),
// MACHINA_BENCH_DATA_TIMEOUT_S (default 300: after it the bench prints what was reached),
// MACHINA_BENCH_VERBOSE (print the data service's log tail at the end).
//
// bench-needs: cassandra (run-bench.sh starts one on its own ports for a bench with this line)
import { rmSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { RecordBatch } from "@machina/protos";
import { MeshClient, groupMsgId, publishDurable } from "@machina/runtime";
import { NATS_URL } from "../support/nats-env";
import { startServiceProc, writeConfig, type ServiceProc } from "../support/service-procs";
import { benchCqlClient, cassandraBaseline, medianOf, scanWrites, storeBatch } from "./pipeline-baselines";
import { PIPELINE } from "../support/pipeline-config";
import { CpuMeter, benchRun } from "./pipeline-procs";

const N = Number(process.env.MACHINA_BENCH_DATA_N ?? 20_000);
const K = Number(process.env.MACHINA_BENCH_DATA_BATCH ?? 25);
const CLEAN_INTERVAL_MS = process.env.MACHINA_BENCH_DATA_CLEAN_INTERVAL_MS ?? "10000";
const TIMEOUT_MS = Number(process.env.MACHINA_BENCH_DATA_TIMEOUT_S ?? 300) * 1000;
const CQL_PORT = Number(process.env.MACHINA_CQL_PORT ?? 49042);
// executeConcurrent's concurrency level in the baseline, and STORE publishes awaiting their PubAck.
const CONCURRENCY = 64;
const IN_FLIGHT = 64;
// Rows each path is warmed up with before anything is measured.
const WARMUP = Math.min(5_000, N);
// The baseline runs this often; the median counts (a short run is easily disturbed by other work).
const RUNS = 3;
const TARGET = 0.7;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const out = (line: string) => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`[data bench] ${line}\n`);
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const cpuList = (cpu: Map<string, number>, order: string[]) =>
  order
    .filter((n) => cpu.has(n))
    .map((n) => `${n} ${cpu.get(n)!.toFixed(1)}`)
    .join(", ");

/** The STORE messages' batches: K one-record batches per message, each its own task id and fetchedAt. */
function storeBatches(n: number, k: number, tag: string): RecordBatch[][] {
  const messages: RecordBatch[][] = [];
  for (let first = 0; first < n; first += k) {
    const batches: RecordBatch[] = [];
    for (let i = first; i < Math.min(n, first + k); i++) batches.push(storeBatch(`${tag}${i}.bench`, Date.now()));
    messages.push(batches);
  }
  return messages;
}

/** Waits until Cassandra's CPU stays under a tenth of a core for a second (at most `maxMs`): what a schema change sets off (flushes, compactions) must not land in a measured run. */
async function settle(pid: number | undefined, maxMs: number): Promise<number> {
  const t0 = Date.now();
  if (pid === undefined) return 0;
  while (Date.now() - t0 < maxMs) {
    const m = new CpuMeter({ cassandra: pid });
    await sleep(1_000);
    if ((m.used().get("cassandra") ?? 0) < 0.1) break;
  }
  return Date.now() - t0;
}

async function main(): Promise<void> {
  if (!Number.isInteger(N) || N < 1) throw new Error(`MACHINA_BENCH_DATA_N must be a positive integer, got ${N}`);
  if (!Number.isInteger(K) || K < 1) throw new Error(`MACHINA_BENCH_DATA_BATCH must be a positive integer, got ${K}`);
  const { prefix, names, keyspace, rawKeyspace, natsPid, cassandraPid } = benchRun("data", CQL_PORT, note);

  const nc = await connect({ servers: NATS_URL, maxReconnectAttempts: -1 });
  const jsm = await jetstreamManager(nc);
  const mesh = new MeshClient(nc);
  const cql = benchCqlClient(CQL_PORT);
  await cql.connect();
  let proc: ServiceProc | undefined;
  let configDir: string | undefined;
  try {
    // 1. The data service alone, on a config tree of the website type only (it creates the streams).
    note(`starting the data service (prefix ${prefix}, keyspace ${keyspace}, clean every ${CLEAN_INTERVAL_MS} ms)`);
    configDir = writeConfig({});
    proc = await startServiceProc("data", {
      configDir,
      prefix,
      env: {
        MACHINA_DATA_CASSANDRA_KEYSPACE: keyspace,
        MACHINA_DATA_CASSANDRA_PORT: String(CQL_PORT),
        MACHINA_DATA_CLEAN_INTERVAL_MS: CLEAN_INTERVAL_MS,
      },
      readyTimeoutMs: 120_000,
    });

    // Clean progress: the data service logs how many entities each clean run merged.
    let cleanLogged = 0;
    let partial = "";
    proc.child.stdout?.on("data", (d: Buffer) => {
      const lines = (partial + d.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines)
        if (l.includes("clean job merged dirty entities")) {
          const m = /"entities":(\d+)/.exec(l);
          if (m) cleanLogged += Number(m[1]);
        }
    });

    const subject = names.task.store(PIPELINE.type);
    // Publishes messages, IN_FLIGHT awaiting their PubAck, until done or the deadline.
    let publishedRecords = 0;
    let publishFailures = 0;
    let firstFailure = "";
    const publishAll = async (messages: RecordBatch[][], deadline: number) => {
      let next = 0;
      const lane = async () => {
        while (next < messages.length && Date.now() < deadline) {
          const batches = messages[next++];
          try {
            await publishDurable(
              mesh,
              subject,
              "RecordBatches",
              { batches },
              { msgID: groupMsgId(batches.map((b) => b.id)), sender: "bench" },
            );
            publishedRecords += batches.length;
          } catch (err) {
            publishFailures++;
            firstFailure ||= (err as Error).message;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, messages.length) }, lane));
    };
    const storeDrained = async (deadline: number) => {
      while (Date.now() < deadline && (await jsm.streams.info(names.streams.STORE)).state.messages > 0)
        await sleep(100);
    };

    // 2. Both paths warmed up the same way, and Cassandra left to settle after the data service's
    // schema: a fresh JVM compiles each path (single inserts, batches, collection updates) on its
    // first thousands of uses, and flushes and compacts after each schema change. Only then the
    // baseline, then the data service's run, each on a quiet Cassandra.
    const settled = await settle(cassandraPid, 30_000);
    note(
      `warm-up: ${WARMUP} rows by executeConcurrent, ${WARMUP} records through the data service (Cassandra settled in ${secs(settled)})`,
    );
    await cassandraBaseline(cql, rawKeyspace, WARMUP, CONCURRENCY, "warm");
    await publishAll(storeBatches(WARMUP, K, "w"), Date.now() + TIMEOUT_MS);
    await storeDrained(Date.now() + TIMEOUT_MS);
    const warmRecords = publishedRecords;
    publishedRecords = 0;
    // Its clean runs go first too, when they run soon.
    if (Number(CLEAN_INTERVAL_MS) <= 10_000) {
      const until = Date.now() + 30_000;
      while (cleanLogged < warmRecords && Date.now() < until) await sleep(200);
    }
    await settle(cassandraPid, 15_000);
    cleanLogged = 0;
    note(`baseline: ${RUNS} × ${N} rows`);
    const cassCpu = new CpuMeter({ cassandra: cassandraPid, bench: "self" });
    const cass = await medianOf(RUNS, (i) => cassandraBaseline(cql, rawKeyspace, N, CONCURRENCY, `raw${i}`));
    const cassUsed = cassCpu.used();
    await settle(cassandraPid, 15_000);

    // 3. Publish every message, then follow the STORE stream (empty once acked = stored) and the
    // clean log until both reach N.
    const messages = storeBatches(N, K, "d");
    const meter = new CpuMeter({
      data: proc.child.pid,
      cassandra: cassandraPid,
      "nats-server": natsPid,
      bench: "self",
    });
    const cpuNames = ["data", "cassandra", "nats-server", "bench"];
    const loadStart = loadavg()[0];
    note(`publishing ${N} records in ${messages.length} messages of ${K} to ${subject}`);
    const t0 = Date.now();
    const deadline = t0 + TIMEOUT_MS;
    let publishedAt: number | undefined;
    const publishing = publishAll(messages, deadline).then(() => (publishedAt = Date.now()));

    let dumpSeenAt: number | undefined;
    let dumpCpu: Map<string, number> | undefined;
    let cleanSeenAt: number | undefined;
    let lastCleanScan = 0;
    let lastNote = t0;
    const cleanTable = `${keyspace}.clean_${PIPELINE.type}`;
    const dumpTable = `${keyspace}.dump_${PIPELINE.type}`;
    while (Date.now() < deadline) {
      await sleep(250);
      if (dumpSeenAt === undefined && publishedAt !== undefined) {
        const queued = (await jsm.streams.info(names.streams.STORE)).state.messages;
        if (queued === 0) {
          dumpSeenAt = Date.now();
          dumpCpu = meter.used();
        }
      }
      if (cleanLogged >= publishedRecords && publishedAt !== undefined && Date.now() - lastCleanScan > 1_000) {
        lastCleanScan = Date.now();
        if ((await scanWrites(cql, cleanTable, "sources", t0)).rows >= publishedRecords) {
          cleanSeenAt = Date.now();
          break;
        }
      }
      if (Date.now() - lastNote >= 10_000) {
        lastNote = Date.now();
        note(
          `${secs(lastNote - t0)}: ${publishedRecords} records published${publishedAt ? "" : " (still publishing)"}, ` +
            `${dumpSeenAt ? "all stored" : "storing"}, ${cleanLogged} merged`,
        );
      }
    }
    const wallMs = (cleanSeenAt ?? Date.now()) - t0;
    const cpu = meter.used();
    const loadEnd = loadavg()[0];
    await Promise.race([publishing, sleep(6_000)]);

    // Exact times from the rows' write times (the data service's client clock, this machine's).
    // The warm-up's rows are in the same tables, written before t0.
    const dump = await scanWrites(cql, dumpTable, "task_id", t0);
    const clean = await scanWrites(cql, cleanTable, "sources", t0);
    const dumpMs = dump.lastWriteMs - t0;
    const cleanMs = clean.lastWriteMs - t0;
    const dumpRate = (dump.rows * 1000) / dumpMs;
    const ratio = dumpRate / cass.perSecond;
    const dlq = (await jsm.streams.info(names.streams.DLQ).catch(() => null))?.state.messages ?? 0;
    const complete = dump.rows >= N && clean.rows >= N;

    out(
      `data  ${int(N)} records in ${int(messages.length)} messages of ${K}: ` +
        (dump.rows >= N
          ? `dump ${secs(dumpMs)} (${int(dumpRate)} rows/s)`
          : `dump INCOMPLETE ${int(dump.rows)} of ${int(N)} rows in ${secs(wallMs)}`) +
        ", " +
        (clean.rows >= N
          ? `clean ${secs(cleanMs)} (clean job ${int((clean.rows * 1000) / Math.max(1, clean.lastWriteMs - clean.firstWriteMs))} rows/s from its first row to its last)`
          : `clean INCOMPLETE ${int(clean.rows)} of ${int(N)} rows`) +
        `; baseline cassandra executeConcurrent(${CONCURRENCY}) ${int(cass.perSecond)} rows/s; ` +
        (dump.rows >= N
          ? `ratio ${ratio.toFixed(2)}× (first sight of every entity; target ≥ ${TARGET}×)`
          : `no ratio (target ≥ ${TARGET}×)`) +
        (complete ? "" : ` — timed out after ${secs(TIMEOUT_MS)}`),
    );
    out(
      `data  published: ${int(publishedRecords)} records in ${publishedAt ? secs(publishedAt - t0) : "not finished"} ` +
        `(${IN_FLIGHT} publishes in flight, clean job every ${CLEAN_INTERVAL_MS} ms)` +
        (publishFailures ? `; ${publishFailures} publishes FAILED (first: ${firstFailure.slice(0, 160)})` : "") +
        `; dead letters: ${dlq}`,
    );
    const total = [...cpu.values()].reduce((a, b) => a + b, 0);
    out(
      `data  cpu s (first publish → ${complete ? "last clean row" : "time-out"}, ${secs(wallMs)} wall): ` +
        cpuList(cpu, cpuNames) +
        (dumpCpu && dumpSeenAt
          ? ` (of which to all stored, ${secs(dumpSeenAt - t0)}: ${cpuList(dumpCpu, cpuNames)})`
          : "") +
        `; total ${total.toFixed(1)} = ${(total / (wallMs / 1000)).toFixed(2)} of ${cpus().length} cores busy on average ` +
        `(machine load average ${loadStart.toFixed(1)} at the start, ${loadEnd.toFixed(1)} at the end: other work on the machine counts)`,
    );

    // 4. A refresh: the same entities fetched again the same day, which is what the pipeline does
    // to its tracked entities most of the time. The entity index knows their day already, so a
    // row costs the dump insert and its dirty mark, not the index update a first sight adds.
    await settle(cassandraPid, 15_000);
    const refreshMessages = storeBatches(N, K, "d");
    const refreshMeter = new CpuMeter({
      data: proc.child.pid,
      cassandra: cassandraPid,
      "nats-server": natsPid,
      bench: "self",
    });
    const r0 = Date.now();
    publishedRecords = 0;
    await publishAll(refreshMessages, r0 + TIMEOUT_MS);
    await storeDrained(r0 + TIMEOUT_MS);
    const refreshCpu = refreshMeter.used();
    const refresh = await scanWrites(cql, dumpTable, "task_id", r0);
    const refreshMs = refresh.lastWriteMs - r0;
    const refreshRate = (refresh.rows * 1000) / refreshMs;
    out(
      `data  refresh of the same ${int(N)} entities the same day: ` +
        (refresh.rows >= N
          ? `dump ${secs(refreshMs)} (${int(refreshRate)} rows/s); ratio ${(refreshRate / cass.perSecond).toFixed(2)}× ` +
            `of the baseline (target ≥ ${TARGET}×); cpu s: ${cpuList(refreshCpu, cpuNames)}`
          : `INCOMPLETE ${int(refresh.rows)} of ${int(N)} rows`),
    );
    const perRun = (m: Map<string, number>, k: string) => ((m.get(k) ?? NaN) / RUNS).toFixed(1);
    out(
      `baseline  cassandra: ${int(N)} dump rows, executeConcurrent(${CONCURRENCY}) in ${secs(cass.ms)} = ` +
        `${int(cass.perSecond)} rows/s (median of ${RUNS}: ${cass.range}); cpu s per run: cassandra ` +
        `${perRun(cassUsed, "cassandra")}, bench ${perRun(cassUsed, "bench")}`,
    );
  } finally {
    mesh.close();
    await proc?.stop();
    if (proc && process.env.MACHINA_BENCH_VERBOSE) process.stderr.write(`--- data\n${proc.output().slice(-4000)}\n`);
    for (const st of Object.values(names.streams)) await jsm.streams.delete(st).catch(() => undefined);
    for (const b of Object.values(names.buckets)) await jsm.streams.delete(`KV_${b}`).catch(() => undefined);
    for (const ks of [keyspace, rawKeyspace])
      await cql.execute(`DROP KEYSPACE IF EXISTS ${ks}`, [], { prepare: false }).catch(() => undefined);
    await cql.shutdown();
    await nc.close();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`data bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
