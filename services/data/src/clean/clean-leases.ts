import type { KV, Kvm } from "@nats-io/kv";

/** One unit of clean-job work: a dirty shard of a type, `<type>.<shard>`. */
export type CleanUnit = string;

/**
 * Which data replica runs the clean job for which (type, shard), kept in a KV bucket whose entries
 * expire: each replica renews a membership key and the leases it holds on every run, takes free
 * leases up to its fair share (units ÷ live members, rounded up) and gives back what it holds
 * above it. So one replica at a time merges a shard, added replicas take a share of the work, and
 * the shards of a replica that died are free again once its leases expire.
 */
export class CleanLeases {
  private readonly held = new Map<CleanUnit, number>();

  private constructor(
    private readonly kv: KV,
    private readonly node: string,
  ) {}

  /** Opens (creating if needed, with `replicas`, default 1) the lease bucket; leases not renewed for `ttlMs` expire. */
  static async open(kvm: Kvm, bucket: string, node: string, ttlMs: number, replicas = 1): Promise<CleanLeases> {
    const kv = await kvm.create(bucket, { history: 1, ttl: ttlMs, replicas });
    return new CleanLeases(kv, node.replace(/[^-_=a-zA-Z0-9]/g, "_"));
  }

  /** Renews, sheds and claims leases among `units`; the units this replica holds now. */
  async claim(units: readonly CleanUnit[]): Promise<Set<CleanUnit>> {
    await this.kv.put(`member.${this.node}`, this.node);
    const members = new Set<string>();
    const owners = new Map<CleanUnit, string>();
    for await (const key of await this.kv.keys()) {
      const e = await this.kv.get(key);
      if (e === null || e.operation !== "PUT") continue;
      if (key.startsWith("member.")) members.add(key.slice("member.".length));
      else if (key.startsWith("lease.")) owners.set(key.slice("lease.".length), e.string());
    }
    members.add(this.node);
    const share = Math.ceil(units.length / members.size);
    // Keep (renew) what is still ours, up to the share; what another replica took over is gone.
    for (const unit of [...this.held.keys()]) {
      if (!units.includes(unit) || owners.get(unit) !== this.node || this.held.size > share) {
        await this.give(unit, owners.get(unit) === this.node);
        continue;
      }
      const rev = await this.renew(`lease.${unit}`, this.held.get(unit)).catch(() => undefined);
      if (rev === undefined) this.held.delete(unit);
      else this.held.set(unit, rev);
    }
    for (const unit of units) {
      if (this.held.size >= share) break;
      if (this.held.has(unit) || owners.has(unit)) continue;
      const rev = await this.kv.create(`lease.${unit}`, this.node).catch(() => undefined);
      if (rev !== undefined) this.held.set(unit, rev);
    }
    return new Set(this.held.keys());
  }

  /** Gives back every lease and the membership, so other replicas take over at once. */
  async release(): Promise<void> {
    for (const unit of [...this.held.keys()]) await this.give(unit, true);
    await this.kv.delete(`member.${this.node}`).catch(() => undefined);
  }

  private async give(unit: CleanUnit, mine: boolean): Promise<void> {
    const rev = this.held.get(unit);
    this.held.delete(unit);
    // Deleted only at our own revision, so a lease another replica has since taken stays its.
    if (mine && rev !== undefined) await this.kv.delete(`lease.${unit}`, { previousSeq: rev }).catch(() => undefined);
  }

  // Puts our node at `key` expecting our last revision (or creates it), returning the new revision.
  private async renew(key: string, rev: number | undefined): Promise<number> {
    if (rev !== undefined) {
      try {
        return await this.kv.update(key, this.node, rev);
      } catch {
        // Expired, or taken over: try to create it afresh below.
      }
    }
    return this.kv.create(key, this.node);
  }
}
