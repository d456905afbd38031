import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/nats-core";
import { MachinaError, isMachinaError } from "@machina/wire";
import { formatDuration } from "@machina/config";
import { KvCounters } from "./kv-counters";
import { readQuotaHeaders, type HeaderBag } from "../http";
import { ServerClock } from "./server-clock";
import type {
  Acquired,
  LimitedSource,
  Limiter,
  LimiterLog,
  LimiterOptions,
  LimiterStats,
  QuotaReport,
} from "./limiter-types";
import { openGate, type WindowGate } from "./window-gate";
import { unavailable } from "./limiter-errors";
import { credentialKey, laneWait, newLane, pausedUntil, type Lane } from "./lane";
import { LaneAdmission } from "./lane-admission";
import { allBenched, checkCredentialIds, pickOrder, poolOverQuota, type Pool } from "./credential-pool";
import { FLAG_WATCH_KEYS, decodeLimits, flagKey, mergeLimits, parseFlagKey, raiseUntil } from "./lane-flags";
import type { Lowering } from "./lowered-limit";
import { laneReport, poolReport } from "./quota-report";
import { planReconcile } from "./upstream-reconcile";
import type { RateWindow } from "../source";

// Extra bucket TTL beyond the longest window, so a live entry never expires under skew or slow writes.
const TTL_SLACK_MS = 60_000;
// A limit an upstream lowered holds this long after the last answer that said so.
const LOWERING_HOLD_MS = 60_000;
const UNLIMITED: Acquired = Object.freeze({ usage: null, quota: null, percent: null, window: null, windowStart: null });
const windowsOf = (s: LimitedSource): readonly RateWindow[] =>
  s.limiter.kind === "unlimited" ? [] : s.limiter.windows;

/** Opens (creating if needed) the limiter bucket, syncs with the server clock and follows pauses. */
export async function openLimiter(nc: NatsConnection, opts: LimiterOptions): Promise<Limiter> {
  // Entries must outlive their window, and a bench its rest.
  const ttl =
    Math.max(
      0,
      ...opts.sources.flatMap((s) => [...windowsOf(s), ...(s.pool?.windows ?? [])].map((w) => w.perMs)),
      ...opts.sources.map((s) => s.pool?.benchMs ?? 0),
    ) + TTL_SLACK_MS;
  let kv: KV;
  try {
    kv = await new Kvm(nc).create(opts.bucket, { history: 1, ttl, replicas: opts.replicas ?? 1 });
    const status = await kv.status();
    // An older deployment may have created the bucket for shorter windows; state must outlive its window.
    if (status.ttl > 0 && status.ttl < ttl) await extendTtl(nc, opts.bucket, ttl);
  } catch (err) {
    throw new MachinaError(
      "UNAVAILABLE",
      `cannot open limiter KV bucket "${opts.bucket}": ${(err as Error).message}; the NATS server must run with JetStream enabled (-js) and the bucket name must be letters, digits, '-' or '_'`,
      { cause: err, details: { dependency: "nats-kv" } },
    );
  }
  const clock = new ServerClock(kv, { now: opts.clock });
  const limiter = new KvLimiter(kv, clock, opts);
  await clock.probe().catch(() => undefined);
  await limiter.watchFlags();
  return limiter;
}

async function extendTtl(nc: NatsConnection, bucket: string, ttlMs: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(`KV_${bucket}`);
  await jsm.streams.update(info.config.name, { ...info.config, max_age: ttlMs * 1_000_000 });
}

class KvLimiter implements Limiter {
  private readonly plain = new Map<string, Lane>();
  private readonly pools = new Map<string, Pool>();
  /** Source names in the order given. */
  private readonly names: string[] = [];
  /** Every lane by its KV key prefix, for the flags the watch delivers. */
  private readonly lanes = new Map<string, Lane>();
  /** The last value of every flag key seen, so a lane made later (a pool's credential) starts from it. */
  private readonly flags = new Map<string, string | null>();
  private readonly counters: KvCounters;
  private readonly admission: LaneAdmission;
  private readonly log: LimiterLog | undefined;
  private watcher: QueuedIterator<unknown> | null = null;
  private closed = false;
  private slow = 0;

