import { defineEndpoint } from "@machina/runtime";
import type { ServiceContext, ServiceSpec } from "@machina/runtime";
import { NodeRegistry } from "./node-registry";

/** Vertex settings. */
export interface VertexConfig {
  vertex: { nodeTtlMs: number };
}

/** The vertex service: the live registry of every service instance in the mesh. */
export const vertexService: ServiceSpec<VertexConfig> = {
  name: "vertex",
  version: "0.1.0",
  description: "Node registry and monitoring of the mesh",
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
    const registry = await NodeRegistry.open(ctx.kvm, names.buckets.nodes, ctx.config.vertex.nodeTtlMs, ctx.config.nats.replicas);
    await registry.upsert(ctx.node);
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
      ],
    };
  },
};
