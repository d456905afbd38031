// Scaling advice: each sampler tick, every service's worst p99 handler time and the lag of its
// consumers are compared with a target, and a replica count is recommended the way Kubernetes'
// HPA computes one: ceil(replicas × measured / target), held for a while before it goes down.
//
// The p99 target is the service's own calm-period p99 × a multiplier (the source notes'
// "waitMultiplier"), unless one is configured. A calm sample is one with little lag whose p99 is
// within target: an overload never becomes the baseline it is measured against.
import type { NodeInfo, ScaleAdvice } from "@machina/protos";
import type { MeshNames } from "@machina/subjects";
import type { Sample } from "../monitoring/index";

/** Settings of the rule (vertex.scaling.*). */
export interface ScaleRule {
  /** Calm p99 × this is the target. */
  multiplier: number;
  /** A fixed p99 target, ms; 0 uses the baseline. */
  targetP99Ms: number;
  /** The target is never below this, ms: a sub-millisecond baseline would make noise look like overload. */
  minTargetMs: number;
  /** Pending messages one replica is expected to absorb. */
  lagPerReplica: number;
  /** Samples the baseline is taken from (the newest calm ones), and how many it needs first. */
  baselineSamples: number;
  minCalmSamples: number;
  /** Samples a higher recommendation is held before a lower one replaces it. */
  stabilizationSamples: number;
  maxReplicas: number;
}

// Within this of 1 the ratio changes nothing (HPA's default tolerance), so noise does not flap.
const TOLERANCE = 0.1;
// The baseline is a low percentile of the calm p99s: a few slow samples do not move it.
const BASELINE_QUANTILE = 0.25;
// A fetch source using this much of a quota window is bound by its quota: more replicas wait too.
const QUOTA_BOUND = 0.9;

interface ServiceState {
  calm: number[];
  recent: number[];
}

/** Keeps each service's baseline and recent recommendations, and advises from each tick's samples. */
export class ScaleAdvisor {
  private readonly states = new Map<string, ServiceState>();
  private advice: ScaleAdvice[] = [];
  private at = 0;
  private readonly streamService: Map<string, string>;

  constructor(
    private readonly rule: ScaleRule,
    names: MeshNames,
  ) {
    // Which service consumes each pipeline stream: its lag is that service's to absorb.
    this.streamService = new Map([
      [names.streams.FETCH, "fetch"],
      [names.streams.FETCHED, "invoke"],
      [names.streams.AGGREGATE, "aggregate"],
      [names.streams.STORE, "data"],
    ]);
  }

  /** The advice of the latest tick, by service name. */
  latest(): { at: number; services: ScaleAdvice[] } {
    return { at: this.at, services: this.advice };
  }

  /** Advises from one tick's samples and the live instances. */
  observe(t: number, samples: readonly Sample[], nodes: readonly NodeInfo[]): ScaleAdvice[] {
    const replicas = new Map<string, number>();
    for (const n of nodes) replicas.set(n.service, (replicas.get(n.service) ?? 0) + 1);
    const p99 = new Map<string, number>();
    const lag = new Map<string, number>();
    const quotaBound = new Set<string>();
    for (const s of samples) {
      const m = /^quota\.([^.]+)\.\d+\.percent$/.exec(s.series);
      if (m && s.value >= QUOTA_BOUND) quotaBound.add(m[1]);
    }
    for (const s of samples) {
      const parts = s.series.split(".");
      if ((parts[0] === "endpoint" || parts[0] === "worker") && parts.at(-1) === "p99_ms") {
        p99.set(parts[1], Math.max(p99.get(parts[1]) ?? 0, s.value));
      } else if (parts[0] === "consumer" && parts.at(-1) === "pending") {
        const service = this.streamService.get(parts[1]);
        const durable = parts.slice(2, -1).join(".");
        if (service === undefined) continue;
        if (service === "fetch" && quotaBound.has(durable.replace(/^fetch-/, ""))) continue;
        lag.set(service, (lag.get(service) ?? 0) + s.value);
      }
    }
    const out: ScaleAdvice[] = [];
    for (const [service, count] of [...replicas].sort(([a], [b]) => a.localeCompare(b))) {
      out.push(this.advise(service, count, p99.get(service) ?? 0, lag.get(service) ?? 0));
    }
    this.advice = out;
    this.at = t;
    return out;
  }