  constructor(
    private readonly kv: KV,
    private readonly clock: ServerClock,
    opts: LimiterOptions,
  ) {
    this.admission = new LaneAdmission(kv, clock, {
      maxBatch: Math.max(1, opts.maxBatch ?? 64),
      sendSlack: Math.max(1, opts.sendSlackMs ?? 20),
      spread: Math.max(0, opts.latencySpreadMs ?? 40),
      maxWait: Math.max(0, opts.maxWaitMs ?? 2_000),
    });
    this.log = opts.log;
    this.counters = new KvCounters(kv);
    for (const s of opts.sources) {
      this.names.push(s.name);
      if (s.pool === undefined || s.pool === null) {
        const lane = newLane(s.name, null, this.gates(s.name, windowsOf(s)), null, s.limiter.kind === "unlimited");
        this.plain.set(s.name, lane);
        this.lanes.set(lane.key, lane);
        continue;
      }
      const parent = newLane(s.name, null, this.gates(s.name, s.pool.windows), null);
      this.lanes.set(parent.key, parent);
      this.pools.set(s.name, {
        source: s.name,
        parent,
        lanes: [],
        byId: new Map(),
        windows: windowsOf(s),
        benchMs: s.pool.benchMs,
        next: 0,
      });
    }
  }

  private gates(key: string, windows: readonly RateWindow[]): WindowGate[] {
    return [...windows].sort((a, b) => a.perMs - b.perMs).map((w) => openGate(this.kv, this.counters, key, w));
  }

  sources(): string[] {
    return [...this.names];
  }

  stats(): LimiterStats {
    const a = this.admission;
    return { lateGrants: a.late, voidedCalls: a.voided, conflicts: a.conflicts, slowCalls: this.slow };
  }

  usePool(source: string, ids: readonly string[]): void {
    const pool = this.pools.get(source);
    if (pool === undefined) {
      this.lane(source); // throws UNKNOWN_SOURCE for a source it does not know
      throw new MachinaError("BAD_REQUEST", `source ${source} has no credential pool; declare one under pool`, {
        retryable: false,
        details: { source },
      });
    }
    checkCredentialIds(source, ids);
    const known = pool.lanes.map((l) => l.credential);
    if (known.length > 0) {
      if (known.join(",") === ids.join(",")) return;
      throw new MachinaError(
        "CONFLICT",
        `credential pool of source ${source} was already given credentials ${known.join(", ")}; open one limiter per set of sources`,
        { retryable: false, details: { source } },
      );
    }
    for (const id of ids) {
      const lane = newLane(source, id, this.gates(credentialKey(source, id), pool.windows), pool.parent);
      pool.lanes.push(lane);
      pool.byId.set(id, lane);
      this.lanes.set(lane.key, lane);
    }
    // Pauses, benches and lowerings the watch delivered before the lanes existed.
    for (const [key, value] of this.flags) this.applyFlag(key, value);
  }

  async acquire(source: string): Promise<Acquired> {
    const pool = this.pools.get(source);
    const lane = pool === undefined ? this.lane(source) : null;
    if (this.closed)
      throw new MachinaError(
        "UNAVAILABLE",
        `limiter is closed; source ${source} cannot be admitted (the fetch service is shutting down)`,
      );
    if (pool !== undefined) return this.acquirePooled(pool);
    const s = lane as Lane;
    if (s.unlimited) return UNLIMITED;
    return this.admission.enqueue(s);
  }

