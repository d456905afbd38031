import type { KV } from "@nats-io/kv";
import type { Kvm } from "@nats-io/kv";
import type { NodeInfo } from "@machina/protos";
import { codec } from "@machina/protos";
import { MachinaError } from "@machina/wire";

/** Live registry of service instances in a KV bucket whose entries expire without heartbeats. */
export class NodeRegistry {
  private constructor(private readonly kv: KV) {}

  /** Opens (creating if needed) the registry bucket; entries live `ttlMs` after the last heartbeat. */
  static async open(kvm: Kvm, bucket: string, ttlMs: number, replicas = 1): Promise<NodeRegistry> {
    const kv = await kvm.create(bucket, { history: 1, ttl: ttlMs, replicas });
    return new NodeRegistry(kv);
  }

  /** Records a node's connect or heartbeat. */
  async upsert(info: NodeInfo): Promise<string> {
    if (!info.id || !info.service) {
      throw new MachinaError("BAD_REQUEST", "NodeInfo needs `id` and `service`; services send it on start");
    }
    const key = `${safe(info.service)}.${safe(info.id)}`;
    await this.kv.put(key, codec("NodeInfo").encode({ ...info, seenAt: Date.now() }));
    return key;
  }

  /** Every node that sent a heartbeat within the bucket's TTL, sorted by service then id. */
  async list(): Promise<NodeInfo[]> {
    const out: NodeInfo[] = [];
    const keys = await this.kv.keys();
    for await (const k of keys) {
      const e = await this.kv.get(k);
      if (e && e.operation === "PUT" && e.value.length > 0) out.push(codec("NodeInfo").decode(e.value));
    }
    return out.sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
  }
}

function safe(s: string): string {
  return s.replace(/[^-/_=a-zA-Z0-9]/g, "_");
}
