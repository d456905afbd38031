// `make scale-demo`: per-service scaling shown locally. 3 fetch, 2 aggregate and 2 data replicas
// (and one invoke, compute and vertex) as separate processes against one nats-server and one
// Cassandra (run-bench.sh starts both on the bench ports). N leads are fired once; the demo
// prints what each replica handled (from its own /metrics), its CPU seconds, and the dump and
// clean rows counted in Cassandra: every expected row exactly once, none missing. Exits 1 when
// a row is missing or duplicated.
//
// Env: MACHINA_SCALE_DEMO_N (leads, default 5000), MACHINA_SCALE_DEMO_REPLICAS (e.g.
// `fetch=4,data=3`, over the default plan), MACHINA_SCALE_DEMO_TIMEOUT_S (default 600).
//
// bench-needs: cassandra (run-bench.sh starts one on its own ports for a file with this line)
import { describeTally } from "../support/flow-rows";
import { PipelineFlow, describePlan } from "../support/pipeline-flow";
import { CpuMeter } from "./pipeline-procs";

const N = Number(process.env.MACHINA_SCALE_DEMO_N ?? 5_000);
const TIMEOUT_MS = Number(process.env.MACHINA_SCALE_DEMO_TIMEOUT_S ?? 600) * 1000;
const PLAN: Record<string, number> = { data: 2, aggregate: 2, invoke: 1, fetch: 3, compute: 1, vertex: 1 };

const out = (line: string) => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`[scale-demo] ${line}\n`);
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const pct = (part: number, whole: number) => `${whole > 0 ? Math.round((part / whole) * 100) : 0} %`;

/** The default plan with MACHINA_SCALE_DEMO_REPLICAS applied (`service=n,…`). */
function plan(): Record<string, number> {
  const p = { ...PLAN };
  for (const item of (process.env.MACHINA_SCALE_DEMO_REPLICAS ?? "").split(",").filter(Boolean)) {
    const m = /^(fetch|invoke|aggregate|data|compute|vertex)=(\d+)$/.exec(item.trim());
    if (!m) throw new Error(`MACHINA_SCALE_DEMO_REPLICAS: "${item}" is not <service>=<count>`);
    p[m[1]] = Number(m[2]);
  }
  return p;
}

// What a replica's work is called, per service.
const UNIT: Record<string, string> = {
  fetch: "FetchTasks",
  invoke: "FETCHED answers",
  aggregate: "AGGREGATE msgs",
  data: "STORE msgs",
};

async function main(): Promise<void> {
  if (!Number.isInteger(N) || N < 1) throw new Error(`MACHINA_SCALE_DEMO_N must be a positive integer, got ${N}`);
  const replicas = plan();
  const flow = await PipelineFlow.start({ leads: N, replicas, label: "scaledemo", note });
  let ok = false;
  try {
    const meter = new CpuMeter(Object.fromEntries(flow.replicas.map((r) => [r.label, r.child.pid])));
    const t0 = Date.now();
    note(`firing ${N} leads`);
    const fired = await flow.fire();
    const firedMs = Date.now() - t0;
    const rows = await flow.settle(TIMEOUT_MS);
    const ms = Date.now() - t0;
    const cpu = meter.used();
    const report = await flow.report(rows);
    ok = report.exactlyOnce;

    out(
      `scale-demo  ${int(N)} leads through ${describePlan(replicas)}, each a separate process, one nats-server, one Cassandra`,
    );
    out(
      `scale-demo  fire → ${fired.tasks} tasks published in ${(firedMs / 1000).toFixed(1)} s; ` +
        `every row stored and the streams drained after ${(ms / 1000).toFixed(1)} s (${int((N * 1000) / ms)} leads/s)`,
    );
    for (const service of ["fetch", "invoke", "aggregate", "data", "compute", "vertex"]) {
      const mine = report.perReplica.filter((c) => c.service === service);
      const total = mine.reduce((n, c) => n + c.acked, 0);
      for (const c of mine) {
        const handled = UNIT[service] ? `${int(c.acked)} ${UNIT[service]} (${pct(c.acked, total)})` : "";
        const extra = [
          c.extra.partitions !== undefined ? `partitions owned ${c.extra.partitions}` : "",
          c.extra.keysWritten !== undefined ? `entity states written ${int(c.extra.keysWritten)}` : "",
          c.extra.cleanMerged !== undefined ? `clean merged ${int(c.extra.cleanMerged)} entities` : "",
          c.extra.requests !== undefined ? `requests ${int(c.extra.requests)}` : "",
          Object.keys(c.otherOutcomes).length ? `other outcomes ${JSON.stringify(c.otherOutcomes)}` : "",
        ].filter(Boolean);
        out(
          `replica     ${c.label.padEnd(12)} pid ${String(c.pid).padEnd(8)} cpu ${(cpu.get(c.label) ?? 0).toFixed(1).padStart(5)} s  ` +
            [handled, ...extra].filter(Boolean).join(", "),
        );
      }
    }
    const verdict = (t: typeof rows.dump, want: number) =>
      t.missing === 0 && t.duplicated.length === 0 && t.rows === want ? "exactly once" : "NOT exactly once";
    out(
      `rows        dump (per lead and source): ${int(flow.expectedDump)} expected; ${describeTally(rows.dump)}: ${verdict(rows.dump, flow.expectedDump)}`,
    );
    out(
      `rows        clean (per lead): ${int(N)} expected; ${describeTally(rows.clean)}: ${verdict(rows.clean, N)}; dead letters ${report.deadLetters}`,
    );
  } finally {
    await flow.close();
  }
  if (!ok) throw new Error("rows missing or duplicated (see above)");
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`scale-demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