  private advise(service: string, replicas: number, p99: number, lag: number): ScaleAdvice {
    const r = this.rule;
    let st = this.states.get(service);
    if (st === undefined) this.states.set(service, (st = { calm: [], recent: [] }));
    const baseline = st.calm.length >= r.minCalmSamples ? quantile(st.calm, BASELINE_QUANTILE) : 0;
    const target =
      r.targetP99Ms > 0 ? r.targetP99Ms : baseline > 0 ? Math.max(r.minTargetMs, baseline * r.multiplier) : 0;
    const targetLag = r.lagPerReplica;
    const p99Ratio = target > 0 && p99 > 0 ? p99 / target : 0;
    const lagRatio = targetLag > 0 ? lag / (targetLag * replicas) : 0;
    const ratio = Math.max(p99Ratio, lagRatio);
    const calmSoFar = st.calm.length;
    // Only calm samples teach the baseline: little lag, and not over the target it would set.
    if (p99 > 0 && lagRatio <= TOLERANCE && (target === 0 || p99 <= target)) {
      st.calm.push(p99);
      if (st.calm.length > r.baselineSamples) st.calm.shift();
    }
    const learning = target === 0 && p99 > 0;
    let desired: number;
    // While the baseline is being learned the handler time says nothing yet: keep what runs.
    if (learning && lagRatio <= 1 + TOLERANCE) desired = replicas;
    // Nothing measured at all: no calls and no lag, so one replica is enough.
    else if (ratio === 0) desired = 1;
    else if (Math.abs(ratio - 1) <= TOLERANCE) desired = replicas;
    else desired = Math.ceil(replicas * ratio);
    const clamped = Math.min(r.maxReplicas, Math.max(1, desired));
    st.recent.push(clamped);
    if (st.recent.length > r.stabilizationSamples) st.recent.shift();
    // Up at once, down only once every recent recommendation is lower (HPA's stabilization).
    const recommended = Math.max(...st.recent);
    return {
      service,
      replicas,
      recommended,
      p99Ms: p99,
      baselineP99Ms: baseline,
      targetP99Ms: target,
      lag,
      targetLag,
      ratio,
      reason: reason({ p99, target, baseline, lag, targetLag, replicas, ratio, recommended, calm: calmSoFar }, r),
    };
  }
}

function reason(
  x: {
    p99: number;
    target: number;
    baseline: number;
    lag: number;
    targetLag: number;
    replicas: number;
    ratio: number;
    recommended: number;
    calm: number;
  },
  r: ScaleRule,
): string {
  const ms = (v: number) => `${v.toFixed(v < 10 ? 2 : 1)} ms`;
  const parts: string[] = [];
  if (x.target > 0 && x.p99 > 0)
    parts.push(
      `p99 ${ms(x.p99)} against target ${ms(x.target)}` +
        (r.targetP99Ms > 0 ? " (configured)" : ` (calm p99 ${ms(x.baseline)} × ${r.multiplier})`),
    );
  else if (x.target === 0 && x.p99 > 0) parts.push(`learning the calm p99 (${x.calm} of ${r.minCalmSamples} samples)`);
  if (x.lag > 0) parts.push(`lag ${x.lag} against ${x.targetLag} per replica × ${x.replicas}`);
  if (parts.length === 0) parts.push("idle");
  const verdict = x.recommended > x.replicas ? "scale out" : x.recommended < x.replicas ? "scale in" : "keep";
  return `${verdict}: ${parts.join("; ")}`;
}

function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
