// Aggregate throughput (make bench): records/s through aggregate processes, against a raw
// JetStream consume-and-ack loop of the same messages on the same server in the same run.
//
// Every row publishes the same M messages, each a RecordBatches of B one-record batches of
// websites (as invoke's handler groups them), with 64 publishes in flight, and is timed from the
// first publish to the last record done:
//   raw        a work-queue stream and one pull consumer in this process that acks each message
//              (the floor every consumer of these messages pays: median of 3 runs)
//   passthrough  aggregate (1 process) routes each batch to STORE; done = every record on STORE
//   window     a 1m window over K keys (mean, min, max, last), 1 partition: the router splits each
//              message by key onto the partition, whose owner applies, commits state atomically
//              to KV and acks; done = AGGREGATE empty (every record's effect stored)
//   window ×4 partitions, 1 process, then 2 processes (each owning 2 partitions)
// Ratios are each row's rate over the raw loop's. Next to each row: CPU seconds of the aggregate
// processes, nats-server and this process, which says which side limits it on a small machine.
//
// Env: MACHINA_BENCH_AGG_MESSAGES (default 2000), MACHINA_BENCH_AGG_BATCHES (batches per message,
// default 50), MACHINA_BENCH_AGG_KEYS (default 500), MACHINA_BENCH_CPU_PROF=<dir> (aggregate processes
// run with --cpu-prof into it; test/bench/pipeline-profile-top.ts summarises),
// MACHINA_BENCH_AGG_TIMEOUT_S (per row, default 300), MACHINA_BENCH_VERBOSE (print the aggregate
// processes' log tails at the end), MACHINA_BENCH_AGG_TRACE (sample the router/partition backlog).
import { cpus, loadavg } from "node:os";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import type { Msg, NatsConnection } from "@nats-io/nats-core";
import { AckPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { codec } from "@machina/protos";
import type { RecordBatch } from "@machina/protos";
import { MeshClient, ensureStream, pipelineStreams } from "@machina/runtime";
import { meshNames } from "@machina/subjects";
import type { MeshNames } from "@machina/subjects";
import { CONTENT_TYPE_PROTOBUF, FixedHeaders, encodeBody } from "@machina/wire";
import { syntheticSite } from "../fixtures/fake-api";
import { NATS_URL, uniquePrefix } from "../support/nats-env";
import { startServiceProc, writeConfig } from "../support/service-procs";
import type { ServiceProc } from "../support/service-procs";
import { medianOf } from "./pipeline-baselines";
import type { BaselineResult } from "./pipeline-baselines";
import { CpuMeter, harnessPid } from "./pipeline-procs";

const M = Number(process.env.MACHINA_BENCH_AGG_MESSAGES ?? 2000);
const B = Number(process.env.MACHINA_BENCH_AGG_BATCHES ?? 50);
const K = Number(process.env.MACHINA_BENCH_AGG_KEYS ?? 500);
const IN_FLIGHT = 64;
const NS_PER_MS = 1_000_000;
const TIMEOUT_MS = Number(process.env.MACHINA_BENCH_AGG_TIMEOUT_S ?? 300) * 1000;
const N = M * B;
const PROF_DIR = process.env.MACHINA_BENCH_CPU_PROF ? path.resolve(process.env.MACHINA_BENCH_CPU_PROF) : undefined;

const out = (line: string) => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`[aggregate bench] ${line}\n`);
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Event time of the next row's first message: every row (and warm-up) runs later in event time
// than the one before, so a window row never finds its windows closed by an earlier row.
let nextTime = Date.UTC(2026, 0, 1);

/** `count` (default M) messages: message i holds batches of websites l<j % K>.bench, fetched a second apart per message. */
function messages(type: string, tag: string, count = M): Uint8Array[] {
  const t0 = nextTime;
  nextTime += count * 1000 + 3_600_000;
  return Array.from({ length: count }, (_, i) => {
    const batches: RecordBatch[] = Array.from({ length: B }, (_, j) => {
      const domain = `l${(i * B + j) % K}.bench`;
      const taskId = `${tag}/${i}/${j}`;
      return {
        id: `${taskId}:${type}`,
        type,
        source: "benchsrc",
        query: "site",
        taskId,
        fetchedAt: t0 + i * 1000,
        records: [syntheticSite(domain) as unknown as RecordBatch["records"][number]],
        firstSeq: 0,
      };
    });
    return encodeBody("RecordBatches", { batches }, "protobuf");
  });
}

/**
 * Publishes `bodies` to `subject` with IN_FLIGHT outstanding publishes, with the headers the
 * mesh's own publishes carry (bytes encoded before the clock starts, as in every row).
 */
async function publishAll(client: MeshClient, subject: string, bodies: Uint8Array[], tag: string): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < bodies.length) {
      const i = next++;
      const headers = new FixedHeaders([
        ["Content-Type", CONTENT_TYPE_PROTOBUF],
        ["Nats-Msg-Id", `${tag}/${i}`],
      ]);
      const ack = await client.requestMsg(subject, bodies[i], { headers, timeoutMs: 10_000 });
      if (ack.string().includes('"error"')) throw new Error(`publish to ${subject} refused: ${ack.string()}`);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
}

