// Data-service dump writes (make bench): N website records published to the STORE stream as the
// pipeline's aggregate publishes them (RecordBatches messages of K one-record batches, each batch
// its own task id and fetchedAt), consumed by the data service alone (one process, no other
// services) and written as dump rows. Compared with a raw baseline of the same run:
// executeConcurrent(64) of N rows of the same shape into the same Cassandra. The ratio is the
// data service's dump rate over the baseline's (target ≥ 0.7×).
//
// Both paths are warmed up alike first (5,000 rows each, on a Cassandra left to settle after the
// data service created its schema): a fresh JVM runs a path several times slower until it has
// compiled it, so warming only one side measured the JIT, not the data service. Then rounds (five
// by default), each of a baseline run, a first sight of N new entities and a refresh of the same
// entities the same day (the tracked entities' steady state: the entity index knows their day
// already, so a row costs its insert and its dirty mark). Each run starts on a settled Cassandra
// whose memtables were flushed just before: Cassandra flushes once its memtables fill, every few
// runs here, and the run a flush lands in pays for the rows of the runs before it; with the order
// fixed, that was always the same kind of run, and one bench's rounds came out 0.71× and 0.99×
// by that alone. The baseline goes first in even rounds and last in odd ones. A round's ratios
// (its service runs over its own baseline) are paired measurements: the machine's speed drifts
// by ±30 % over a minute on this shared VM, and a round's runs share most of that drift, where
// medians taken apart do not. The median of the rounds' ratios is the result; the ratio of the
// medians is printed beside it. The clean job is held back meanwhile, since the baseline does no
// merging; it is then timed on its own: the data service restarted with a short interval merges
// every window the runs left dirty, from its first clean row to its last.
//
// A service run is timed from its first publish to the newest write time of the rows it stored,
// so the polling interval does not count; it ends once the STORE work queue is empty (acked =
// stored). Also prints CPU seconds of the data process, Cassandra, nats-server and the bench, and
// the dead-letter count (should be 0).
//
// Env: MACHINA_BENCH_DATA_N (records per run, default 50000), MACHINA_BENCH_DATA_BATCH (records
// per STORE message, default 25), MACHINA_BENCH_DATA_ROUNDS (default 5),
// MACHINA_BENCH_DATA_CLEAN_INTERVAL_MS (the clean job's interval once it runs, default 1000),
// MACHINA_BENCH_DATA_TIMEOUT_S (per run, default 300), MACHINA_BENCH_VERBOSE (print the data
// service's log tail at the end), MACHINA_BENCH_CPU_PROF=<dir> (the data service runs under
// --cpu-prof, one profile for the dump runs and one for the clean job; the bench prints the top
// frames of each).
//
// bench-needs: cassandra (run-bench.sh starts one on its own ports for a bench with this line)
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadavg } from "node:os";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import type { RecordBatch } from "@machina/protos";
import { MeshClient, groupMsgId, publishDurable } from "@machina/runtime";
import { NATS_URL } from "../support/nats-env";
import { startServiceProc, writeConfig, type ServiceProc } from "../support/service-procs";
import { benchCqlClient, cassandraBaseline, scanWrites, storeBatch, type BaselineResult } from "./pipeline-baselines";
import { PIPELINE } from "../support/pipeline-config";
import { CpuMeter, benchRun } from "./pipeline-procs";
import { busiestProfile, formatSummary } from "./pipeline-profile-top";

const N = Number(process.env.MACHINA_BENCH_DATA_N ?? 50_000);
const K = Number(process.env.MACHINA_BENCH_DATA_BATCH ?? 25);
const CLEAN_INTERVAL_MS = process.env.MACHINA_BENCH_DATA_CLEAN_INTERVAL_MS ?? "1000";
// The clean job's interval while dump writes are timed: longer than the whole timed part.
const HELD_BACK_MS = "3600000";
const TIMEOUT_MS = Number(process.env.MACHINA_BENCH_DATA_TIMEOUT_S ?? 300) * 1000;
const CQL_PORT = Number(process.env.MACHINA_CQL_PORT ?? 49042);
// executeConcurrent's concurrency level in the baseline, and STORE publishes awaiting their PubAck.
const CONCURRENCY = 64;
const IN_FLIGHT = 64;
// Rows each path is warmed up with before anything is measured.
const WARMUP = Math.min(5_000, N);
// Rounds of baseline, first sight and refresh; the median round counts (a short run is easily
// disturbed by other work on the machine).
const RUNS = Number(process.env.MACHINA_BENCH_DATA_ROUNDS ?? 5);
const TARGET = 0.7;
const PROF_DIR = process.env.MACHINA_BENCH_CPU_PROF ? path.resolve(process.env.MACHINA_BENCH_CPU_PROF) : undefined;

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

