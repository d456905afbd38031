import { KvWatchInclude } from "@nats-io/kv";
import type { KV, Kvm } from "@nats-io/kv";

/** Options of {@link KvLeases.open}. */
export interface KvLeasesOptions {
  kvm: Kvm;
  bucket: string;
  /** This replica's id (a node id; characters a KV key cannot hold become `_`). */
  node: string;
  /** A lease or membership not renewed for this long expires (the bucket's TTL). */
  ttlMs: number;
  /** Replicas of the bucket. Default 1. */
  replicas?: number;
  /** Local clock for validity, ms; default `performance.now`. Only differences are used, so skew does not matter. */
  now?: () => number;
}

/** What one {@link KvLeases.round} found. */
export interface LeaseRound {
  /** Units this replica holds and may work on until {@link KvLeases.validUntil}. */
  held: Set<string>;
  /** Units held above this replica's share: stop working on them, then {@link KvLeases.release} each. */
  surplus: string[];
  /** Live members, sorted. */
  members: string[];
  /** Owner of every leased unit, this replica's included. */
  owners: Map<string, string>;
}

/**
 * Exclusive leases on named units of work among the live replicas of a service, in a KV bucket
 * whose entries expire. Every round a replica renews its membership and the leases it holds
 * (compare-and-set on their revision, so one taken over is noticed), works out its share —
 * units split evenly over the live members sorted by id, the first `units % members` taking one
 * more — and claims free units (create-if-absent, so two claimants never both win) until it
 * holds its share. What it holds above its share it reports as surplus for its caller to hand
 * back once the work on it has stopped, so ownership moves without overlap.
 *
 * The bucket is watched, so a round reads no keys: members and owners are what the watch saw
 * renewed within the TTL (an expiry makes no event; a create on a key the server still holds
 * fails, so a stale view never leads to a second owner). A holder counts a lease as valid only
 * until `ttl - margin` after the moment it sent the last successful renewal, on its own
 * monotonic clock: the server expires the entry no sooner than `ttl` after it stored that
 * renewal, which is later, so a replica that stops renewing (stalled, cut off from NATS) stops
 * working on its units before anyone else can claim them.
 */
export class KvLeases {
  private readonly held = new Map<string, { rev: number; renewedAt: number }>();
  private readonly now: () => number;
  /** What the watch saw: key → value and when (local clock). */
  private readonly view = new Map<string, { value: string; seenAt: number }>();
  private readonly listeners = new Set<() => void>();
  private stopWatch: () => void = () => undefined;

  private constructor(
    private readonly kv: KV,
    /** This replica's id as a KV key token. */
    readonly node: string,
    readonly ttlMs: number,
    now?: () => number,
  ) {
    this.now = now ?? (() => performance.now());
  }

  /** Opens (creating if needed) the lease bucket and starts watching it. */
  static async open(opts: KvLeasesOptions): Promise<KvLeases> {
    const kv = await opts.kvm.create(opts.bucket, { history: 1, ttl: opts.ttlMs, replicas: opts.replicas ?? 1 });
    const leases = new KvLeases(kv, opts.node.replace(/[^-_=a-zA-Z0-9]/g, "_"), opts.ttlMs, opts.now);
    await leases.startWatch();
    return leases;
  }

  /** Safety margin kept between a holder's own expiry and the server's. */
  get marginMs(): number {
    return Math.max(250, Math.round(this.ttlMs / 5));
  }

  /** Until when (on the local clock) this replica may work on `unit`; 0 when it does not hold it. */
  validUntil(unit: string): number {
    const h = this.held.get(unit);
    return h === undefined ? 0 : h.renewedAt + this.ttlMs - this.marginMs;
  }

  /** True while this replica holds `unit` and its lease has not run out locally. */
  holds(unit: string): boolean {
    return this.validUntil(unit) > this.now();
  }

