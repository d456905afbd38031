import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/nats-core";
import { MachinaError } from "@machina/wire";
import { formatDuration } from "@machina/config";
import { KvCounters } from "./kv-counters";
import { exhaustedUntil, headerValue, retryAfterMs, type HeaderBag } from "../http";
import { ServerClock } from "./server-clock";
import type { Acquired, Limiter, LimiterOptions, LimiterStats, QuotaReport, WindowUsage } from "./limiter-types";
import { openGate, type Span, type Taken, type WindowGate } from "./window-gate";
import { blockedError, overQuota, unavailable } from "./limiter-errors";

interface Waiter {
  resolve(a: Acquired): void;
  reject(e: Error): void;
}

interface SourceState {
  readonly name: string;
  /** Sorted shortest first; empty when unlimited. */
  readonly gates: readonly WindowGate[];
  readonly unlimited: boolean;
  readonly queue: Waiter[];
  busy: boolean;
  /** Server time until which the upstream paused the source. */
  blockedUntil: number;
}

const BLOCKED = "blocked";
// Extra bucket TTL beyond the longest window, so a live entry never expires under skew or slow writes.
const TTL_SLACK_MS = 60_000;
const MAX_ROUNDS = 20;
// Bounds one admission's loop whatever happens (each step is a KV read or write at most).
const MAX_STEPS = 200;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const UNLIMITED: Acquired = Object.freeze({ usage: null, quota: null, percent: null, window: null, windowStart: null });

/** Opens (creating if needed) the limiter bucket, syncs with the server clock and follows pauses. */
export async function openLimiter(nc: NatsConnection, opts: LimiterOptions): Promise<Limiter> {
  const maxPer = Math.max(
    0,
    ...opts.sources.flatMap((s) => (s.limiter.kind === "windows" ? s.limiter.windows.map((w) => w.perMs) : [])),
  );
  const ttl = maxPer + TTL_SLACK_MS;
  let kv: KV;
  try {
    kv = await new Kvm(nc).create(opts.bucket, { history: 1, ttl });
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
  await limiter.watchBlocks();
  return limiter;
}

async function extendTtl(nc: NatsConnection, bucket: string, ttlMs: number): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(`KV_${bucket}`);
  await jsm.streams.update(info.config.name, { ...info.config, max_age: ttlMs * 1_000_000 });
}

class KvLimiter implements Limiter {
  private readonly states = new Map<string, SourceState>();
  private readonly maxBatch: number;
  private readonly sendSlack: number;
  private readonly spread: number;
  private readonly maxWait: number;
  private watcher: QueuedIterator<unknown> | null = null;
  private closed = false;
  // Expected compare-and-set round trip (mean + 4 deviations), so a grant is scheduled for when it can be confirmed.
  private rttMean = 2;
  private rttDev = 1;
  private late = 0;
  private voided = 0;
  private slow = 0;
  private conflicts = 0;

  constructor(
    private readonly kv: KV,
    private readonly clock: ServerClock,
    opts: LimiterOptions,
  ) {
    this.maxBatch = Math.max(1, opts.maxBatch ?? 64);
    this.sendSlack = Math.max(1, opts.sendSlackMs ?? 20);
    this.spread = Math.max(0, opts.latencySpreadMs ?? 40);
    this.maxWait = Math.max(0, opts.maxWaitMs ?? 2_000);
    const counters = new KvCounters(kv);
    for (const s of opts.sources) {
      const windows = s.limiter.kind === "unlimited" ? [] : [...s.limiter.windows].sort((a, b) => a.perMs - b.perMs);
      const gates = windows.map((w) => openGate(kv, counters, s.name, w));
      this.states.set(s.name, {
        name: s.name,
        gates,
        unlimited: s.limiter.kind === "unlimited",
        queue: [],
        busy: false,
        blockedUntil: 0,
      });
    }
  }

  sources(): string[] {
    return [...this.states.keys()];
  }

