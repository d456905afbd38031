import { isDeepStrictEqual } from "node:util";
import type { Logger } from "@machina/log";
import type { NodeInfo } from "@machina/protos";
import type { KvLeases } from "@machina/runtime";
import type { StatefulAggregator } from "../config/aggregator-table";
import { makeKind } from "../kinds/make-kind";
import { PartitionRunner } from "./partition-runner";
import type { RunnerDeps } from "./partition-runner";

// After a lease change another replica made, wait this long for more before a round.
const DEBOUNCE_MS = 50;

/**
 * Keeps this replica working on exactly the partitions it holds leases for. A round runs every
 * quarter of the lease TTL, and at once when another replica joins, leaves or hands a lease back
 * (a KV watch): it renews, starts a runner for each newly held partition, and for each one held
 * above this replica's share stops its runner first and only then releases the lease, so two
 * replicas never work on one partition. A partition whose lease lapsed (renewals failing) stops
 * committing by itself (its runner checks the lease before every commit) and is stopped here.
 *
 * Rebalance time: a graceful leave hands its leases back at once and a join is seen at once, so
 * partitions move within the time the running group needs to finish plus a round trip or two;
 * a crashed replica's partitions are free once its leases expire, within the TTL, and taken at
 * the next round, within TTL × 1.25.
 */
export class PartitionManager {
  private readonly runners = new Map<string, PartitionRunner>();
  private units: string[];
  private readonly byUnit = new Map<string, { agg: StatefulAggregator; partition: number }>();
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private watcher: { stop(): void } | undefined;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private failedRounds = 0;

  constructor(
    aggregators: readonly StatefulAggregator[],
    private readonly leases: KvLeases,
    private readonly deps: Omit<RunnerDeps, "leaseValid">,
    private readonly node: NodeInfo,
    private readonly log: Logger,
  ) {
    for (const agg of aggregators)
      for (let p = 0; p < agg.partitions; p++) {
        const unit = `${agg.type}.${p}`;
        this.byUnit.set(unit, { agg, partition: p });
      }
    this.units = [...this.byUnit.keys()];
  }

  /** Runs the first round and keeps rounds going. */
  async start(): Promise<void> {
    this.watcher = this.leases.watch(() => this.soon());
    await this.round();
    this.timer = setInterval(() => this.soon(0), Math.max(250, Math.floor(this.leases.ttlMs / 4)));
    this.timer.unref();
  }

  /**
   * Takes the stateful types of a new config: the caller has checked that a type whose kind, key
   * or partitions changed, or that is gone, keeps no state and no queued records. Each partition
   * this replica works on whose spec changed restarts its session with the new spec, from the
   * stored state, as on a handover; partitions of new types (or new partitions) join the units
   * the next round shares out (at once); partitions that are gone stop and their leases go back.
   * Waits for the round in progress, so no runner is started twice.
   */
  async update(aggregators: readonly StatefulAggregator[]): Promise<void> {
    let changed = false;
    const next = this.chain.then(async () => {
      const wanted = new Map<string, { agg: StatefulAggregator; partition: number }>();
      for (const agg of aggregators)
        for (let p = 0; p < agg.partitions; p++) wanted.set(`${agg.type}.${p}`, { agg, partition: p });
      for (const [unit, had] of this.byUnit) {
        if (wanted.has(unit)) continue;
        changed = true;
        await this.runners.get(unit)?.stop();
        this.runners.delete(unit);
        await this.leases.release(unit);
        this.byUnit.delete(unit);
        const labels = { type: had.agg.type, partition: String(had.partition) };
        this.deps.metrics.owned.remove(labels);
        this.deps.metrics.stateKeys.remove(labels);
        this.log.info({ unit }, "partition no longer aggregated; stopped and handed back");
      }
      for (const [unit, want] of wanted) {
        const had = this.byUnit.get(unit);
        this.byUnit.set(unit, want);
        if (had === undefined) {
          changed = true;
          continue;
        }
        if (isDeepStrictEqual(had.agg, want.agg)) continue;
        const runner = this.runners.get(unit);
        if (runner === undefined || this.stopped) continue;
        await runner.stop();
        const fresh = this.runnerFor(unit);
        this.runners.set(unit, fresh);
        fresh.start();
        this.log.info({ unit }, "partition restarted with its new aggregator spec");
      }
      this.units = [...this.byUnit.keys()];
      if (changed) this.log.info({ units: this.units.length }, "stateful partitions to share out changed");
    });
    // A failed update must not stop the rounds that follow.
    this.chain = next.catch(() => undefined);
    await next;
    if (changed) await this.round();
  }

  /** Partitions this replica works on now, sorted. */
  owned(): string[] {
    return [...this.runners.keys()].sort();
  }

  /** Stops every runner (after its group in hand), then hands every lease back. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    this.watcher?.stop();
    await this.chain;
    await Promise.all([...this.runners.values()].map((r) => r.stop()));
    this.runners.clear();
    this.publishOwned();
    await this.leases.releaseAll();
  }

  private soon(delay = DEBOUNCE_MS): void {
    if (this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.round(), delay);
  }

  // Rounds never overlap: each waits for the one before. An outage logs once, then quietly.
  private round(): Promise<void> {
    this.chain = this.chain
      .then(() => this.roundNow())
      .then(
        () => {
          if (this.failedRounds > 0)
            this.log.info({ failedRounds: this.failedRounds }, "partition lease rounds work again");
          this.failedRounds = 0;
        },
        (err: unknown) => {
          this.failedRounds++;
          this.log[this.failedRounds === 1 ? "warn" : "debug"](
            { err, failedRounds: this.failedRounds },
            "partition lease round failed; retrying at the next one (partitions stop once their leases run out)",
          );
        },
      );
    return this.chain;
  }

  private async roundNow(): Promise<void> {
    if (this.stopped) return;
    const r = await this.leases.round(this.units);
    const surplus = new Set(r.surplus);
    // Handed back only once its runner has stopped, so the next owner never overlaps with it.
    for (const unit of surplus) {
      await this.runners.get(unit)?.stop();
      this.runners.delete(unit);
      await this.leases.release(unit);
      this.log.info({ unit, members: r.members.length }, "partition handed over to rebalance");
    }
    for (const [unit, runner] of this.runners) {
      if (r.held.has(unit)) continue;
      await runner.stop();
      this.runners.delete(unit);
      this.log.warn({ unit }, "partition lease lost (not renewed in time); stopped working on it");
    }
    for (const unit of r.held) {
      if (surplus.has(unit) || this.runners.has(unit)) continue;
      const runner = this.runnerFor(unit);
      this.runners.set(unit, runner);
      runner.start();
      this.log.info({ unit, members: r.members.length }, "partition taken");
    }
    this.publishOwned();
  }

  private runnerFor(unit: string): PartitionRunner {
    const { agg, partition } = this.byUnit.get(unit)!;
    return new PartitionRunner(agg, partition, () => makeKind(agg), {
      ...this.deps,
      leaseValid: () => this.leases.holds(unit),
    });
  }

  // vertex.nodes (the next heartbeat) and /metrics say who owns what.
  private publishOwned(): void {
    this.node.owns = this.owned();
    for (const [unit, { agg, partition }] of this.byUnit) {
      const labels = { type: agg.type, partition: String(partition) };
      const mine = this.runners.has(unit);
      this.deps.metrics.owned.set(labels, mine ? 1 : 0);
      // The state of a partition another replica owns is that replica's to report.
      if (!mine) this.deps.metrics.stateKeys.remove(labels);
    }
  }
}
