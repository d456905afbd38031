// The scaling rule on its own: a calm baseline learned from samples, scale-out on p99 over
// baseline × multiplier and on lag per replica, quota-bound fetch lag ignored, scale-in held for
// the stabilization window, a configured target, and the clamp to maxReplicas.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeInfo } from "@machina/protos";
import { meshNames } from "@machina/subjects";
import { ScaleAdvisor, seriesName } from "@machina/vertex";
import type { Sample, ScaleRule } from "@machina/vertex";

const names = meshNames("sc");
const RULE: ScaleRule = {
  multiplier: 3,
  targetP99Ms: 0,
  minTargetMs: 10,
  lagPerReplica: 1000,
  baselineSamples: 100,
  minCalmSamples: 3,
  stabilizationSamples: 4,
  maxReplicas: 10,
};

const nodes = (service: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ service, id: `${service}-${i}` }) as NodeInfo);
const p99 = (service: string, ms: number): Sample => ({
  series: seriesName.endpoint(service, "get", "p99_ms"),
  t: 0,
  value: ms,
});
const pending = (stream: string, durable: string, n: number): Sample => ({
  series: seriesName.consumer(stream, durable, "pending"),
  t: 0,
  value: n,
});

function advise(a: ScaleAdvisor, samples: Sample[], live: NodeInfo[], service: string) {
  const advice = a.observe(Date.now(), samples, live).find((x) => x.service === service);
  assert.ok(advice, `advice for ${service}`);
  return advice;
}

describe("scale advisor", () => {
  it("keeps what runs while it learns, then scales out when p99 passes calm × multiplier", () => {
    const a = new ScaleAdvisor(RULE, names);
    const live = nodes("compute", 2);
    for (let i = 0; i < 3; i++) {
      const x = advise(a, [p99("compute", 5)], live, "compute");
      assert.equal(x.recommended, 2);
      assert.equal(x.targetP99Ms, 0);
      assert.match(x.reason, /learning the calm p99/);
    }
    const calm = advise(a, [p99("compute", 5)], live, "compute");
    assert.equal(calm.baselineP99Ms, 5);
    assert.equal(calm.targetP99Ms, 15);
    assert.equal(calm.recommended, 2);
    const slow = advise(a, [p99("compute", 45)], live, "compute");
    // 45 / 15 = 3× the target: ceil(2 × 3) = 6.
    assert.equal(slow.ratio, 3);
    assert.equal(slow.recommended, 6);
    assert.match(slow.reason, /^scale out: p99 45\.0 ms against target 15\.0 ms \(calm p99 5\.00 ms × 3\)/);
    // The overload did not become the baseline.
    assert.equal(advise(a, [p99("compute", 45)], live, "compute").baselineP99Ms, 5);
  });

  it("holds a higher recommendation for the stabilization window before scaling in", () => {
    const a = new ScaleAdvisor({ ...RULE, targetP99Ms: 10 }, names);
    const live = nodes("compute", 2);
    assert.equal(advise(a, [p99("compute", 40)], live, "compute").recommended, 8);
    const after = [1, 2, 3, 4].map(() => advise(a, [p99("compute", 2)], live, "compute").recommended);
    // Three more samples still see the 8; the fourth pushes it out of the window of 4.
    assert.deepEqual(after, [8, 8, 8, 1]);
  });

  it("scales pipeline consumers on lag per replica, ignoring fetch sources bound by their quota", () => {
    const a = new ScaleAdvisor(RULE, names);
    const live = [...nodes("fetch", 2), ...nodes("data", 1)];
    const samples: Sample[] = [
      pending(names.streams.FETCH, "fetch-fast", 5000),
      pending(names.streams.FETCH, "fetch-capped", 90_000),
      { series: seriesName.quota("capped", 1000, "percent"), t: 0, value: 1 },
      { series: seriesName.quota("fast", 1000, "percent"), t: 0, value: 0.2 },
      pending(names.streams.STORE, "data-dump", 1500),
    ];
    const fetch = advise(a, samples, live, "fetch");
    assert.equal(fetch.lag, 5000);
    assert.equal(fetch.recommended, 5); // ceil(2 × 5000 / (1000 × 2))
    assert.match(fetch.reason, /lag 5000 against 1000 per replica × 2/);
    assert.equal(advise(a, samples, live, "data").recommended, 2);
  });

  it("never recommends more than maxReplicas, nor fewer than one", () => {
    const a = new ScaleAdvisor({ ...RULE, targetP99Ms: 10, maxReplicas: 4 }, names);
    assert.equal(advise(a, [p99("compute", 1000)], nodes("compute", 3), "compute").recommended, 4);
    const idle = new ScaleAdvisor(RULE, names);
    const x = advise(idle, [], nodes("vertex", 1), "vertex");
    assert.equal(x.recommended, 1);
    assert.match(x.reason, /^keep: idle/);
  });
});