  stats(): LimiterStats {
    return { lateGrants: this.late, voidedCalls: this.voided, conflicts: this.conflicts, slowCalls: this.slow };
  }

  async acquire(source: string): Promise<Acquired> {
    const s = this.state(source);
    if (this.closed)
      throw new MachinaError(
        "UNAVAILABLE",
        `limiter is closed; source ${source} cannot be admitted (the fetch service is shutting down)`,
      );
    if (s.unlimited) return UNLIMITED;
    return new Promise<Acquired>((resolve, reject) => {
      s.queue.push({ resolve, reject });
      void this.pump(s);
    });
  }

  // Local callers of one source are served one batch at a time: a batch of n waiters costs one
  // compare-and-set per window instead of n racing ones that would mostly conflict.
  private async pump(s: SourceState): Promise<void> {
    if (s.busy) return;
    s.busy = true;
    try {
      while (s.queue.length > 0) {
        const batch = s.queue.splice(0, this.maxBatch);
        try {
          const { granted, acquired, refusal, send } = await this.admit(s, batch.length);
          const won = batch.slice(0, granted);
          s.queue.unshift(...batch.slice(granted));
          if (refusal !== null) for (const w of s.queue.splice(0)) w.reject(refusal);
          // The next batch is admitted while this one waits for its send time: one source's
          // admissions are bounded by KV round trips, not by timer sleeps.
          if (won.length > 0) this.release(s, won, acquired, send);
        } catch (err) {
          const e = err instanceof MachinaError ? err : unavailable(this.kv, s.name, err);
          for (const w of [...batch, ...s.queue.splice(0)]) w.reject(e);
        }
      }
    } finally {
      s.busy = false;
    }
  }

  // Lets granted waiters go at their send time; a grant that fires past its slack is void (it
  // stays counted) and its waiters queue again for a new one.
  private release(s: SourceState, won: Waiter[], acquired: Acquired[], send: number): void {
    const fire = () => {
      if (this.clock.local() > send + this.sendSlack) {
        this.late++;
        this.voided += won.length;
        s.queue.unshift(...won);
        void this.pump(s);
        return;
      }
      won.forEach((w, i) => w.resolve(acquired[i]));
    };
    const wait = send - this.clock.local();
    if (wait <= 0) fire();
    else setTimeout(fire, wait);
  }

