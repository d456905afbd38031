import { Gauge } from "prom-client";
import type { ServiceMetrics } from "@machina/runtime";
import type { ScaleAdvisor } from "./scale-advisor";

/**
 * The advice as metrics, for an HPA (through a Prometheus adapter) or a KEDA prometheus trigger
 * to act on: the recommended replicas and the ratio behind it, per service.
 */
export function scaleGauges(metrics: ServiceMetrics, advisor: ScaleAdvisor): void {
  new Gauge({
    name: "machina_vertex_recommended_replicas",
    help: "Replicas vertex recommends for a service (vertex.scale), from its p99 handler time and consumer lag.",
    labelNames: ["scaled_service"],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const a of advisor.latest().services) this.set({ scaled_service: a.service }, a.recommended);
    },
  });
  new Gauge({
    name: "machina_vertex_scale_ratio",
    help: "Measured over target for a service: the larger of p99 / target and lag / (lag per replica × replicas); above 1 wants more replicas.",
    labelNames: ["scaled_service"],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const a of advisor.latest().services) this.set({ scaled_service: a.service }, a.ratio);
    },
  });
}
