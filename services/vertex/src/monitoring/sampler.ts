import type { Collector } from "./collector";
import type { Retention } from "./retention";
import type { SampleStore } from "./sample-store";
import type { Sample } from "./series-names";

/** The logging calls the sampler makes. */
export interface SamplerLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Options of {@link Sampler}. */
export interface SamplerOptions {
  intervalMs: number;
  /** How often old samples are deleted; 0 never. */
  retentionEveryMs: number;
  log: SamplerLog;
  /** Hears every tick's samples, stored or not (e.g. the scale advisor). Default none. */
  onSamples?: (t: number, samples: readonly Sample[]) => void;
}

/**
 * Every `intervalMs`, reads every collector and stores their samples, all stamped with the
 * tick's time (aligned down to the interval, so buckets line up across replicas and restarts).
 * A collector that fails skips its samples for that tick only; while data is unreachable the
 * tick's samples are dropped (monitoring history has a gap, the mesh is not held up).
 */
export class Sampler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastRetention = 0;
  private storing = true;
  private readonly failing = new Set<string>();

  constructor(
    private readonly store: SampleStore,
    private readonly collectors: readonly Collector[],
    private readonly retention: Retention,
    private readonly opts: SamplerOptions,
  ) {}

  /** Starts sampling; the first tick runs after one interval (collectors need a baseline first). */
  start(): void {
    // The first tick sets the baseline of delta collectors; its counts since start are kept too.
    this.timer = setInterval(() => {
      this.running ??= this.tick()
        .then(() => undefined)
        .finally(() => (this.running = undefined));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  /** Stops sampling and waits for a tick under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One tick: collect, store, and now and then apply retention. */
  async tick(now = Date.now()): Promise<Sample[]> {
    const t = Math.floor(now / this.opts.intervalMs) * this.opts.intervalMs;
    const results = await Promise.allSettled(this.collectors.map((c) => c.collect(t)));
    const samples: Sample[] = [];
    results.forEach((r, i) => {
      const name = this.collectors[i].name;
      if (r.status === "fulfilled") {
        samples.push(...r.value);
        this.failing.delete(name);
      } else if (!this.failing.has(name)) {
        this.failing.add(name);
        this.opts.log.warn({ err: r.reason, collector: name }, "monitoring collector failed; its samples are skipped");
      }
    });
    try {
      this.opts.onSamples?.(t, samples);
    } catch (err) {
      this.opts.log.warn({ err }, "a monitoring listener failed on a tick's samples");
    }
    try {
      await this.store.write(samples);
      if (!this.storing) this.opts.log.info({ type: this.store.type }, "monitoring samples stored again");
      this.storing = true;
    } catch (err) {
      if (this.storing) this.opts.log.warn({ err }, "monitoring samples not stored (data unreachable?); dropping them");
      this.storing = false;
      return samples;
    }
    if (this.opts.retentionEveryMs > 0 && now - this.lastRetention >= this.opts.retentionEveryMs) {
      this.lastRetention = now;
      await this.retention.run(now).catch((err: unknown) => {
        this.lastRetention = 0;
        this.opts.log.warn({ err }, "monitoring retention failed; trying again next tick");
      });
    }
    return samples;
  }
}
