// Invoke at scale (make bench): one tick of a constant ledger × 2 queries, published by an invoke
// process into the FETCH stream of the bench's nats-server, at 1,000 leads (the baseline) and at
// 100,000 leads, each in a fresh process and network prefix:
//   enqueue   from the fire request to its reply (every task stored in the stream), and tasks/s
//   peak RSS  the process's high-water mark (VmHWM of /proc/<pid>/status) over start and tick
// Ratio line: peak RSS at 100,000 leads over peak RSS at 1,000 leads (target ≤ 1.5).
//
// Env: MACHINA_BENCH_INVOKE_LEADS (default 100000), MACHINA_BENCH_INVOKE_BASE_LEADS (default 1000),
// MACHINA_BENCH_INVOKE_NODE_ARGS (node flags of the invoke process, space-separated; default none);
// MACHINA_INVOKE_HEAP_GROWING_PERCENT reaches the process as its invoke.heapGrowingPercent.
import { readFileSync } from "node:fs";
import { connect } from "@nats-io/transport-node";
import { meshNames } from "@machina/subjects";
import { NATS_URL, removeNetwork, uniquePrefix } from "../support/nats-env";
import { startServiceProc, writeConfig } from "../support/service-procs";

const BIG = Number(process.env.MACHINA_BENCH_INVOKE_LEADS ?? 100_000);
const BASE = Number(process.env.MACHINA_BENCH_INVOKE_BASE_LEADS ?? 1_000);
const QUERIES = 2;

const out = (line: string) => process.stdout.write(`${line}\n`);
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const mib = (kb: number) => (kb / 1024).toFixed(0);

/** A status field of a process in kB (VmHWM: peak resident set, VmRSS: now). */
function statusKb(pid: number, field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m === null ? 0 : Number(m[1]);
}

interface Run {
  leads: number;
  tasks: number;
  enqueueMs: number;
  startHwmKb: number;
  peakKb: number;
}

async function run(leads: number): Promise<Run> {
  const prefix = uniquePrefix(`inv${leads}`);
  const names = meshNames(prefix);
  const lines = ["leads:"];
  for (let i = 0; i < leads; i++) lines.push(`  - domain: site${i}.example`, `    rank: ${i}`);
  const configDir = writeConfig({
    "invoke/ledgers/big.yaml": `lead_id: domain\nfields: { domain: string, rank: integer }\n${lines.join("\n")}\n`,
    "invoke/query_sets/big_sitestats.yaml": "source: sitestats\nqueries: [site, pages]\nledger: big\n",
    "invoke/triggers/big.yaml": "type: manual\nquery_sets: [big_sitestats]\n",
  });
  const nc = await connect({ servers: NATS_URL, noAsyncTraces: true });
  const nodeArgs = (process.env.MACHINA_BENCH_INVOKE_NODE_ARGS ?? "").split(" ").filter((a) => a !== "");
  const proc = await startServiceProc("invoke", { configDir, prefix, nodeArgs, readyTimeoutMs: 300_000 });
  const pid = proc.child.pid!;
  try {
    const startHwmKb = statusKb(pid, "VmHWM");
    const t0 = performance.now();
    const reply = await nc.request(names.invoke.fire, new TextEncoder().encode('{"trigger":"big"}'), {
      timeout: 600_000,
    });
    const enqueueMs = performance.now() - t0;
    const body = JSON.parse(new TextDecoder().decode(reply.data)) as { tasks?: number; message?: string };
    if (body.tasks !== leads * QUERIES) throw new Error(`fire answered ${JSON.stringify(body).slice(0, 300)}`);
    return { leads, tasks: body.tasks, enqueueMs, startHwmKb, peakKb: statusKb(pid, "VmHWM") };
  } finally {
    await proc.stop();
    await removeNetwork(nc, names);
    await nc.close();
  }
}

const base = await run(BASE);
const big = await run(BIG);
out(
  `invoke: one tick of a constant ledger × ${QUERIES} queries into the FETCH stream (1 process, this machine; ` +
    `heapGrowingPercent ${process.env.MACHINA_INVOKE_HEAP_GROWING_PERCENT ?? "default"})`,
);
out("leads      tasks      enqueue s   tasks/s     RSS after start MiB   peak RSS MiB");
for (const r of [base, big])
  out(
    `${int(r.leads).padEnd(10)} ${int(r.tasks).padEnd(10)} ${(r.enqueueMs / 1000).toFixed(2).padEnd(11)} ${int(r.tasks / (r.enqueueMs / 1000)).padEnd(11)} ${mib(r.startHwmKb).padEnd(21)} ${mib(r.peakKb)}`,
  );
out(
  `ratio: peak RSS ${int(BIG)} leads ÷ ${int(BASE)} leads = ${(big.peakKb / base.peakKb).toFixed(2)}× (target ≤ 1.5×)`,
);