  // Grants up to n calls, scheduled for when the KV write can be confirmed, on the server's
  // clock. Returns what was granted and its local send time, or a refusal for all waiters.
  private async admit(
    s: SourceState,
    n: number,
  ): Promise<{ granted: number; acquired: Acquired[]; refusal: MachinaError | null; send: number }> {
    if (!this.clock.ready()) await this.clock.probe();
    const first = this.clock.local();
    let notBefore = 0;
    let fresh = false;
    // Waiting for room or a pause is progress; only lost races and void grants count as lost rounds.
    let lost = 0;
    for (let step = 0; lost < MAX_ROUNDS && step < MAX_STEPS; step++) {
      const t0 = this.clock.local();
      // A fast KV confirms well inside the send slack: send at once. A slow one gets the call
      // scheduled for when its confirmation is expected instead of every grant going void.
      const rtt = this.expectedRtt();
      const send = Math.max(t0 + (rtt < this.sendSlack / 2 ? 0 : rtt), notBefore);
      const off = this.clock.bounds(send);
      const span: Span = { lb: send + off.low, ub: send + off.high + this.sendSlack + this.spread };
      const nowLow = t0 + off.low;
      if (s.blockedUntil > span.lb) {
        const at = send + (s.blockedUntil - span.lb);
        if (at - first > this.maxWait)
          return { granted: 0, acquired: [], refusal: blockedError(s, s.blockedUntil - nowLow), send };
        notBefore = at;
        continue;
      }
      const rooms = await Promise.all(s.gates.map((g) => g.room(span, n, fresh)));
      const g = Math.min(n, ...rooms);
      if (g <= 0) {
        // A cached view may be stale after another replica gave calls back: confirm before waiting.
        if (!fresh) {
          fresh = true;
          continue;
        }
        const earliest = Math.max(...s.gates.map((gate, i) => (rooms[i] > 0 ? -Infinity : gate.earliest(span))));
        const at = send + Math.max(1, earliest - span.lb);
        if (!Number.isFinite(earliest) || at - first > this.maxWait) {
          return {
            granted: 0,
            acquired: [],
            refusal: overQuota(s, s.gates[rooms.findIndex((r) => r <= 0)], Math.max(1, earliest - nowLow)),
            send,
          };
        }
        // Wait for the slot instead of reserving it ahead: a call still in flight may yet move
        // its record later (settle), and a reservation made now could not see that.
        const ahead = rtt < this.sendSlack / 2 ? 0 : rtt;
        await sleep(Math.max(1, at - ahead - this.clock.local()));
        notBefore = at;
        fresh = true;
        continue;
      }
      const taken = await this.takeAll(s, span, g, nowLow);
      if (taken === null) {
        this.conflicts++;
        lost++;
        fresh = true;
        continue;
      }
      const acquired = await this.describe(s, span, g);
      const t1 = this.clock.local();
      this.observeRtt(t1 - t0);
      if (t1 > send + this.sendSlack) {
        // Confirmed too late to go out inside its span: it stays counted (safe) and is not used.
        this.late++;
        this.voided += g;
        lost++;
        notBefore = 0;
        continue;
      }
      return { granted: g, acquired, refusal: null, send };
    }
    throw new MachinaError(
      "UNAVAILABLE",
      `limiter for source ${s.name} lost ${MAX_ROUNDS} rounds in a row (compare-and-set conflicts or a KV slower than its round-trip estimate); lower the replica count or raise maxBatch`,
      { details: { source: s.name, dependency: "nats-kv" } },
    );
  }

  private async takeAll(s: SourceState, span: Span, g: number, now: number): Promise<Taken[] | null> {
    const taken: Taken[] = [];
    for (const gate of s.gates) {
      const t = await gate.take(span, g, now);
      if (t === null) {
        // Another replica wrote first: give back what this round took so no window stays spent.
        await Promise.all(taken.map((x) => x.undo()));
        return null;
      }
      taken.push(t);
    }
    return taken;
  }

  // Each waiter of a granted batch sees the count including itself, as if admitted alone.
  private async describe(s: SourceState, span: Span, g: number): Promise<Acquired[]> {
    const tight = s.gates[0];
    const used = Math.max(g, tight.w.limit - (await tight.room(span, tight.w.limit, false)));
    return Array.from({ length: g }, (_, i) => {
      const usage = used - g + i + 1;
      return {
        usage,
        quota: tight.w.limit,
        percent: usage / tight.w.limit,
        window: formatDuration(tight.w.perMs),
        windowStart: Math.round(span.lb - tight.w.perMs),
        latest: span.ub,
      };
    });
  }

  private expectedRtt(): number {
    return Math.ceil(this.rttMean + 4 * this.rttDev) + 1;
  }

  private observeRtt(ms: number): void {
    const err = ms - this.rttMean;
    this.rttMean += err / 8;
    this.rttDev += (Math.abs(err) - this.rttDev) / 4;
  }

  async settle(source: string, acquired: Acquired): Promise<void> {
    const s = this.state(source);
    if (s.unlimited || acquired.latest === undefined || !this.clock.ready()) return;
    const now = this.clock.local() + this.clock.bounds().high;
    if (now <= acquired.latest) return;
    this.slow++;
    await Promise.all(s.gates.map((g) => g.extend(acquired.latest as number, now)));
  }

  waitHint(source: string): number {
    const s = this.state(source);
    if (s.unlimited || !this.clock.ready()) return 0;
    const now = this.clock.local() + this.clock.bounds().low;
    return Math.max(0, s.blockedUntil - now, ...s.gates.map((g) => g.waitHint(now)));
  }