  // A pooled call goes to the credential with room soonest and most room; one that cannot
  // admit it soon enough passes it on to the next, so the pool refuses only when all do.
  private async acquirePooled(pool: Pool): Promise<Acquired> {
    if (pool.lanes.length === 0)
      throw new MachinaError(
        "INTERNAL",
        `credential pool of source ${pool.source} has no credentials yet; the fetcher names them (usePool) once their secrets are read`,
      );
    if (!this.clock.ready()) await this.clock.probe();
    const order = pickOrder(pool, this.clock.local() + this.clock.bounds().low);
    if (order.length === 0) throw allBenched(pool, this.clock.local() + this.clock.bounds().low);
    const refusals: MachinaError[] = [];
    for (const lane of order) {
      lane.demand++;
      try {
        const a = lane.unlimited ? UNLIMITED : await this.admission.enqueue(lane);
        return { ...a, credential: lane.credential as string };
      } catch (err) {
        if (!isMachinaError(err, "OVER_QUOTA")) throw err;
        refusals.push(err);
      } finally {
        lane.demand--;
      }
      // A full pool-wide window refuses every credential alike: asking the rest costs KV reads for nothing.
      const now = this.clock.local() + this.clock.bounds().low;
      if (pausedUntil(pool.parent) > now || pool.parent.gates.some((g) => g.roomHint(now) <= 0)) break;
    }
    throw poolOverQuota(pool, refusals);
  }

  async settle(source: string, acquired: Acquired): Promise<void> {
    const s = this.laneOf(source, acquired.credential);
    if (s.unlimited || acquired.latest === undefined || !this.clock.ready()) return;
    const now = this.clock.local() + this.clock.bounds().high;
    if (now <= acquired.latest) return;
    this.slow++;
    await Promise.all(s.gates.map((g) => g.extend(acquired.latest as number, now)));
  }

  waitHint(source: string): number {
    const pool = this.pools.get(source);
    const lane = pool === undefined ? this.lane(source) : null;
    if (!this.clock.ready() || lane?.unlimited === true) return 0;
    const now = this.clock.local() + this.clock.bounds().low;
    if (lane !== null) return laneWait(lane, now);
    const p = pool as Pool;
    const usable = p.lanes.filter((l) => l.benchedUntil <= now);
    if (usable.length === 0) return Math.max(0, Math.min(...p.lanes.map((l) => l.benchedUntil)) - now);
    return Math.min(...usable.map((l) => laneWait(l, now)));
  }

  async report(source: string): Promise<QuotaReport> {
    const pool = this.pools.get(source);
    const lane = pool === undefined ? this.lane(source) : null;
    if (!this.clock.ready()) await this.clock.probe();
    const off = this.clock.bounds();
    const now = this.clock.local() + (off.low + off.high) / 2;
    return lane !== null ? laneReport(lane, now) : poolReport(pool as Pool, now);
  }

  async observeUpstream(source: string, status: number, headers: HeaderBag, credential?: string): Promise<void> {
    const s = this.laneOf(source, credential);
    if (!this.clock.ready()) return;
    const off = this.clock.bounds();
    const local = this.clock.local();
    // Pauses are kept on the server clock, taken late so no replica resumes early.
    const now = local + off.high;
    const wall = Date.now();
    const view = readQuotaHeaders(status, headers, wall);
    if (view.retryAt === null && view.quotas.length === 0 && status !== 429) return;
    const plan = planReconcile(s.own, status, view, now, (at) => now + (at - wall));
    const until = plan.pauseUntil;
    if (until !== null) s.blockedUntil = Math.max(s.blockedUntil, until);
    if (s.unlimited) return; // unlimited sources keep no shared state
    try {
      if (until !== null) {
        // Marking the windows stops every replica at its next compare-and-set; the blocked key
        // also reaches replicas that only watch (pull gating) and carries pauses past the windows.
        await Promise.all(s.own.map((g) => g.block(now, until)));
        await raiseUntil(this.kv, flagKey(s.key, "blocked"), until);
      }
      // Lowered first: what is left is counted against the limit the same answer stated.
      const lowered = this.lowerLimits(plan.limits, now);
      await Promise.all(plan.floors.map((f) => f.gate.floor(now, f.remaining, f.until, f.slack)));
      if (lowered.size > 0) await mergeLimits(this.kv, flagKey(s.key, "limits"), lowered, now);
    } catch (err) {
      throw unavailable(this.kv, s.source, err);
    }
  }