/** The raw floor: publish the messages to a work queue while one pull consumer acks each. */
async function rawLoop(nc: NatsConnection, prefix: string, tag: string): Promise<BaselineResult> {
  const jsm = await jetstreamManager(nc);
  const stream = `${prefix.toUpperCase()}_RAWAGG_${tag.toUpperCase()}`;
  const subject = `${prefix}.rawagg.${tag}`;
  await jsm.streams.add({
    name: stream,
    subjects: [subject],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: 5 * 60_000 * NS_PER_MS,
  });
  try {
    await jsm.consumers.add(stream, { durable_name: "raw", ack_policy: AckPolicy.Explicit, max_ack_pending: 1000 });
    const consumer = await jetstream(nc).consumers.get(stream, "raw");
    const bodies = messages("website", tag);
    const client = new MeshClient(nc);
    const t0 = performance.now();
    const iter = await consumer.consume({ max_messages: 256 });
    const consumed = (async () => {
      let got = 0;
      for await (const m of iter) {
        m.ack();
        if (++got >= M) break;
      }
      return performance.now();
    })();
    await publishAll(client, subject, bodies, tag);
    const end = await consumed;
    client.close();
    const ms = end - t0;
    return { n: N, ms, perSecond: (N * 1000) / ms };
  } finally {
    await jsm.streams.delete(stream).catch(() => undefined);
  }
}

/** Records of `type` seen on STORE (a plain subscription: STORE keeps them, nobody consumes). */
function storeCounter(nc: NatsConnection, names: MeshNames, type: string): { count(): number; stop(): void } {
  const decode = codec("RecordBatches");
  let n = 0;
  const sub = nc.subscribe(names.task.store(type), {
    callback: (_err, m: Msg) => {
      for (const b of decode.decode(m.data).batches) n += b.records.length;
    },
  });
  return { count: () => n, stop: () => sub.unsubscribe() };
}

interface Row {
  label: string;
  rate: number;
  ms: number;
  cpu: Map<string, number>;
  /** Commits of partition state in the row, their mean time, and key states written. */
  commits?: { n: number; ms: number; writes: number };
}

/** Sum over the aggregate processes of their commit metrics for `type`. */
async function commitStats(procs: ServiceProc[], type: string): Promise<{ n: number; s: number; writes: number }> {
  const out = { n: 0, s: 0, writes: 0 };
  for (const p of procs) {
    const text = await (await fetch(`http://127.0.0.1:${p.probePort}/metrics`)).text();
    for (const line of text.split("\n")) {
      if (!line.includes(`type="${type}"`)) continue;
      const v = Number(line.split(" ").pop());
      if (line.startsWith("machina_aggregate_commit_seconds_count")) out.n += v;
      else if (line.startsWith("machina_aggregate_commit_seconds_sum")) out.s += v;
      else if (line.startsWith("machina_aggregate_state_writes_total")) out.writes += v;
    }
  }
  return out;
}

