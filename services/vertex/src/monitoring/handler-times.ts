import type { HandlerTimes, NodeInfo } from "@machina/protos";
import type { Collector } from "./collector";
import { addHistograms, histogramDelta, quantile } from "./histogram-percentiles";
import type { HistogramDelta } from "./histogram-percentiles";
import { seriesName } from "./series-names";
import type { Sample } from "./series-names";

/**
 * p50 and p99 handler time per (service, endpoint) and (service, worker), and worker message
 * counts, from the handler-time histograms each instance sends with its heartbeat: the change
 * since the previous tick, summed over the service's replicas. An interval without calls
 * writes no percentile (there is none).
 */
export class HandlerTimesCollector implements Collector {
  readonly name = "handler times";
  private readonly previous = new Map<string, HandlerTimes>();

  constructor(private readonly nodes: () => NodeInfo[]) {}

  async collect(t: number): Promise<Sample[]> {
    const sums = new Map<string, { service: string; h: HandlerTimes; delta: HistogramDelta | undefined }>();
    const seen = new Set<string>();
    for (const n of this.nodes()) {
      for (const h of n.handlerTimes) {
        const id = `${n.service}\u0000${n.id}\u0000${h.kind}\u0000${h.name}`;
        seen.add(id);
        const delta = histogramDelta(h, this.previous.get(id));
        this.previous.set(id, h);
        const key = `${n.service}\u0000${h.kind}\u0000${h.name}`;
        const had = sums.get(key);
        if (had === undefined) sums.set(key, { service: n.service, h, delta });
        else had.delta = had.delta === undefined ? undefined : addHistograms(had.delta, delta);
      }
    }
    for (const id of this.previous.keys()) if (!seen.has(id)) this.previous.delete(id);
    const out: Sample[] = [];
    for (const { service, h, delta } of sums.values()) {
      if (delta === undefined) continue; // replicas with different buckets (mixed versions): no honest sum
      const calls = delta.counts[delta.counts.length - 1] ?? 0;
      if (h.kind === "worker") out.push({ series: seriesName.worker(service, h.name, "messages"), t, value: calls });
      if (calls === 0) continue;
      const p50 = quantile(delta, 0.5) * 1000;
      const p99 = quantile(delta, 0.99) * 1000;
      if (h.kind === "worker") {
        out.push({ series: seriesName.worker(service, h.name, "p50_ms"), t, value: p50 });
        out.push({ series: seriesName.worker(service, h.name, "p99_ms"), t, value: p99 });
      } else {
        out.push({ series: seriesName.endpoint(service, h.name, "p50_ms"), t, value: p50 });
        out.push({ series: seriesName.endpoint(service, h.name, "p99_ms"), t, value: p99 });
      }
    }
    return out;
  }
}
