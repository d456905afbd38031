import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/nats-core";
import { MachinaError } from "@machina/wire";
import { formatDuration } from "@machina/config";
import { KvCounters, type Counter } from "./kv-counters";
import { exhaustedUntil, retryAfterMs, type HeaderBag } from "./rate-headers";
import type { LimiterSpec, RateWindow } from "./source-def";

/** What the limiter needs to know about a source (a SourceDef fits). */
export interface LimitedSource {
  readonly name: string;
  readonly limiter: LimiterSpec;
}

/** Options of {@link openLimiter}. */
export interface LimiterOptions {
  /** KV bucket holding the counters; every replica of one network must use the same name. */
  readonly bucket: string;
  readonly sources: readonly LimitedSource[];
  /** Most concurrent local acquires of one source admitted by a single compare-and-set. Default 64. */
  readonly maxBatch?: number;
  /**
   * A call admitted this close to the end of a window may reach the upstream in the next one,
   * so it is counted in both. Capped at a tenth of each window. Default 100 ms.
   */
  readonly edgeGuardMs?: number;
}

/** One admitted call: usage and quota of its tightest window after admission (null when unlimited). */
export interface Acquired {
  readonly usage: number | null;
  readonly quota: number | null;
  /** usage / quota, or null when unknown. */
  readonly percent: number | null;
  /** The tightest window's length, e.g. `1s`; null when unlimited. */
  readonly window: string | null;
  /** Epoch ms at which the tightest window started: the window this call is counted in. */
  readonly windowStart: number | null;
}

/** Usage of one rate window as stored in KV. */
export interface WindowUsage {
  readonly window: string;
  readonly perMs: number;
  readonly limit: number;
  readonly used: number;
  readonly percent: number;
  /** Epoch ms at which this window started. */
  readonly windowStart: number;
  readonly resetsInMs: number;
}

/** A source's quota state across all replicas. */
export interface QuotaReport {
  readonly source: string;
  readonly unlimited: boolean;
  /** The tightest window's numbers; null when unlimited. */
  readonly usage: number | null;
  readonly quota: number | null;
  readonly percent: number | null;
  readonly windows: readonly WindowUsage[];
  /** Epoch ms until which an upstream 429 paused the source; null when not paused. */
  readonly blockedUntil: number | null;
}

/** The shared rate limiter: every replica's admissions are counted in one KV bucket. */
export interface Limiter {
  /** Admits one upstream call or throws OVER_QUOTA with `details.retryAfterMs`. */
  acquire(source: string): Promise<Acquired>;
  /** Current usage of every window of `source`, read fresh from KV. */
  report(source: string): Promise<QuotaReport>;
  /** Corrects the shared view from an upstream answer: a 429 or `X-RateLimit-Remaining: 0` pauses the source. */
  observeUpstream(source: string, status: number, headers: HeaderBag): Promise<void>;
  /** Names of the sources this limiter knows. */
  sources(): string[];
  /** Stops watching the bucket; later acquires fail with UNAVAILABLE. */
  close(): Promise<void>;
}

interface Slot {
  readonly w: RateWindow;
  readonly key: string;
  readonly start: number;
  readonly end: number;
  /** The next window, also charged because the call may land in it (see edgeGuardMs). */
  readonly edge: boolean;
}

interface Waiter {
  resolve(a: Acquired): void;
  reject(e: Error): void;
}

interface SourceState {
  readonly name: string;
  /** Sorted shortest first; null when unlimited. */
  readonly windows: readonly RateWindow[] | null;
  readonly queue: Waiter[];
  busy: boolean;
  blockedUntil: number;
}

type Reservation = { granted: number; after: Counter[]; slots: Slot[]; refusal: MachinaError | null };

const BLOCKED = "blocked";
// Extra bucket TTL beyond the longest window, so clock skew between replicas never expires a live counter.
const TTL_SLACK_MS = 60_000;
const MAX_ROUNDS = 20;
const MAX_CAS_TRIES = 20;
const UNLIMITED: Acquired = Object.freeze({ usage: null, quota: null, percent: null, window: null, windowStart: null });