const HARNESS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../harness");
let flushProblem = "";

/** Flushes Cassandra's memtables (nodetool through the harness); a failure is printed once and the runs go on unflushed. */
function flush(): void {
  if (flushProblem) return;
  try {
    execFileSync("bash", [path.join(HARNESS, "cassandra.sh"), "nodetool", "flush"], { stdio: "pipe", timeout: 60_000 });
  } catch (err) {
    flushProblem = ((err as { stderr?: Buffer }).stderr?.toString() || (err as Error).message).trim().slice(0, 200);
    note(`memtables not flushed between runs: ${flushProblem}`);
  }
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
  if (!Number.isInteger(RUNS) || RUNS < 1)
    throw new Error(`MACHINA_BENCH_DATA_ROUNDS must be a positive integer, got ${RUNS}`);
  const { prefix, names, keyspace, rawKeyspace, natsPid, cassandraPid } = benchRun("data", CQL_PORT, note);

  const nc = await connect({ servers: NATS_URL, maxReconnectAttempts: -1 });
  const jsm = await jetstreamManager(nc);
  const mesh = new MeshClient(nc);
  const cql = benchCqlClient(CQL_PORT);
  await cql.connect();
  let proc: ServiceProc | undefined;
  let configDir: string | undefined;
  if (PROF_DIR) rmSync(PROF_DIR, { recursive: true, force: true });
  // Under MACHINA_BENCH_CPU_PROF, each start writes its profile to a directory of its phase.
  const profile = (phase: string): string[] => {
    if (!PROF_DIR) return [];
    mkdirSync(path.join(PROF_DIR, phase), { recursive: true });
    return ["--cpu-prof", `--cpu-prof-dir=${path.join(PROF_DIR, phase)}`];
  };
  const start = (cleanIntervalMs: string, phase: "dump" | "clean") =>
    startServiceProc("data", {
      nodeArgs: profile(phase),
      configDir: configDir as string,
      prefix,
      env: {
        MACHINA_DATA_CASSANDRA_KEYSPACE: keyspace,
        MACHINA_DATA_CASSANDRA_PORT: String(CQL_PORT),
        MACHINA_DATA_CLEAN_INTERVAL_MS: cleanIntervalMs,
      },
      readyTimeoutMs: 120_000,
    });
  try {
    // 1. The data service alone, on a config tree of the website type only (it creates the
    // streams), its clean job held back while dump writes are timed.
    note(`starting the data service (prefix ${prefix}, keyspace ${keyspace})`);
    configDir = writeConfig({});
    proc = await start(HELD_BACK_MS, "dump");

    const subject = names.task.store(PIPELINE.type);
    // Publishes messages, IN_FLIGHT awaiting their PubAck; the records published.
    let publishFailures = 0;
    let firstFailure = "";
    const publishAll = async (messages: RecordBatch[][], deadline: number): Promise<number> => {
      let next = 0;
      let published = 0;
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
            published += batches.length;
          } catch (err) {
            publishFailures++;
            firstFailure ||= (err as Error).message;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, messages.length) }, lane));
      return published;
    };
    const storeDrained = async (deadline: number) => {
      while (Date.now() < deadline && (await jsm.streams.info(names.streams.STORE)).state.messages > 0)
        await sleep(100);
    };
    const cpuNames = ["data", "cassandra", "nats-server", "bench"];
    const dumpTable = `${keyspace}.dump_${PIPELINE.type}`;
    const cleanTable = `${keyspace}.clean_${PIPELINE.type}`;

    // One timed run of the data service: N records published, timed from the first publish to the
    // newest write time of the rows it stored (so the polling interval does not count).
    const serviceRun = async (tag: string): Promise<BaselineResult & { cpu: Map<string, number> }> => {
      const messages = storeBatches(N, K, tag);
      const meter = new CpuMeter({
        data: proc!.child.pid,
        cassandra: cassandraPid,
        "nats-server": natsPid,
        bench: "self",
      });
      const t0 = Date.now();
      await publishAll(messages, t0 + TIMEOUT_MS);
      await storeDrained(t0 + TIMEOUT_MS);
      const cpu = meter.used();
      const rows = await scanWrites(cql, dumpTable, "task_id", t0);
      if (rows.rows < N)
        throw new Error(`run ${tag}: ${rows.rows} of ${N} dump rows stored within ${secs(TIMEOUT_MS)}`);
      const ms = rows.lastWriteMs - t0;
      return { n: N, ms, perSecond: (N * 1000) / ms, cpu };
    };

    // 2. Both paths warmed up alike, each on a Cassandra left to settle after the data service's
    // schema: a fresh JVM compiles each path (single inserts, batches, collection updates) on its
    // first thousands of uses, and flushes and compacts after each schema change.
    const settled = await settle(cassandraPid, 30_000);
    note(
      `warm-up: ${WARMUP} rows by executeConcurrent, ${WARMUP} records through the data service (Cassandra settled in ${secs(settled)})`,
    );
    await cassandraBaseline(cql, rawKeyspace, WARMUP, CONCURRENCY, "warm");
    await publishAll(storeBatches(WARMUP, K, "w"), Date.now() + TIMEOUT_MS);
    await storeDrained(Date.now() + TIMEOUT_MS);

    // 3. Rounds of baseline, first sight and refresh, one after the other, each on a settled
    // Cassandra: a drift of the machine or of Cassandra's state then touches all three alike.
    const base: BaselineResult[] = [];
    const first: Awaited<ReturnType<typeof serviceRun>>[] = [];
    const again: Awaited<ReturnType<typeof serviceRun>>[] = [];
    const cassCpu = new Map<string, number>();
    const loadStart = loadavg()[0];
    // Every timed run starts on flushed memtables and a Cassandra at rest.
    const ready = async () => {
      flush();
      await settle(cassandraPid, 15_000);
    };
    const baselineRun = async (r: number) => {
      await ready();
      const m = new CpuMeter({ cassandra: cassandraPid, bench: "self" });
      base.push(await cassandraBaseline(cql, rawKeyspace, N, CONCURRENCY, `raw${r}`));
      for (const [k, v] of m.used()) cassCpu.set(k, (cassCpu.get(k) ?? 0) + v);
    };
    for (let r = 0; r < RUNS; r++) {
      const baselineFirst = r % 2 === 0;
      note(
        `round ${r + 1} of ${RUNS}: ${baselineFirst ? "baseline, first sight, refresh" : "first sight, refresh, baseline"} of ${N} each`,
      );
      if (baselineFirst) await baselineRun(r);
      await ready();
      first.push(await serviceRun(`d${r}x`));
      await ready();
      // The same entities again the same day: the entity index knows their day already.
      again.push(await serviceRun(`d${r}x`));
      if (!baselineFirst) await baselineRun(r);
    }
    const loadEnd = loadavg()[0];
    const median = <T extends BaselineResult>(runs: T[]): T & { range: string } => {
      const sorted = [...runs].sort((a, b) => a.perSecond - b.perSecond);
      return {
        ...sorted[Math.floor(sorted.length / 2)],
        range: `${int(sorted[0].perSecond)}–${int(sorted[sorted.length - 1].perSecond)}`,
      };
    };
    const cass = median(base);
    const f = median(first);
    const a = median(again);
    // Each round's service runs over its own baseline, and their median.
    const paired = (runs: BaselineResult[]) => runs.map((x, i) => x.perSecond / base[i].perSecond);
    const mid = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];
    const pf = paired(first);
    const pa = paired(again);
    const rounds = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" ");
    const dlq = async () => (await jsm.streams.info(names.streams.DLQ).catch(() => null))?.state.messages ?? 0;
    out(
      `data  ${int(N)} records in ${int(Math.ceil(N / K))} messages of ${K}, first sight of every entity: ` +
        `dump ${secs(f.ms)} (${int(f.perSecond)} rows/s, median of ${RUNS}: ${f.range}); ` +
        `baseline cassandra executeConcurrent(${CONCURRENCY}) ${int(cass.perSecond)} rows/s (median of ${RUNS}: ${cass.range}); ` +
        `ratio ${mid(pf).toFixed(2)}× (median of the rounds' own ratios ${rounds(pf)}; ratio of the medians ${(f.perSecond / cass.perSecond).toFixed(2)}×) (target ≥ ${TARGET}×)`,
    );
    out(
      `data  refresh of the same entities the same day: dump ${secs(a.ms)} (${int(a.perSecond)} rows/s, median of ${RUNS}: ${a.range}); ` +
        `ratio ${mid(pa).toFixed(2)}× (rounds ${rounds(pa)}; ratio of the medians ${(a.perSecond / cass.perSecond).toFixed(2)}×) (target ≥ ${TARGET}×)`,
    );
    out(
      `data  cpu s of the median runs: first sight ${cpuList(f.cpu, cpuNames)}; refresh ${cpuList(a.cpu, cpuNames)}; ` +
        `baseline per run: cassandra ${((cassCpu.get("cassandra") ?? NaN) / RUNS).toFixed(1)}, bench ${((cassCpu.get("bench") ?? NaN) / RUNS).toFixed(1)} ` +
        `(machine load average ${loadStart.toFixed(1)} at the start, ${loadEnd.toFixed(1)} at the end: other work on the machine counts)`,
    );
    out(
      `data  published with ${IN_FLIGHT} in flight; clean job held back (every ${HELD_BACK_MS} ms) while dump writes are timed` +
        (flushProblem ? "; memtables NOT flushed between runs" : "; memtables flushed before each run") +
        (publishFailures ? `; ${publishFailures} publishes FAILED (first: ${firstFailure.slice(0, 160)})` : "") +
        `; dead letters: ${await dlq()}`,
    );

    // 4. The clean job on its own: the data service restarted with a short interval merges every
    // window the runs left dirty (each entity once per window, whatever its number of answers).
    const entities = WARMUP + RUNS * N;
    await proc.stop();
    await settle(cassandraPid, 15_000);
    const c0 = Date.now();
    const cleanMeter = new CpuMeter({ cassandra: cassandraPid, "nats-server": natsPid, bench: "self" });
    proc = await start(CLEAN_INTERVAL_MS, "clean");
    cleanMeter.add("data", proc.child.pid);
    let clean = { rows: 0, firstWriteMs: 0, lastWriteMs: 0 };
    let lastNote = Date.now();
    while (Date.now() - c0 < TIMEOUT_MS) {
      await sleep(2_000);
      clean = await scanWrites(cql, cleanTable, "sources", c0);
      if (clean.rows >= entities) break;
      if (Date.now() - lastNote >= 10_000) {
        lastNote = Date.now();
        note(`clean job: ${int(clean.rows)} of ${int(entities)} clean rows`);
      }
    }
    const cleanCpu = cleanMeter.used();
    const cleanMs = clean.lastWriteMs - clean.firstWriteMs;
    out(
      `data  clean job (restarted, every ${CLEAN_INTERVAL_MS} ms): ` +
        (clean.rows >= entities
          ? `${int(clean.rows)} clean rows in ${secs(cleanMs)} from its first to its last = ${int((clean.rows * 1000) / Math.max(1, cleanMs))} rows/s`
          : `INCOMPLETE ${int(clean.rows)} of ${int(entities)} clean rows in ${secs(TIMEOUT_MS)}`) +
        `; cpu s (restart to the last row): ${cpuList(cleanCpu, ["data", "cassandra", "nats-server", "bench"])}; dead letters: ${await dlq()}`,
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
  printProfiles();
}

function printProfiles(): void {
  if (!PROF_DIR) return;
  for (const phase of ["dump", "clean"]) {
    const best = busiestProfile(path.join(PROF_DIR, phase));
    if (best === undefined) out(`profile   data ${phase}: no .cpuprofile written`);
    else for (const l of formatSummary(best, `profile   data ${phase} (${best.file})`)) out(l);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`data bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