  /** Renews, works out the share and claims free units among `units`. */
  async round(units: readonly string[]): Promise<LeaseRound> {
    await this.kv.put(`member.${this.node}`, this.node);
    const { members, owners } = this.live();
    members.add(this.node);
    const sorted = [...members].sort();
    const wanted = new Set(units);
    const rank = sorted.indexOf(this.node);
    const share = Math.floor(units.length / sorted.length) + (rank < units.length % sorted.length ? 1 : 0);

    // Renew what is still ours; a lease that expired or was taken over is simply gone.
    for (const unit of [...this.held.keys()]) {
      if (!wanted.has(unit)) {
        await this.release(unit);
        continue;
      }
      const sentAt = this.now();
      try {
        const rev = await this.kv.update(`lease.${unit}`, this.node, this.held.get(unit)!.rev);
        this.held.set(unit, { rev, renewedAt: sentAt });
        owners.set(unit, this.node);
      } catch {
        this.held.delete(unit);
        if (owners.get(unit) === this.node) owners.delete(unit);
      }
    }
    // Claim free units, each replica starting at its own offset so that claimants rarely collide.
    const start = units.length === 0 ? 0 : (rank * Math.max(1, share)) % units.length;
    for (let i = 0; i < units.length && this.held.size < share; i++) {
      const unit = units[(start + i) % units.length];
      if (this.held.has(unit) || owners.has(unit)) continue;
      const sentAt = this.now();
      try {
        const rev = await this.kv.create(`lease.${unit}`, this.node);
        this.held.set(unit, { rev, renewedAt: sentAt });
        owners.set(unit, this.node);
      } catch {
        // Held on the server still (expired in our view only), or another replica claimed it first.
      }
    }
    // Surplus: the units held beyond the share, the last claimed first.
    const surplus = [...this.held.keys()].slice(share);
    return { held: new Set(this.held.keys()), surplus, members: sorted, owners };
  }

  /** Hands `unit` back at once (only at our own revision, so a lease someone else took stays theirs). */
  async release(unit: string): Promise<void> {
    const h = this.held.get(unit);
    this.held.delete(unit);
    if (h !== undefined) await this.kv.delete(`lease.${unit}`, { previousSeq: h.rev }).catch(() => undefined);
  }

  /** Hands back every lease and the membership, so the other replicas take over at once; stops watching. */
  async releaseAll(): Promise<void> {
    for (const unit of [...this.held.keys()]) await this.release(unit);
    await this.kv.delete(`member.${this.node}`).catch(() => undefined);
    this.stopWatch();
  }

  /**
   * Calls `onChange` when a replica joins (a member not seen before) or a lease or membership is
   * handed back, so a round can follow at once instead of at the next interval. Renewals and
   * claims wake no one.
   */
  watch(onChange: () => void): { stop(): void } {
    this.listeners.add(onChange);
    return { stop: () => this.listeners.delete(onChange) };
  }

  // Members and lease owners renewed within the TTL, as far as the watch saw.
  private live(): { members: Set<string>; owners: Map<string, string> } {
    const members = new Set<string>();
    const owners = new Map<string, string>();
    const since = this.now() - this.ttlMs;
    for (const [key, e] of this.view) {
      if (e.seenAt < since) continue;
      if (key.startsWith("member.")) members.add(e.value);
      else if (key.startsWith("lease.")) owners.set(key.slice("lease.".length), e.value);
    }
    return { members, owners };
  }

  private async startWatch(): Promise<void> {
    const w = await this.kv.watch({ key: ">", include: KvWatchInclude.LastValue });
    let stopped = false;
    this.stopWatch = () => {
      stopped = true;
      w.stop();
    };
    void (async () => {
      for await (const e of w) {
        if (e.operation !== "PUT") {
          this.view.delete(e.key);
          if (e.isUpdate) for (const f of this.listeners) f();
          continue;
        }
        const value = e.string();
        const joined = e.key.startsWith("member.") && !this.view.has(e.key);
        // The initial values are as old as their entries: counted live only as of their creation.
        const seenAt = e.isUpdate ? this.now() : this.now() - Math.max(0, Date.now() - e.created.getTime());
        this.view.set(e.key, { value, seenAt });
        if (joined && e.isUpdate && value !== this.node) for (const f of this.listeners) f();
      }
    })()
      .catch(() => undefined)
      .finally(() => {
        // A watch that ended on its own (the connection went) starts again, so the view stays live.
        if (!stopped) this.rewatch();
      });
  }

  private rewatch(): void {
    setTimeout(() => void this.startWatch().catch(() => this.rewatch()), 1_000).unref();
  }
}