/** Opens (creating if needed) the limiter bucket and starts following upstream pauses set by other replicas. */
export async function openLimiter(nc: NatsConnection, opts: LimiterOptions): Promise<Limiter> {
  const maxPer = Math.max(0, ...opts.sources.flatMap((s) => (s.limiter.kind === "windows" ? s.limiter.windows.map((w) => w.perMs) : [])));
  const ttl = maxPer + TTL_SLACK_MS;
  let kv: KV;
  try {
    kv = await new Kvm(nc).create(opts.bucket, { history: 1, ttl });
    const status = await kv.status();
    // An older deployment may have created the bucket for shorter windows; counters must outlive their window.
    if (status.ttl > 0 && status.ttl < ttl) await extendTtl(nc, opts.bucket, ttl);
  } catch (err) {
    throw new MachinaError("UNAVAILABLE", `cannot open limiter KV bucket "${opts.bucket}": ${(err as Error).message}; the NATS server must run with JetStream enabled (-js) and the bucket name must be letters, digits, '-' or '_'`, { cause: err });
  }
  const limiter = new KvLimiter(kv, opts);
  await limiter.watchBlocks();
  return limiter;
}

async function extendTtl(nc: NatsConnection, bucket: string, ttlMs: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(`KV_${bucket}`);
  await jsm.streams.update(info.config.name, { ...info.config, max_age: ttlMs * 1_000_000 });
}

class KvLimiter implements Limiter {
  private readonly counters: KvCounters;
  private readonly states = new Map<string, SourceState>();
  private readonly maxBatch: number;
  private readonly edgeGuardMs: number;
  private watcher: QueuedIterator<unknown> | null = null;
  private closed = false;

  constructor(private readonly kv: KV, opts: LimiterOptions) {
    this.counters = new KvCounters(kv);
    this.maxBatch = Math.max(1, opts.maxBatch ?? 64);
    this.edgeGuardMs = Math.max(0, opts.edgeGuardMs ?? 100);
    for (const s of opts.sources) {
      const windows = s.limiter.kind === "unlimited" ? null : [...s.limiter.windows].sort((a, b) => a.perMs - b.perMs);
      this.states.set(s.name, { name: s.name, windows, queue: [], busy: false, blockedUntil: 0 });
    }
  }

  sources(): string[] {
    return [...this.states.keys()];
  }

  async acquire(source: string): Promise<Acquired> {
    const s = this.state(source);
    if (this.closed) throw new MachinaError("UNAVAILABLE", `limiter is closed; source ${source} cannot be admitted (the fetch service is shutting down)`);
    const now = Date.now();
    if (s.blockedUntil > now) throw blockedError(s, now);
    if (s.windows === null) return UNLIMITED;
    return new Promise<Acquired>((resolve, reject) => {
      s.queue.push({ resolve, reject });
      void this.pump(s);
    });
  }

  // Local callers of one source are served one batch at a time: a batch of n waiters costs one
  // CAS per window instead of n racing CASes that would mostly conflict with each other.
  private async pump(s: SourceState): Promise<void> {
    if (s.busy) return;
    s.busy = true;
    try {
      while (s.queue.length > 0) {
        const batch = s.queue.splice(0, this.maxBatch);
        try {
          const now = Date.now();
          if (s.blockedUntil > now) throw blockedError(s, now);
          const r = await this.reserve(s, batch.length, now);
          batch.forEach((w, i) => (i < r.granted ? w.resolve(acquiredAt(r, i)) : w.reject(r.refusal ?? overQuota(s, r.slots, r.after))));
        } catch (err) {
          const e = err instanceof MachinaError ? err : unavailable(this.kv, s.name, err);
          for (const w of batch) w.reject(e);
        }
      }
    } finally {
      s.busy = false;
    }
  }