  async report(source: string): Promise<QuotaReport> {
    const s = this.state(source);
    if (!this.clock.ready()) await this.clock.probe();
    const off = this.clock.bounds();
    const now = this.clock.local() + (off.low + off.high) / 2;
    const blockedUntil = s.blockedUntil > now ? Math.round(s.blockedUntil) : null;
    if (s.unlimited)
      return { source, unlimited: true, usage: null, quota: null, percent: null, windows: [], blockedUntil };
    const windows = await Promise.all(
      s.gates.map(async (g): Promise<WindowUsage> => {
        const u = await g.usage(now);
        return {
          window: formatDuration(g.w.perMs),
          perMs: g.w.perMs,
          limit: g.w.limit,
          align: g.w.align,
          used: u.used,
          percent: u.used / g.w.limit,
          windowStart: Math.round(u.windowStart),
          resetsInMs: Math.max(0, Math.round(u.resetsAt - now)),
        };
      }),
    );
    const tight = windows.reduce((a, b) => (b.percent > a.percent ? b : a));
    return {
      source,
      unlimited: false,
      usage: tight.used,
      quota: tight.limit,
      percent: tight.percent,
      windows,
      blockedUntil,
    };
  }

  async observeUpstream(source: string, status: number, headers: HeaderBag): Promise<void> {
    const s = this.state(source);
    if (!this.clock.ready()) return;
    const off = this.clock.bounds();
    const local = this.clock.local();
    // Pauses are kept on the server clock, taken late so no replica resumes early.
    const now = local + off.high;
    let until: number | null;
    if (status === 429) {
      // Without Retry-After, assume the upstream counts like our shortest window.
      until = now + (retryAfterMs(headers, Date.now()) ?? (s.gates.length > 0 ? s.gates[0].w.perMs : 1_000));
    } else {
      const at = exhaustedUntil(headers, Date.now());
      until = at === null ? null : now + (at - Date.now());
      // "None left" from an upstream whose limit is one of our windows says what our own log
      // already holds, to the millisecond rather than rounded up to a whole-second reset; a
      // different limit means it counts calls we do not see (a shared key), so it pauses us.
      const limit = Number(headerValue(headers, "x-ratelimit-limit"));
      if (until !== null && s.gates.some((g) => g.w.limit === limit && g.w.align === "rolling")) until = null;
    }
    if (until === null || until <= now) return;
    s.blockedUntil = Math.max(s.blockedUntil, until);
    if (s.unlimited) return; // unlimited sources keep no shared state
    try {
      // Marking the windows stops every replica at its next compare-and-set; the blocked key
      // also reaches replicas that only watch (pull gating) and carries pauses past the windows.
      await Promise.all(s.gates.map((g) => g.block(now, until)));
      await this.writeBlocked(s.name, until);
    } catch (err) {
      throw unavailable(this.kv, s.name, err);
    }
  }

  private async writeBlocked(source: string, until: number): Promise<void> {
    const key = `${source}.${BLOCKED}`;
    for (let i = 0; i < 20; i++) {
      const e = await this.kv.get(key);
      const old = e !== null && e.operation === "PUT" ? Number(e.string()) : 0;
      if (old >= until) return;
      try {
        if (e === null) await this.kv.create(key, String(Math.ceil(until)));
        else await this.kv.update(key, String(Math.ceil(until)), e.revision);
        return;
      } catch {
        // lost a race with another replica's pause; read again
      }
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
    await this.clock.close();
  }

  private state(source: string): SourceState {
    const s = this.states.get(source);
    if (s === undefined) {
      throw new MachinaError(
        "UNKNOWN_SOURCE",
        `limiter knows no source "${source}"; known: ${[...this.states.keys()].join(", ") || "none"}`,
        {
          retryable: false,
          details: { source, known: [...this.states.keys()] },
        },
      );
    }
    return s;
  }
}
