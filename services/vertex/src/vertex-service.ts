import { MachinaError } from "@machina/wire";
import { defineEndpoint } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import { DeadLetterOps } from "./dead-letter-ops";
import { DeadLetterStore } from "./dead-letter-store";
import {
  EndpointStatsCollector,
  HandlerTimesCollector,
  NodeGaugesCollector,
  QuotaUseCollector,
  Retention,
  SampleStore,
  Sampler,
  StreamGaugesCollector,
  queryStats,
} from "./monitoring/index";
import { NodeRegistry } from "./node-registry";
import { configEndpoints, openServedChain } from "./config/index";
import { openDashboard } from "./dashboard-host";
import { ScaleAdvisor, scaleGauges } from "./scaling/index";
import type { ScaleRule } from "./scaling/index";

const ROLES: ReadonlySet<string> = new Set(["processor", "scheduler"]);

/** Vertex settings. */
export interface VertexConfig {
  vertex: {
    heartbeatMs: number;
    missedHeartbeats: number;
    monitoring: { intervalMs: number; type: string; retentionMs: number; retentionEveryMs: number };
    scaling: ScaleRule;
    dashboard: { port: number; host: string; intervalMs: number };
  };
}

/** The vertex service: the live registry of every service instance, monitoring history, and the dead-letter desk. */
export const vertexService: ServiceSpec<VertexConfig> = {
  name: "vertex",
  version: "0.1.0",
  description: "Node registry, monitoring and dead-letter operations of the mesh",
  httpPort: 9306,
  schema: {
    vertex: {
      heartbeatMs: {
        doc: "How often every instance sends its heartbeat, ms (vertex tells instances in its connect reply).",
        format: "nat",
        default: 5000,
      },
      missedHeartbeats: {
        doc: "Heartbeats an instance may miss in a row before it leaves vertex.nodes (its registry entry expires).",
        format: "nat",
        default: 3,
      },
      scaling: {
        multiplier: {
          doc: "A service's p99 target is its calm-period p99 × this (the source notes' waitMultiplier).",
          format: Number,
          default: 3,
        },
        targetP99Ms: {
          doc: "A fixed p99 handler-time target for every service, ms; 0 learns each one's calm p99 instead.",
          format: Number,
          default: 0,
        },
        minTargetMs: {
          doc: "The learned target is never below this, ms (sub-millisecond baselines would turn noise into advice).",
          format: Number,
          default: 10,
        },
        lagPerReplica: {
          doc: "Pending messages one replica of a pipeline consumer is expected to absorb; more per replica wants more replicas.",
          format: "nat",
          default: 1000,
        },
        baselineSamples: {
          doc: "Calm samples the baseline is taken from (the newest ones; their 25th percentile).",
          format: "nat",
          default: 720,
        },
        minCalmSamples: {
          doc: "Calm samples needed before handler time counts (until then the advice keeps what runs).",
          format: "nat",
          default: 6,
        },
        stabilizationSamples: {
          doc: "Samples a higher recommendation is held before a lower one replaces it (scale-in waits, scale-out does not).",
          format: "nat",
          default: 60,
        },
        maxReplicas: { doc: "The most replicas ever recommended for a service.", format: "nat", default: 10 },
      },
      dashboard: {
        port: {
          doc: "Port of the live dashboard page (0 picks a free one); when it is taken vertex runs without the page and says so.",
          format: "port",
          default: 9316,
        },
        host: {
          doc: "Address the dashboard binds; 127.0.0.1 by default, since the page shows the mesh's topology.",
          format: String,
          default: "127.0.0.1",
        },
        intervalMs: { doc: "How often open pages get a new snapshot, ms.", format: "nat", default: 2000 },
      },
      monitoring: {
        intervalMs: {
          doc: "How often vertex samples the mesh for vertex.stats, ms; 0 samples nothing (vertex.stats then reads what is stored).",
          format: "nat",
          default: 5000,
        },
        type: {
          doc: "Data-layer entity type holding the samples (key [series, utc_day], a double value; see config/default/data/types/vertex_sample.yaml).",
          format: String,
          default: "vertex_sample",
        },
        retentionMs: {
          doc: "Samples are kept at least this long, then deleted by whole UTC days; keep it below data's clean.lookbackDays (data deletes only within it).",
          format: "nat",
          default: 3 * 86_400_000,
        },
        retentionEveryMs: {
          doc: "How often vertex deletes samples past the retention, ms; 0 never.",
          format: "nat",
          default: 3_600_000,
        },
      },
    },
  },
  async setup(ctx: ServiceContext<VertexConfig>) {
    const { names } = ctx;
    const cfg = ctx.config.vertex;
    if (cfg.heartbeatMs < 100) {
      throw new MachinaError("BAD_REQUEST", `vertex.heartbeatMs: ${cfg.heartbeatMs} ms is too short; at least 100`, {
        details: { field: "vertex.heartbeatMs" },
      });
    }
    const registry = await NodeRegistry.open(ctx.kvm, ctx.jsm, names.buckets.nodes, {
      ttlMs: cfg.heartbeatMs * Math.max(1, cfg.missedHeartbeats),
      replicas: ctx.config.nats.replicas,
      log: ctx.log,
    });
    await registry.upsert(ctx.node);
    const dlq = new DeadLetterOps(new DeadLetterStore(ctx.js, ctx.jsm, names), ctx.js, names, ctx.node.id);
    const mon = cfg.monitoring;
    const advisor = new ScaleAdvisor(cfg.scaling, names);
    scaleGauges(ctx.metrics, advisor);
    const store = new SampleStore(ctx.client, names, mon.type);
    const nodes = () => registry.list();
    const sampler = new Sampler(
      store,
      [
        new EndpointStatsCollector(ctx.nc, names.prefix),
        new HandlerTimesCollector(nodes),
        new StreamGaugesCollector(ctx.jsm, names),
        new NodeGaugesCollector(nodes),
        new QuotaUseCollector(ctx.client, names),
      ],
      new Retention(store, mon.retentionMs),
      {
        intervalMs: mon.intervalMs,
        retentionEveryMs: mon.retentionEveryMs,
        log: ctx.log,
        onSamples: (t, samples) => advisor.observe(t, samples, registry.list()),
      },
    );
    if (mon.intervalMs > 0) sampler.start();
    const dashboard = await openDashboard(ctx, cfg.dashboard);
    // Vertex serves the config chain; each service's part of a patch is checked by that service.
    const chain = await openServedChain({ ...ctx, replicas: ctx.config.nats.replicas });
    return {
      endpoints: [
        ...configEndpoints({ chain, names }),
        defineEndpoint({
          name: "connect",
          subject: names.any.vertexConnect,
          request: "NodeInfo",
          reply: "ConnectReply",
          description:
            "A service instance announces itself (on start, then as heartbeat); the reply says how often to beat",
          async handler(info, { subject }) {
            const [role] = names.tail(subject, 1);
            if (!ROLES.has(role)) {
              throw new MachinaError(
                "NOT_FOUND",
                `unknown role "${role}" in ${subject}; known roles: processor, scheduler`,
                {
                  retryable: false,
                  details: { role, known: [...ROLES] },
                },
              );
            }
            const id = await registry.upsert({ ...info, role });
            return { ok: true, id, heartbeatMs: cfg.heartbeatMs };
          },
        }),
        defineEndpoint({
          name: "nodes",
          subject: names.vertex.nodes,
          request: "Empty",
          reply: "NodeList",
          description: "Service instances alive now, with their machine facts",
          async handler() {
            return { nodes: registry.list() };
          },
        }),
        defineEndpoint({
          name: "stats",
          subject: names.vertex.stats,
          request: "StatsRequest",
          reply: "StatsReply",
          description:
            "Monitoring history: series (names and/or a prefix) over [from, to) in buckets of stepMs; UNAVAILABLE while data is down",
          handler: (req) => queryStats(store, req, mon.intervalMs > 0 ? mon.intervalMs : 5000),
        }),
        defineEndpoint({
          name: "scale",
          subject: names.vertex.scale,
          request: "Empty",
          reply: "ScaleReply",
          description:
            "Recommended replicas per service from its p99 handler time and consumer lag against its target (see README, Scaling advice)",
          async handler() {
            return advisor.latest();
          },
        }),
        defineEndpoint({
          name: "dlq-list",
          subject: names.vertex.dlq.list,
          request: "DeadLetterListRequest",
          reply: "DeadLetterListReply",
          description:
            "Dead letters counted by error code and original subject, oldest first; optional filter and limit",
          handler: (req) => dlq.list(req),
        }),
        defineEndpoint({
          name: "dlq-show",
          subject: names.vertex.dlq.show,
          request: "DeadLetterShowRequest",
          reply: "DeadLetterShowReply",
          description: "One dead letter by DLQ sequence, with its error and decoded payload",
          handler: (req) => dlq.show(req.seq),
        }),
        defineEndpoint({
          name: "dlq-replay",
          subject: names.vertex.dlq.replay,
          request: "DeadLetterFilter",
          reply: "DeadLetterReplayReply",
          description: "Republish matching dead letters to their original subjects, then delete them",
          handler: (req) => dlq.replay(req),
        }),
        defineEndpoint({
          name: "dlq-purge",
          subject: names.vertex.dlq.purge,
          request: "DeadLetterFilter",
          reply: "DeadLetterPurgeReply",
          description: "Delete matching dead letters (all when no filter is given)",
          handler: (req) => dlq.purge(req),
        }),
      ],
      async onStop() {
        await sampler.stop();
        await dashboard?.close();
        registry.stop();
      },
    };
  },
};