  private async reserve(s: SourceState, n: number, now: number): Promise<Reservation> {
    this.counters.prune(now);
    const slots = slotsAt(s, now, this.edgeGuardMs);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const view = await Promise.all(slots.map((x) => this.counters.cached(x.key) ?? this.counters.load(x.key, x.end)));
      // A cached "full" may be stale after another replica rolled back; confirm before refusing.
      if (slots.some((x, i) => view[i].used >= x.w.limit)) {
        await Promise.all(slots.map(async (x, i) => (view[i] = await this.counters.load(x.key, x.end))));
      }
      const room = Math.min(...slots.map((x, i) => x.w.limit - view[i].used));
      if (room <= 0) return { granted: 0, after: view, slots, refusal: overQuota(s, slots, view) };
      const g = Math.min(n, room);
      const after = await Promise.all(slots.map((x, i) => this.take(x, view[i], g)));
      if (after.every((c) => c !== null)) return { granted: g, after: after as Counter[], slots, refusal: null };
      // Some window filled up under us: give back what this round took so no window stays spent
      // for calls that were not admitted, then look again.
      await Promise.all(slots.map((x, i) => (after[i] === null ? null : this.counters.adjust(x.key, (used) => Math.max(0, used - g), x.end))));
    }
    throw new MachinaError("UNAVAILABLE", `limiter for source ${s.name} lost ${MAX_ROUNDS} compare-and-set rounds in a row; too many replicas contend for one key, lower the replica count or raise maxBatch`);
  }

  // Adds g to one window by CAS, re-reading on conflicts while the window still has room for g.
  private async take(x: Slot, seen: Counter, g: number): Promise<Counter | null> {
    let cur = seen;
    for (let i = 0; i < MAX_CAS_TRIES; i++) {
      if (x.w.limit - cur.used < g) return null;
      const done = await this.counters.trySet(x.key, cur, cur.used + g, x.end);
      if (done !== null) return done;
      cur = await this.counters.load(x.key, x.end);
    }
    return null;
  }

  async report(source: string): Promise<QuotaReport> {
    const s = this.state(source);
    const now = Date.now();
    const blockedUntil = s.blockedUntil > now ? s.blockedUntil : null;
    if (s.windows === null) return { source, unlimited: true, usage: null, quota: null, percent: null, windows: [], blockedUntil };
    const slots = slotsAt(s, now, 0);
    const view = await Promise.all(slots.map((x) => this.counters.load(x.key, x.end)));
    const windows = slots.map((x, i): WindowUsage => ({
      window: formatDuration(x.w.perMs),
      perMs: x.w.perMs,
      limit: x.w.limit,
      used: view[i].used,
      percent: view[i].used / x.w.limit,
      windowStart: x.start,
      resetsInMs: x.end - now,
    }));
    const tight = windows.reduce((a, b) => (b.percent > a.percent ? b : a));
    return { source, unlimited: false, usage: tight.used, quota: tight.limit, percent: tight.percent, windows, blockedUntil };
  }

  async observeUpstream(source: string, status: number, headers: HeaderBag): Promise<void> {
    const s = this.state(source);
    const now = Date.now();
    const slots = s.windows === null ? [] : slotsAt(s, now, 0);
    let until: number | null;
    if (status === 429) {
      // Without Retry-After, assume the upstream counts like our shortest window.
      until = now + (retryAfterMs(headers, now) ?? (slots.length > 0 ? slots[0].end - now : 1_000));
    } else {
      until = exhaustedUntil(headers, now);
    }
    if (until === null || until <= now) return;
    s.blockedUntil = Math.max(s.blockedUntil, until);
    if (slots.length === 0) return; // unlimited sources keep no shared state
    try {
      // Mark full the shortest window and every window that ends before the pause does, so
      // replicas stop at once; a longer pause is carried by the blocked key they watch.
      await Promise.all(
        slots
          .filter((x, i) => i === 0 || x.end <= until)
          .map((x) => this.counters.adjust(x.key, (used) => (used >= x.w.limit ? null : x.w.limit), x.end)),
      );
      if (until > slots[0].end) await this.counters.adjust(`${s.name}.${BLOCKED}`, (old) => (old >= until ? null : until), until);
    } catch (err) {
      throw unavailable(this.kv, s.name, err);
    }
  }

  /** Follows `<source>.blocked` keys so a pause set by any replica stops this one too. */
  async watchBlocks(): Promise<void> {
    const iter = await this.kv.watch({ key: `*.${BLOCKED}` });
    this.watcher = iter;
    void (async () => {
      try {
        for await (const e of iter) {
          const s = this.states.get(e.key.slice(0, -BLOCKED.length - 1));
          const until = e.operation === "PUT" ? Number(e.string()) : NaN;
          if (s !== undefined && Number.isFinite(until)) s.blockedUntil = Math.max(s.blockedUntil, until);
        }
      } catch {
        // The watch ends when the connection closes; acquires then fail on their own KV calls.
      }
    })();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.stop();
    this.watcher = null;
  }

  private state(source: string): SourceState {
    const s = this.states.get(source);
    if (s === undefined) {
      throw new MachinaError("UNKNOWN_SOURCE", `limiter knows no source "${source}"; known: ${[...this.states.keys()].join(", ") || "none"}`, {
        retryable: false,
        details: { source, known: [...this.states.keys()] },
      });
    }
    return s;
  }
}

