// Request/reply throughput: where the mesh's own client and endpoint stand against raw nats.js
// and against Moleculer over the same nats-server.
//
//   node --import tsx test/bench/request-reply.bench.ts     (MACHINA_NATS_URL, default :44222)
//
// Responders run in child processes (test/bench/responder.ts, and moleculer-responder.ts for
// Moleculer's broker), one per kind, so requester and responder each have their own event loop,
// as between two services; the bench process is the requester of every row (for Moleculer: a
// caller broker, moleculer-caller.ts). Every row carries the same request and reply objects
// (payloads.ts); each client encodes them its own way (sizes printed in the header). Every cell (row × N requests
// in flight) runs a warm-up, then a fixed measuring window, with a hard cap on requests; rates are
// completions inside the window divided by its real length. Ratios are against row 1 at the same N,
// measured in the same run, right before the other rows of that N. Each row first gets 1 s of
// unmeasured load, so none is measured cold. Next to the rates it prints the CPU each process
// (requester, responder, and the nats-server run-bench.sh started) used in each window, which
// says which side limits a row. Last, the MeshClient/Moleculer lines: rate of row 3 over row 5 at
// each N (target ≥ 1.0 at 16 and 128), and row 3's p50 at N=1 as a multiple of row 5's (≤ 1.2).
//
// Every cell is measured in several rounds (the row order reversed every other round, so a drift
// of the machine falls on all rows alike) and the round with the median rate counts; a 2-core VM
// with neighbours moves a single 3 s window by ±10 %. The MeshClient/Moleculer lines also give
// each round's own ratio (rows 3 and 5 of one round run within seconds of each other).
//
// Knobs (env): MACHINA_BENCH_SECONDS (default 3), MACHINA_BENCH_WARMUP_MS (default 500),
// MACHINA_BENCH_MAX_REQUESTS per cell (default 500000), MACHINA_BENCH_ROUNDS (default 3).
import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import { headers as makeHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/nats-core";
import { MeshClient } from "@machina/runtime";
import type { QueryRequest } from "@machina/protos";
import { CONTENT_TYPE_PROTOBUF, encodeBody } from "@machina/wire";
import { REQUEST } from "./payloads";
import type { ResponderMessage } from "./responder-process";
import { startMoleculerCaller } from "./moleculer-caller";
import type { MoleculerCaller } from "./moleculer-caller";

const NATS_URL = process.env.MACHINA_NATS_URL ?? "nats://127.0.0.1:44222";
const SECONDS = boundedNumber("MACHINA_BENCH_SECONDS", 3, 0.2, 30);
const WARMUP_MS = boundedNumber("MACHINA_BENCH_WARMUP_MS", 500, 0, 10_000);
const MAX_REQUESTS = boundedNumber("MACHINA_BENCH_MAX_REQUESTS", 500_000, 100, 5_000_000);
const ROUNDS = Math.round(boundedNumber("MACHINA_BENCH_ROUNDS", 3, 1, 9));
const IN_FLIGHT = [1, 16, 128];
const REQUEST_TIMEOUT_MS = 5000;
/** A cell stops early after this many failed requests: the numbers would mean nothing. */
const MAX_ERRORS = 20;
const READY_TIMEOUT_MS = 60_000;
/** Unmeasured load per row (at N=16) before the first cell, so no row is measured cold. */
const PRIME_SECONDS = 1;

function boundedNumber(name: string, dflt: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new Error(`${name}=${raw}: expected a number from ${min} to ${max}`);
  return n;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Responder processes

const children = new Set<ChildProcess>();

type ResponderKind = "raw" | "mesh" | "moleculer";

function startResponder(kind: ResponderKind, prefix: string): Promise<{ child: ChildProcess; subject: string }> {
  const script = fileURLToPath(
    new URL(kind === "moleculer" ? "./moleculer-responder.ts" : "./responder.ts", import.meta.url),
  );
  // fork() passes our execArgv (--import tsx) on, and opens the IPC channel the child watches.
  const child = fork(script, kind === "moleculer" ? [prefix] : [kind, prefix], {
    env: { ...process.env, MACHINA_NATS_URL: NATS_URL },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${kind} responder not ready within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS,
    );
    child.on("message", (m: ResponderMessage) => {
      clearTimeout(timer);
      if (m.type === "ready") resolve({ child, subject: m.subject });
      else reject(new Error(`${kind} responder failed to start: ${m.message}`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${kind} responder exited during start-up (code ${code}, signal ${signal})`));
    });
  });
}

async function stopResponders(): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      if (child.connected) child.send("stop");
      else child.kill("SIGTERM");
      const late = await Promise.race([exited.then(() => false), sleep(8000).then(() => true)]);
      if (late) {
        child.kill("SIGKILL");
        await Promise.race([exited, sleep(2000)]);
      }
    }),
  );
}

// Last resort when we exit without reaching the finally (an exception in a handler, process.exit).
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
/** Set on SIGINT/SIGTERM: cells stop sending before the responders go. */
let aborting = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    aborting = true;
    console.error(`\n${sig}: stopping responders`);
    void stopResponders().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------
// Measuring

/** CPU seconds a process has used so far; null where it cannot be read (not Linux, gone). */
type CpuClock = () => number | null;

const requesterCpu: CpuClock = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** utime + stime of another process from /proc (clock ticks, 100 per second on Linux). */
function procCpu(pid: number | undefined): CpuClock {
  return () => {
    if (!pid) return null;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      return null;
    }
  };
}

/** The nats-server run-bench.sh started (its pid file under MACHINA_STATE), if that is where we are. */
function natsServerPid(): number | undefined {
  const state = process.env.MACHINA_STATE;
  if (!state) return undefined;
  try {
    const pid = Number(readFileSync(`${state}/run/nats.pid`, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

interface CellResult {
  rate: number;
  /** Share of one core each process used in the measured window: requester, responder, nats-server. */
  cpu: (number | null)[];
  completed: number;
  errors: number;
  firstError?: string;
  capped: boolean;
  /** Latencies (ms) of requests completed in the window; only kept at N=1. */
  latencies?: Float64Array;
}

const LATENCY_SLOTS = 200_000;

async function runCell(
  call: () => Promise<unknown>,
  inFlight: number,
  clocks: CpuClock[],
  warmupMs = WARMUP_MS,
  seconds = SECONDS,
): Promise<CellResult> {
  let issued = 0;
  let completed = 0;
  let errors = 0;
  let firstError: string | undefined;
  let measuring = false;
  let stopped = false;
  const keepLatency = inFlight === 1;
  const lat = keepLatency ? new Float64Array(LATENCY_SLOTS) : undefined;
  let nLat = 0;

  const worker = async () => {
    while (!stopped && !aborting && issued < MAX_REQUESTS) {
      issued++;
      const t0 = performance.now();
      try {
        await call();
      } catch (err) {
        errors++;
        firstError ??= String((err as Error)?.message ?? err);
        if (errors >= MAX_ERRORS) stopped = true;
        continue;
      }
      if (measuring) {
        completed++;
        if (lat && nLat < LATENCY_SLOTS) lat[nLat++] = performance.now() - t0;
      }
    }
  };

  const workers = Array.from({ length: inFlight }, worker);
  await sleep(warmupMs);
  measuring = true;
  const cpu0 = clocks.map((c) => c());
  const start = performance.now();
  await Promise.race([sleep(seconds * 1000), Promise.all(workers)]);
  measuring = false;
  const elapsed = (performance.now() - start) / 1000;
  const cpu = clocks.map((c, i) => {
    const a = cpu0[i];
    const b = c();
    return a === null || b === null ? null : (b - a) / elapsed;
  });
  stopped = true;
  await Promise.all(workers);
  return {
    rate: completed / elapsed,
    cpu,
    completed,
    errors,
    firstError,
    capped: issued >= MAX_REQUESTS,
    latencies: lat?.subarray(0, nLat),
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

// ---------------------------------------------------------------------------------------------
// Rows

interface Row {
  label: string;
  /** The responder process this row talks to (for its CPU figure). */
  responder: ChildProcess;
  /** Sends one request and waits for (and, where the row says so, decodes) its reply. */
  call: () => Promise<unknown>;
  /** One request, checked, before any timing: a wrong reply must not be measured as a fast one. */
  check: () => Promise<void>;
}

async function main(): Promise<void> {
  const prefix = `bench${randomBytes(3).toString("hex")}`;
  const jsonRequest = encodeBody("QueryRequest", REQUEST, "json");
  const protoRequest = encodeBody("QueryRequest", REQUEST, "protobuf");

  const probe = await connect({ servers: NATS_URL, name: "bench-probe" }).catch((err: unknown) => {
    throw new Error(
      `no nats-server at ${NATS_URL} (${(err as Error).message}); run the bench with \`make bench\` or test/harness/run-bench.sh, which start one`,
    );
  });
  const serverVersion = probe.info?.version ?? "?";
  await probe.close();

  // One connection per row, so no row inherits another's subscriptions or buffers.
  const conns: NatsConnection[] = [];
  const open = async (name: string, noAsyncTraces: boolean) => {
    const nc = await connect({ servers: NATS_URL, name, noAsyncTraces });
    conns.push(nc);
    return nc;
  };
  let moleculer: MoleculerCaller | undefined;
  try {
    const started = await Promise.allSettled([
      startResponder("raw", prefix),
      startResponder("mesh", prefix),
      startResponder("moleculer", prefix),
    ]);
    const startFailure = started.find((s) => s.status === "rejected");
    if (startFailure) throw (startFailure as PromiseRejectedResult).reason;
    const [raw, mesh, mol] = started.map(
      (s) => (s as PromiseFulfilledResult<{ child: ChildProcess; subject: string }>).value,
    );
    const ncBase = await open("bench-raw", false);
    const ncNoTraces = await open("bench-raw-notraces", true);
    // MeshClient gets a connection built the way startService builds every service's (noAsyncTraces).
    const ncMesh = await open("bench-meshclient", true);
    const ncCli = await open("bench-json-cli", false);
    const client = new MeshClient(ncMesh);
    const timeout = REQUEST_TIMEOUT_MS;
    const replySize = { raw: 0, json: 0, proto: 0 };
    moleculer = await startMoleculerCaller(NATS_URL, prefix, READY_TIMEOUT_MS);
    const molCaller = moleculer;
    /** Bytes of Moleculer's request and reply packets (envelope included), seen on the wire by the check. */
    const molSize = { request: 0, reply: 0 };

    const rows: Row[] = [
      {
        label: "1 raw nc.request → raw responder (baseline)",
        responder: raw.child,
        call: () => ncBase.request(raw.subject, jsonRequest, { timeout }),
        check: async () => {
          replySize.raw = (await ncBase.request(raw.subject, jsonRequest, { timeout })).data.length;
        },
      },
      {
        label: "2 raw nc.request, noAsyncTraces → raw responder",
        responder: raw.child,
        call: () => ncNoTraces.request(raw.subject, jsonRequest, { timeout }),
        check: async () => {
          await ncNoTraces.request(raw.subject, jsonRequest, { timeout });
        },
      },
      {
        label: "3 MeshClient (protobuf) → Machina endpoint",
        responder: mesh.child,
        call: () => client.request(mesh.subject, "QueryRequest", REQUEST, "QueryResponse", { timeoutMs: timeout }),
        check: async () => {
          const r = await client.request(mesh.subject, "QueryRequest", REQUEST, "QueryResponse", {
            timeoutMs: timeout,
          });
          if (r.requestId !== REQUEST.requestId || r.data.types.website?.records.length !== 1)
            throw new Error(`mesh endpoint answered ${JSON.stringify(r)}`);
          replySize.proto = (
            await ncMesh.request(mesh.subject, protoRequest, { timeout, headers: protoHeaders() })
          ).data.length;
        },
      },
      {
        label: "4 raw nc.request, JSON (nats req) → Machina endpoint",
        responder: mesh.child,
        call: () => ncCli.request(mesh.subject, jsonRequest, { timeout }),
        check: async () => {
          const m = await ncCli.request(mesh.subject, jsonRequest, { timeout });
          const body = JSON.parse(m.string()) as { requestId?: string };
          if (m.headers?.get("Nats-Service-Error-Code") || body.requestId !== REQUEST.requestId)
            throw new Error(`mesh endpoint answered ${m.string()}`);
          replySize.json = m.data.length;
        },
      },
      {
        label: "5 Moleculer call → Moleculer action (NATS)",
        responder: mol.child,
        call: () => molCaller.call(REQUEST),
        check: async () => {
          // Moleculer's packets go to MOL-<namespace>.REQ.<node> and come back on .RES.<node>.
          const snoop = ncBase.subscribe(`MOL-${prefix}.>`, {
            callback: (err, m) => {
              if (err) return;
              if (m.subject.includes(".REQ.")) molSize.request = m.data.length;
              else if (m.subject.includes(".RES.")) molSize.reply = m.data.length;
            },
          });
          await ncBase.flush();
          const r = (await molCaller.call(REQUEST)) as Partial<QueryRequest> & { data?: unknown };
          await ncBase.flush();
          snoop.unsubscribe();
          if (r?.requestId !== REQUEST.requestId || !r.data)
            throw new Error(`Moleculer action answered ${JSON.stringify(r)}`);
        },
      },
    ];
    for (const row of rows) await row.check();

    const cores = cpus();
    console.log("request/reply bench (test/bench/request-reply.bench.ts)");
    console.log(`  date     ${new Date().toISOString()}`);
    console.log(
      `  machine  ${cores.length} cores (${cores[0]?.model.trim() ?? "?"}), node ${process.version}, nats-server ${serverVersion} at ${NATS_URL}`,
    );
    console.log(
      `  load     ${loadavg()
        .map((x) => x.toFixed(2))
        .join(" ")} (1/5/15 min, before the run)`,
    );
    console.log(
      `  payload  request ${jsonRequest.length} B JSON / ${protoRequest.length} B protobuf; ` +
        `reply ${replySize.raw} B JSON (raw), ${replySize.json} B JSON / ${replySize.proto} B protobuf (Machina endpoint); ` +
        `Moleculer packets (JSON, envelope included) ${molSize.request} B request / ${molSize.reply} B reply`,
    );
    console.log(
      `  cells    ${WARMUP_MS} ms warm-up + ${SECONDS} s measured, at most ${MAX_REQUESTS} requests, after ${PRIME_SECONDS} s of priming per row; ${ROUNDS} rounds per cell, median counts; ` +
        `responders in separate processes`,
    );
    console.log("");

    const natsPid = natsServerPid();
    const clocksOf = (row: Row) => [requesterCpu, procCpu(row.responder.pid), procCpu(natsPid)];
    // Every row's first cell would otherwise also pay for JIT and first allocations on both sides.
    for (const row of rows) await runCell(row.call, 16, clocksOf(row), 0, PRIME_SECONDS);

    /** Every round's cell, per row and N. */
    const rounds = new Map<string, CellResult[]>();
    for (const n of IN_FLIGHT) {
      for (let round = 0; round < ROUNDS; round++) {
        for (const row of round % 2 === 0 ? rows : [...rows].reverse()) {
          const r = await runCell(row.call, n, clocksOf(row));
          const key = `${row.label}|${n}`;
          rounds.set(key, [...(rounds.get(key) ?? []), r]);
          process.stderr.write(
            `  ${row.label.padEnd(52)} N=${String(n).padEnd(4)} round ${round + 1}/${ROUNDS} ${Math.round(r.rate)} req/s${r.errors ? `, ${r.errors} errors` : ""}\n`,
          );
          if (r.errors >= MAX_ERRORS)
            throw new Error(`${row.label} at N=${n}: ${r.errors} failed requests, first: ${r.firstError}`);
        }
      }
    }
    // The round with the median rate stands for the cell (its CPU and latencies too).
    const results = new Map<string, CellResult>();
    for (const [key, cells] of rounds) results.set(key, [...cells].sort((a, b) => a.rate - b.rate)[cells.length >> 1]);

    const w = Math.max(...rows.map((r) => r.label.length));
    const fmtRate = (x: number) =>
      x >= 10_000 ? `${(x / 1000).toFixed(1)}k` : x >= 1000 ? `${(x / 1000).toFixed(2)}k` : x.toFixed(0);
    console.log(`${"row".padEnd(w)}  ${IN_FLIGHT.map((n) => `N=${n}`.padStart(16)).join("")}`);
    for (const row of rows) {
      const cells = IN_FLIGHT.map((n) => {
        const r = results.get(`${row.label}|${n}`)!;
        const base = results.get(`${rows[0].label}|${n}`)!;
        const mark = (r.errors ? "!" : "") + (r.capped ? "^" : "");
        return `${fmtRate(r.rate)}/s ${(r.rate / base.rate).toFixed(2)}×${mark}`.padStart(16);
      });
      console.log(`${row.label.padEnd(w)}  ${cells.join("")}`);
    }
    console.log(
      `${"".padEnd(w)}  (req/s and ratio to row 1 at the same N; ! = some requests failed, ^ = request cap reached)`,
    );
    console.log("");
    console.log("CPU in the measured window, % of one core: requester / responder / nats-server");
    const pct = (x: number | null) => (x === null ? "?" : String(Math.round(x * 100)));
    for (const row of rows) {
      const cells = IN_FLIGHT.map((n) => results.get(`${row.label}|${n}`)!.cpu.map(pct).join("/").padStart(16));
      console.log(`${row.label.padEnd(w)}  ${cells.join("")}`);
    }
    console.log("");
    console.log("CPU per completed request, µs: requester / responder / nats-server");
    const perReq = (x: number | null, rate: number) => (x === null || rate <= 0 ? "?" : ((x / rate) * 1e6).toFixed(1));
    for (const row of rows) {
      const cells = IN_FLIGHT.map((n) => {
        const r = results.get(`${row.label}|${n}`)!;
        return r.cpu
          .map((x) => perReq(x, r.rate))
          .join("/")
          .padStart(16);
      });
      console.log(`${row.label.padEnd(w)}  ${cells.join("")}`);
    }
    console.log("");
    console.log("latency at N=1 (ms)");
    const p50 = new Map<Row, number>();
    for (const row of rows) {
      const r = results.get(`${row.label}|1`)!;
      const sorted = Float64Array.from(r.latencies ?? []).sort();
      p50.set(row, percentile(sorted, 50));
      console.log(
        `${row.label.padEnd(w)}  p50 ${percentile(sorted, 50).toFixed(3)}  p99 ${percentile(sorted, 99).toFixed(3)}  (${sorted.length} samples)`,
      );
    }
    console.log("");
    // The issue's targets: rate ≥ 1.0× Moleculer's at 16 and 128 in flight, p50 at 1 within 1.2× of Moleculer's.
    const [meshRow, molRow] = [rows[2], rows[4]];
    for (const n of IN_FLIGHT) {
      const a = results.get(`${meshRow.label}|${n}`)!.rate;
      const b = results.get(`${molRow.label}|${n}`)!.rate;
      const own = rounds
        .get(`${meshRow.label}|${n}`)!
        .map((c, i) => c.rate / rounds.get(`${molRow.label}|${n}`)![i].rate);
      console.log(
        `MeshClient/Moleculer  N=${String(n).padEnd(4)} ${(a / b).toFixed(2)}× req/s (${fmtRate(a)}/s vs ${fmtRate(b)}/s; ` +
          `medians of ${ROUNDS} rounds; each round's own ratio ${own.map((x) => x.toFixed(2)).join(" ")})`,
      );
    }
    const pm = p50.get(meshRow)!;
    const pl = p50.get(molRow)!;
    console.log(
      `MeshClient/Moleculer  N=1    p50 ${pm.toFixed(3)} ms vs ${pl.toFixed(3)} ms: MeshClient's is ${(pm / pl).toFixed(2)}× Moleculer's`,
    );
    const failed = [...results.entries()].filter(([, r]) => r.errors > 0);
    for (const [k, r] of failed)
      console.log(`warning: ${k.replace("|", " at N=")}: ${r.errors} failed requests, first: ${r.firstError}`);
  } finally {
    await moleculer?.stop().catch(() => undefined);
    await Promise.allSettled(conns.map((nc) => nc.close()));
    await stopResponders();
  }
}

/** Headers of a protobuf request; only the check uses them, to learn the protobuf reply's size. */
function protoHeaders() {
  const h = makeHeaders();
  h.set("Content-Type", CONTENT_TYPE_PROTOBUF);
  return h;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`request-reply bench failed: ${(err as Error)?.stack ?? err}`);
    process.exit(1);
  },
);