  // Applies lowerings here and returns those to share. One is shared when it changes, or when
  // half its hold has passed: an upstream that repeats its limit on every answer costs one
  // write a half-hold, not one per call.
  private lowerLimits(
    limits: ReadonlyMap<WindowGate, { readonly limit: number | null; readonly from: number }>,
    now: number,
  ): Map<number, Lowering | null> {
    const changes = new Map<number, Lowering | null>();
    for (const [g, { limit, from }] of limits) {
      const had = g.lowering(now);
      const until = Math.max(from, now) + LOWERING_HOLD_MS;
      if (limit === null ? had === null : had?.limit === limit && had.until - until > -LOWERING_HOLD_MS / 2) continue;
      const lowering = limit === null ? null : { limit, from, until };
      g.lower(lowering);
      changes.set(g.w.perMs, lowering);
    }
    return changes;
  }

  async bench(source: string, credential: string | undefined, status: number): Promise<void> {
    const pool = this.pools.get(source);
    const lane = credential === undefined ? undefined : pool?.byId.get(credential);
    if (pool === undefined || lane === undefined) return;
    if (!this.clock.ready()) await this.clock.probe();
    const now = this.clock.local() + this.clock.bounds().high;
    const until = now + pool.benchMs;
    const fresh = lane.benchedUntil <= now;
    lane.benchedUntil = Math.max(lane.benchedUntil, until);
    if (fresh) {
      const left = pool.lanes.filter((l) => l.benchedUntil <= now).length;
      this.log?.warn(
        { source, credential, status, benchedUntil: new Date(Date.now() + pool.benchMs).toISOString() },
        `source ${source}: the upstream refused credential ${credential} (HTTP ${status}); it is benched on every replica for ${formatDuration(pool.benchMs)}, and its calls go to the ${left} other usable credential${left === 1 ? "" : "s"} of the pool; fix or replace it`,
      );
    }
    try {
      await raiseUntil(this.kv, flagKey(lane.key, "bench"), until);
    } catch (err) {
      throw unavailable(this.kv, source, err);
    }
  }

  /** Follows every lane's flags, so a pause, bench or lowering set by any replica holds here too. */
  async watchFlags(): Promise<void> {
    const iter = await this.kv.watch({ key: [...FLAG_WATCH_KEYS] });
    this.watcher = iter;
    void (async () => {
      try {
        for await (const e of iter) {
          const value = e.operation === "PUT" ? e.string() : null;
          this.flags.set(e.key, value);
          this.applyFlag(e.key, value);
        }
      } catch {
        // The watch ends when the connection closes; acquires then fail on their own KV calls.
      }
    })();
  }

  private applyFlag(key: string, value: string | null): void {
    const f = parseFlagKey(key);
    const lane = f === null ? undefined : this.lanes.get(f.lane);
    if (f === null || lane === undefined) return;
    if (f.flag === "limits") {
      const limits = value === null ? {} : decodeLimits(value);
      for (const g of lane.own) {
        g.lower(limits[String(g.w.perMs)] ?? null);
      }
      return;
    }
    const until = value === null ? NaN : Number(value);
    if (!Number.isFinite(until)) return;
    if (f.flag === "blocked") lane.blockedUntil = Math.max(lane.blockedUntil, until);
    else lane.benchedUntil = Math.max(lane.benchedUntil, until);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.stop();
    this.watcher = null;
    await this.clock.close();
  }

  // The lane an admitted call or an answer belongs to: the credential's in a pool (the pool's
  // own lane for an answer no credential is named for), else the source's.
  private laneOf(source: string, credential: string | undefined): Lane {
    const pool = this.pools.get(source);
    if (pool === undefined) return this.lane(source);
    return (credential === undefined ? undefined : pool.byId.get(credential)) ?? pool.parent;
  }

  private lane(source: string): Lane {
    const s = this.plain.get(source);
    if (s === undefined) {
      const known = this.sources();
      throw new MachinaError(
        "UNKNOWN_SOURCE",
        `limiter knows no source "${source}"; known: ${known.join(", ") || "none"}`,
        { retryable: false, details: { source, known } },
      );
    }
    return s;
  }
}
