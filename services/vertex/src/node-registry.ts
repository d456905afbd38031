import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV, KvWatchEntry, Kvm } from "@nats-io/kv";
import type { NodeInfo } from "@machina/protos";
import { codec } from "@machina/protos";
import { MachinaError } from "@machina/wire";

/** Options of {@link NodeRegistry.open}. */
export interface NodeRegistryOptions {
  /** A node missing heartbeats for this long leaves the registry (and the bucket's entries expire). */
  ttlMs: number;
  replicas?: number;
  log?: WarnLog;
  /** Clock for expiry, epoch ms; tests may pass their own. */
  now?: () => number;
}

/** The one logging call the registry makes. */
export interface WarnLog {
  warn(obj: object, msg: string): void;
}

// A watch that ended (connection lost, consumer gone) starts again after this long.
const REWATCH_MS = 1000;

/**
 * Live registry of service instances: heartbeats are KV puts; every vertex replica keeps the
 * whole registry in memory from one watch of the bucket, so listing reads nothing. Entries that
 * stop beating age out of the map after `ttlMs` (the bucket's max age removes them from the
 * store too, but an expiry by age sends no event to a watch).
 */
export class NodeRegistry {
  private readonly nodes = new Map<string, { info: NodeInfo; seen: number }>();
  private watching: { stop(): void } | undefined;
  private stopped = false;
  private readonly now: () => number;
  private readonly ready: Promise<void>;

  private constructor(
    private readonly kv: KV,
    private readonly ttlMs: number,
    private readonly log: WarnLog | undefined,
    now: (() => number) | undefined,
  ) {
    this.now = now ?? Date.now;
    this.ready = new Promise((resolve) => void this.watch(resolve));
  }

  /** Opens (creating if needed) the registry bucket and starts watching it; resolves once the watch caught up. */
  static async open(kvm: Kvm, jsm: JetStreamManager, bucket: string, opts: NodeRegistryOptions): Promise<NodeRegistry> {
    const kv = await kvm.create(bucket, { history: 1, ttl: opts.ttlMs, replicas: opts.replicas ?? 1 });
    // create() keeps an existing bucket's max age; a changed heartbeat interval must change it too.
    const status = await kv.status();
    if (status.ttl !== opts.ttlMs) {
      const info = await jsm.streams.info(status.streamInfo.config.name);
      await jsm.streams.update(info.config.name, { ...info.config, max_age: opts.ttlMs * 1_000_000 });
    }
    const r = new NodeRegistry(kv, opts.ttlMs, opts.log, opts.now);
    await r.ready;
    return r;
  }

  /** Records a node's connect or heartbeat; the registry key. */
  async upsert(info: NodeInfo): Promise<string> {
    if (!info.id || !info.service) {
      throw new MachinaError("BAD_REQUEST", "NodeInfo needs `id` and `service`; services send it on start");
    }
    const key = keyOf(info);
    const seenAt = this.now();
    await this.kv.put(key, codec("NodeInfo").encode({ ...info, seenAt }));
    // The watch delivers it too; noting it now makes a list right after the connect see it.
    this.nodes.set(key, { info: { ...info, seenAt }, seen: seenAt });
    return key;
  }

  /** Every node that beat within the TTL, sorted by service then id. */
  list(): NodeInfo[] {
    const cutoff = this.now() - this.ttlMs;
    const out: NodeInfo[] = [];
    for (const [key, n] of this.nodes) {
      if (n.seen < cutoff) this.nodes.delete(key);
      else out.push(n.info);
    }
    return out.sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
  }

  /** Stops the watch. */
  stop(): void {
    this.stopped = true;
    this.watching?.stop();
  }

  private async watch(caughtUp: () => void): Promise<void> {
    while (!this.stopped) {
      try {
        const it = await this.kv.watch();
        this.watching = it;
        // Nothing stored yet: the watch has no history to replay.
        if ((await this.kv.status()).values === 0) caughtUp();
        for await (const e of it) {
          this.apply(e);
          if (e.delta === 0) caughtUp();
        }
      } catch (err) {
        this.log?.warn({ err }, "node registry watch failed; watching again");
      }
      caughtUp();
      if (!this.stopped) await new Promise((r) => setTimeout(r, REWATCH_MS).unref());
    }
  }

  private apply(e: KvWatchEntry): void {
    if (e.operation !== "PUT" || e.value.length === 0) {
      this.nodes.delete(e.key);
      return;
    }
    let info: NodeInfo;
    try {
      info = codec("NodeInfo").decode(e.value);
    } catch (err) {
      this.log?.warn({ err, key: e.key }, "registry entry is not a NodeInfo; ignored");
      return;
    }
    // A replayed entry is as old as its write (server time, never later than now); a live one is now.
    const seen = e.isUpdate ? this.now() : Math.min(this.now(), e.created.getTime());
    const had = this.nodes.get(e.key);
    if (had === undefined || had.seen <= seen) this.nodes.set(e.key, { info, seen });
  }
}

function keyOf(info: NodeInfo): string {
  return `${safe(info.service)}.${safe(info.id)}`;
}

function safe(s: string): string {
  return s.replace(/[^-/_=a-zA-Z0-9]/g, "_");
}