// The counters a call admitted at `now` is charged to: the current window of each rate window,
// plus the next one when `now` is within the edge guard of the window's end.
function slotsAt(s: SourceState, now: number, edgeGuardMs: number): Slot[] {
  const slots: Slot[] = [];
  for (const w of s.windows ?? []) {
    const start = Math.floor(now / w.perMs) * w.perMs;
    const end = start + w.perMs;
    slots.push({ w, start, end, key: `${s.name}.w${w.perMs}.${start}`, edge: false });
    if (end - now <= Math.min(edgeGuardMs, w.perMs / 10)) {
      slots.push({ w, start: end, end: end + w.perMs, key: `${s.name}.w${w.perMs}.${end}`, edge: true });
    }
  }
  return slots;
}

// The i-th waiter of a granted batch sees the count including itself, as if admitted alone.
function acquiredAt(r: Reservation, i: number): Acquired {
  let best: Acquired = UNLIMITED;
  r.slots.forEach((x, j) => {
    if (x.edge) return;
    const usage = r.after[j].used - r.granted + i + 1;
    const percent = usage / x.w.limit;
    if (best.percent === null || percent > best.percent) best = { usage, quota: x.w.limit, percent, window: formatDuration(x.w.perMs), windowStart: x.start };
  });
  return best;
}

function overQuota(s: SourceState, slots: readonly Slot[], view: readonly Counter[]): MachinaError {
  const now = Date.now();
  // Of the full windows, the one that reopens last decides when a retry can succeed.
  let at = -1;
  slots.forEach((x, i) => {
    if (view[i].used >= x.w.limit && (at < 0 || x.end > slots[at].end)) at = i;
  });
  if (at < 0) at = 0;
  const x = slots[at];
  const retry = Math.max(1, x.end - now);
  return new MachinaError("OVER_QUOTA", `source ${s.name} is over quota: ${view[at].used}/${x.w.limit} calls used in the ${x.edge ? "next" : "current"} ${formatDuration(x.w.perMs)} window; retry in ${retry} ms`, {
    retryable: true,
    details: { source: s.name, window: formatDuration(x.w.perMs), limit: x.w.limit, used: view[at].used, retryAfterMs: retry },
  });
}

function blockedError(s: SourceState, now: number): MachinaError {
  const retry = s.blockedUntil - now;
  return new MachinaError("OVER_QUOTA", `source ${s.name} is paused until ${new Date(s.blockedUntil).toISOString()} because the upstream reported its quota exhausted; retry in ${retry} ms`, {
    retryable: true,
    details: { source: s.name, retryAfterMs: retry, blockedUntil: s.blockedUntil },
  });
}

function unavailable(kv: KV, source: string, err: unknown): MachinaError {
  const bucket = (kv as { bucket?: string }).bucket ?? "?";
  return new MachinaError("UNAVAILABLE", `limiter for source ${source} cannot reach KV bucket "${bucket}": ${(err as Error)?.message ?? String(err)}; check the NATS connection and JetStream`, {
    retryable: true,
    cause: err,
    details: { source, bucket },
  });
}