async function main(): Promise<void> {
  if (![M, B, K].every((x) => Number.isInteger(x) && x > 0))
    throw new Error("MACHINA_BENCH_AGG_* must be positive integers");
  const natsPid = harnessPid("nats");
  const prefix = uniquePrefix("aggb");
  const names = meshNames(prefix);
  const nc = await connect({ servers: NATS_URL, maxReconnectAttempts: -1 });
  const jsm = await jetstreamManager(nc);
  const procs: ServiceProc[] = [];
  try {
    for (const cfg of Object.values(pipelineStreams(names))) await ensureStream(jsm, cfg);
    const site = (extra: string) =>
      `aggregator: window\nkey: domain\nsize: 1m\nfields: { visits: mean, rank: min, bounce_rate: max, title: last }\n${extra}`;
    const configDir = writeConfig({
      "aggregate/aggregators/website.yaml": "aggregator: passthrough\n",
      "aggregate/aggregators/win.yaml": site(""),
      "aggregate/aggregators/winp.yaml": site("partitions: 4\n"),
    });

    note(`raw loop: warm-up, then ${M} messages × ${B} records, 3 runs`);
    await rawLoop(nc, prefix, "warm");
    const rawCpu = new CpuMeter({ "nats-server": natsPid, bench: "self" });
    const raw = await medianOf(3, (i) => rawLoop(nc, prefix, `raw${i}`));
    const rawUsed = rawCpu.used();

    note("starting one aggregate process");
    const start = async () => {
      const nodeArgs = PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${PROF_DIR}`] : [];
      const p = await startServiceProc("aggregate", { configDir, prefix, nodeArgs, readyTimeoutMs: 120_000 });
      procs.push(p);
      return p;
    };
    await start();
    const client = new MeshClient(nc);
    const rows: Row[] = [];
    const aggregatePids = () =>
      Object.fromEntries(procs.map((p, i) => [procs.length > 1 ? `aggregate ${i + 1}` : "aggregate", p.child.pid]));
    const published = new Map<string, number>();

    // `done(records)`: all `records` published so far of the type are through.
    const measure = async (label: string, type: string, done: (records: number) => Promise<boolean>) => {
      const send = async (bodies: Uint8Array[], tag: string) => {
        await publishAll(client, names.task.aggregate(type), bodies, tag);
        published.set(type, (published.get(type) ?? 0) + bodies.length * B);
      };
      // A warm-up on other ids first: the row starts with a warm JIT and its partitions owned.
      await send(messages(type, `w${rows.length}`, 100), `w${rows.length}-${type}`);
      await waitFor(() => done(published.get(type)!));
      const bodies = messages(type, label.replace(/\W+/g, ""));
      const meter = new CpuMeter({ ...aggregatePids(), "nats-server": natsPid, bench: "self" });
      const before = await commitStats(procs, type);
      const t0 = performance.now();
      const backlog: string[] = [];
      const sampler = process.env.MACHINA_BENCH_AGG_TRACE
        ? setInterval(() => {
            void jsm.streams
              .info(names.streams.AGGREGATE, { subjects_filter: `${names.task.aggregate(type)}.>` })
              .then((i) => {
                const subj = i.state.subjects ?? {};
                const routerLeft = subj[names.task.aggregate(type)] ?? 0;
                const parts = Object.entries(subj)
                  .filter(([k]) => k !== names.task.aggregate(type))
                  .reduce((a, [, v]) => a + v, 0);
                backlog.push(`${Math.round(performance.now() - t0)}ms r${routerLeft}/p${parts}`);
              })
              .catch(() => undefined);
          }, 250)
        : undefined;
      await send(bodies, `${label}-${type}`);
      await waitFor(() => done(published.get(type)!));
      clearInterval(sampler);
      if (backlog.length > 0) note(`${label} backlog (router/partitions): ${backlog.join(" ")}`);
      const ms = performance.now() - t0;
      const cpu = meter.used();
      const after = await commitStats(procs, type);
      const n = after.n - before.n;
      const commits =
        n > 0 ? { n, ms: ((after.s - before.s) * 1000) / n, writes: after.writes - before.writes } : undefined;
      rows.push({ label, rate: (N * 1000) / ms, ms, cpu, commits });
      note(`${label}: ${int((N * 1000) / ms)} records/s`);
    };
    const aggregateEmpty = async () => (await jsm.streams.info(names.streams.AGGREGATE)).state.messages === 0;

    const website = storeCounter(nc, names, "website");
    await measure("passthrough", "website", async (records) => website.count() >= records && (await aggregateEmpty()));
    website.stop();
    await measure("window, 1 partition", "win", aggregateEmpty);
    await measure("window ×4, 1 process", "winp", aggregateEmpty);
    note("starting a second aggregate process; waiting for it to take its 2 partitions");
    await start();
    await sleep(3_000);
    await measure("window ×4, 2 processes", "winp", aggregateEmpty);
    client.close();

    out(
      `aggregate bench: ${M} messages × ${B} one-record batches = ${int(N)} records, ${K} keys, ${IN_FLIGHT} publishes in flight`,
    );
    out(`machine: ${cpus().length} cores, load ${loadavg()[0].toFixed(2)}; nats-server ${NATS_URL}`);
    const cpuText = (m: Map<string, number>) => [...m].map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(", ");
    out(
      `raw JetStream consume+ack loop   ${int(raw.perSecond).padStart(9)} records/s  (${int(raw.perSecond / B)} msgs/s; runs ${raw.range})  ratio 1.00  cpu: ${cpuText(rawUsed)} over 3 runs`,
    );
    for (const r of rows) {
      out(
        `${r.label.padEnd(32)} ${int(r.rate).padStart(9)} records/s  (${(r.ms / 1000).toFixed(2)} s)  ratio ${(r.rate / raw.perSecond).toFixed(2)}  cpu: ${cpuText(r.cpu)}`,
      );
      if (r.commits)
        out(
          `${"".padEnd(34)}${int(r.commits.n)} commits of ${(N / r.commits.n).toFixed(0)} records, ${r.commits.ms.toFixed(1)} ms each; ${(N / Math.max(1, r.commits.writes)).toFixed(1)} records per key state written`,
        );
    }
    const one = rows.find((r) => r.label === "window ×4, 1 process");
    const two = rows.find((r) => r.label === "window ×4, 2 processes");
    if (one && two) out(`2 processes / 1 process on the partitioned type: ${(two.rate / one.rate).toFixed(2)}×`);
  } finally {
    if (process.env.MACHINA_BENCH_VERBOSE)
      for (const p of procs) process.stderr.write(`--- aggregate ${p.child.pid}\n${p.output().slice(-6000)}\n`);
    for (const p of procs) await p.stop().catch(() => undefined);
    for (const s of Object.values(names.streams)) await jsm.streams.delete(s).catch(() => undefined);
    for (const b of [names.buckets.aggregateState, names.buckets.aggregateLeases])
      await jsm.streams.delete(`KV_${b}`).catch(() => undefined);
    await nc.close();
  }
}

async function waitFor(done: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + TIMEOUT_MS;
  while (!(await done())) {
    if (Date.now() > end) throw new Error(`not done within ${TIMEOUT_MS} ms`);
    await sleep(10);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
