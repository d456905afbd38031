import type { KV } from "@nats-io/kv";

/** A local, monotonic clock in epoch-like milliseconds; injectable so tests can skew a replica. */
export type LocalClock = () => number;

/** The default local clock: monotonic, so an NTP step cannot move it, but anchored at the epoch. */
export const monotonicClock: LocalClock = () => performance.timeOrigin + performance.now();

/** Where the NATS server's clock stands relative to this process's clock: server = local + offset. */
export interface OffsetBounds {
  /** The offset is at least this (ms). */
  readonly low: number;
  /** The offset is at most this (ms). */
  readonly high: number;
}

/** Options of {@link ServerClock}. */
export interface ServerClockOptions {
  /** Local clock. Default {@link monotonicClock}. */
  readonly now?: LocalClock;
  /** How often to take a sample. Default 2 000 ms. */
  readonly probeEveryMs?: number;
  /** Samples older than this are dropped. Default 60 000 ms. */
  readonly keepMs?: number;
  /** Drift allowed between the two clocks, widening old samples. Default 200 ppm. */
  readonly driftPpm?: number;
}

// Reads of a sample's own write that a lagging replica answered with nothing, before it is skipped.
const MISSING_RETRIES = 5;

interface Sample {
  /** Local time the sample was taken (its write was sent). */
  readonly at: number;
  readonly low: number;
  readonly high: number;
}

/**
 * Bounds on the NATS server's clock, learnt from the timestamps JetStream gives the messages it
 * stores. All replicas compare times on this one clock, so their own clocks may be skewed by any
 * amount. Each sample writes a key: the write was stored after it was sent (local a1) and before
 * its ack arrived (local a2), so with server stamp c, `c - a2 <= offset <= c + 1 - a1` (stamps are
 * whole ms). A slow KV only widens the bounds, it never makes them wrong.
 */
export class ServerClock {
  private readonly now: LocalClock;
  private readonly keepMs: number;
  private readonly drift: number;
  private readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private probing: Promise<void> | null = null;
  private readonly key: string;

  constructor(
    private readonly kv: KV,
    opts: ServerClockOptions = {},
  ) {
    this.now = opts.now ?? monotonicClock;
    this.keepMs = opts.keepMs ?? 60_000;
    this.drift = (opts.driftPpm ?? 200) / 1e6;
    this.key = `clock.${Math.random().toString(36).slice(2, 12)}`;
    const every = opts.probeEveryMs ?? 2_000;
    this.timer = setInterval(() => void this.probe().catch(() => undefined), every);
    this.timer.unref();
  }

  /** The local clock reading now. */
  local(): number {
    return this.now();
  }

  /** True once at least one sample is known. */
  ready(): boolean {
    return this.samples.length > 0;
  }

  /** Takes one sample now (at most one at a time); rejects when the KV cannot be reached. */
  probe(): Promise<void> {
    this.probing ??= (async () => {
      try {
        const a1 = this.now();
        const revision = await this.kv.put(this.key, String(a1));
        const a2 = this.now();
        // By revision: on a JetStream cluster any replica answers a direct get, and one that has
        // not stored this put yet would return the previous sample's stamp, shifting the bounds
        // by a probe interval (quota over-admitted). A replica lacking it answers nothing; it
        // catches up within milliseconds, and the stamp is this put's whenever it is read.
        let e = await this.kv.get(this.key, { revision });
        for (let i = 0; e === null && i < MISSING_RETRIES; i++) {
          await new Promise((r) => setTimeout(r, 10));
          e = await this.kv.get(this.key, { revision });
        }
        if (e === null) return;
        const c = e.created.getTime();
        this.add({ at: a1, low: c - a2, high: c + 1 - a1 });
      } finally {
        this.probing = null;
      }
    })();
    return this.probing;
  }

  /** Offset bounds valid at local time `at` (default now); throws until the first sample. */
  bounds(at = this.now()): OffsetBounds {
    if (this.samples.length === 0) throw new Error("server clock has no sample yet; call probe() first");
    let low = -Infinity;
    let high = Infinity;
    for (const s of this.samples) {
      const widen = Math.abs(at - s.at) * this.drift;
      low = Math.max(low, s.low - widen);
      high = Math.min(high, s.high + widen);
    }
    // Samples from clocks that jumped could cross; fall back to the newest one alone.
    if (low > high) {
      const s = this.samples[this.samples.length - 1];
      return { low: s.low, high: s.high };
    }
    return { low, high };
  }

  /** Stops sampling and removes this replica's sample key (best effort). */
  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.kv.delete(this.key).catch(() => undefined);
  }

  private add(s: Sample): void {
    this.samples.push(s);
    const cutoff = s.at - this.keepMs;
    while (this.samples.length > 1 && this.samples[0].at < cutoff) this.samples.shift();
    // A handful of recent samples is enough; the tightest one dominates the bounds.
    if (this.samples.length > 32) this.samples.shift();
  }
}
