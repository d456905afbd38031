import type { StatsBucket, StatsReply, StatsRequest, StatsSeries } from "@machina/protos";
import { MachinaError } from "@machina/wire";
import { SampleStore, utcDay } from "./sample-store";
import { REDUCERS, defaultReducer } from "./series-names";
import type { Reducer } from "./series-names";

/** Most buckets one series may have in a reply. */
export const MAX_BUCKETS = 5000;
/** Most series one request may return. */
export const MAX_SERIES = 200;
const HOUR_MS = 3_600_000;
// Series read from data at once.
const READ_LANES = 4;

function bad(field: string, message: string, details: Record<string, unknown> = {}): MachinaError {
  return new MachinaError("BAD_REQUEST", `${field}: ${message}`, {
    retryable: false,
    details: { field, ...details },
  });
}

/** A checked stats request. */
interface StatsPlan {
  from: number;
  to: number;
  step: number;
  reducer: Reducer | "";
}

function plan(req: StatsRequest, defaultStepMs: number, now: number): StatsPlan {
  const to = req.to > 0 ? req.to : now;
  const from = req.from > 0 ? req.from : to - HOUR_MS;
  if (req.from < 0 || req.to < 0) throw bad(req.from < 0 ? "from" : "to", "expected epoch milliseconds (0: default)");
  if (to <= from) throw bad("to", `${to} is not after from ${from}; the range is [from, to)`, { from, to });
  const step = req.stepMs > 0 ? req.stepMs : defaultStepMs;
  if (req.stepMs < 0) throw bad("stepMs", `expected a positive bucket length in ms, got ${req.stepMs}`);
  const first = Math.floor(from / step) * step;
  const buckets = Math.ceil((to - first) / step);
  if (buckets > MAX_BUCKETS) {
    throw bad(
      "stepMs",
      `${buckets} buckets of ${step} ms over [${from}, ${to}); at most ${MAX_BUCKETS} per series: use a step of at least ${Math.ceil((to - first) / MAX_BUCKETS)} ms or a shorter range`,
      { buckets, max: MAX_BUCKETS },
    );
  }
  const reducer = req.reducer ?? "";
  if (reducer !== "" && !(REDUCERS as readonly string[]).includes(reducer)) {
    throw bad("reducer", `unknown reducer "${reducer}"; use one of ${REDUCERS.join(", ")}, or "" for each series' own`);
  }
  return { from: first, to, step, reducer: reducer as Reducer | "" };
}

/** Answers vertex.stats: the named series (and those under a prefix) bucketed over the range. */
export async function queryStats(
  store: SampleStore,
  req: StatsRequest,
  defaultStepMs: number,
  now = Date.now(),
): Promise<StatsReply> {
  const p = plan(req, defaultStepMs, now);
  if (req.series.length === 0 && !req.prefix) {
    throw bad("series", 'name series, or a prefix (e.g. {"prefix":"endpoint.vertex."}); "" lists nothing');
  }
  const names = new Set(req.series.filter((s) => s !== ""));
  if (req.prefix) {
    const first = utcDay(p.from);
    const last = utcDay(p.to - 1);
    for (const sd of await store.seriesDays()) {
      if (sd.series.startsWith(req.prefix) && sd.day >= first && sd.day <= last) names.add(sd.series);
    }
  }
  const sorted = [...names].sort();
  if (sorted.length > MAX_SERIES) {
    throw bad("prefix", `${sorted.length} series match; at most ${MAX_SERIES} per request, narrow the prefix`, {
      matched: sorted.length,
      max: MAX_SERIES,
    });
  }
  const series: StatsSeries[] = new Array(sorted.length);
  let next = 0;
  const lane = async () => {
    while (next < sorted.length) {
      const i = next++;
      const name = sorted[i];
      const reducer = p.reducer || defaultReducer(name);
      const { times, values } = await store.read(name, p.from, p.to);
      series[i] = { name, reducer, buckets: bucketize(times, values, p, reducer) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_LANES, sorted.length) }, lane));
  return { from: p.from, to: p.to, stepMs: p.step, series };
}

/** Folds points into aligned buckets; a null point (NaN) is no sample. */
export function bucketize(
  times: Float64Array,
  values: Float64Array,
  p: { from: number; to: number; step: number },
  reducer: Reducer,
): StatsBucket[] {
  const count = Math.ceil((p.to - p.from) / p.step);
  const acc = new Float64Array(count);
  const n = new Int32Array(count);
  for (let i = 0; i < times.length; i++) {
    const v = values[i];
    if (Number.isNaN(v)) continue;
    const b = Math.floor((times[i] - p.from) / p.step);
    if (b < 0 || b >= count) continue;
    if (n[b] === 0) acc[b] = v;
    else if (reducer === "sum" || reducer === "mean") acc[b] += v;
    else if (reducer === "max") acc[b] = Math.max(acc[b], v);
    else if (reducer === "min") acc[b] = Math.min(acc[b], v);
    else acc[b] = v; // last: points come oldest first
    n[b]++;
  }
  const out: StatsBucket[] = [];
  for (let b = 0; b < count; b++) {
    const t = p.from + b * p.step;
    if (n[b] === 0) out.push({ t, n: 0 });
    else out.push({ t, value: reducer === "mean" ? acc[b] / n[b] : acc[b], n: n[b] });
  }
  return out;
}
