import { MachinaError } from "@machina/wire";
import { defineEndpoint } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import { DeadLetterOps } from "./dead-letter-ops";
import { DeadLetterStore } from "./dead-letter-store";
import { NodeRegistry } from "./node-registry";

const ROLES: ReadonlySet<string> = new Set(["processor", "scheduler"]);

/** Vertex settings. */
export interface VertexConfig {
  vertex: { nodeTtlMs: number };
}

/** The vertex service: the live registry of every service instance, and the dead-letter desk. */
export const vertexService: ServiceSpec<VertexConfig> = {
  name: "vertex",
  version: "0.1.0",
  description: "Node registry, monitoring and dead-letter operations of the mesh",
  httpPort: 9306,
  schema: {
    vertex: {
      nodeTtlMs: {
        doc: "A node missing heartbeats for this long leaves the registry (services beat every 5 s).",
        format: "nat",
        default: 20_000,
      },
    },
  },
  async setup(ctx: ServiceContext<VertexConfig>) {
    const { names } = ctx;
    const registry = await NodeRegistry.open(
      ctx.kvm,
      names.buckets.nodes,
      ctx.config.vertex.nodeTtlMs,
      ctx.config.nats.replicas,
    );
    await registry.upsert(ctx.node);
    const dlq = new DeadLetterOps(new DeadLetterStore(ctx.js, ctx.jsm, names), ctx.js, names, ctx.node.id);
    return {
      endpoints: [
        defineEndpoint({
          name: "connect",
          subject: names.any.vertexConnect,
          request: "NodeInfo",
          reply: "Ack",
          description: "A service instance announces itself (on start, then as heartbeat)",
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
            return { ok: true, id };
          },
        }),
        defineEndpoint({
          name: "nodes",
          subject: names.vertex.nodes,
          request: "Empty",
          reply: "NodeList",
          description: "Service instances alive now, with their machine facts",
          async handler() {
            return { nodes: await registry.list() };
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
    };
  },
};
