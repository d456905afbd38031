import type { KV } from "@nats-io/kv";
import { isCasConflict } from "@machina/runtime";

/** A counter as last seen: its value and the KV revision it was read or written at (0 = absent). */
export interface Counter {
  readonly used: number;
  readonly revision: number;
}

const encoder = new TextEncoder();

/**
 * Integer counters in a KV bucket, written only by compare-and-set on the key's revision,
 * with a local cache of the last revision seen so an uncontended increment is one round trip.
 */
export class KvCounters {
  private readonly cache = new Map<string, { counter: Counter; expiresAt: number }>();

  constructor(readonly kv: KV) {}

  /** The last value this process saw for `key`, if any. */
  cached(key: string): Counter | undefined {
    return this.cache.get(key)?.counter;
  }

  /** Reads `key` from the bucket; a missing or deleted key counts as 0. `expiresAt` bounds the cache entry. */
  async load(key: string, expiresAt: number): Promise<Counter> {
    const e = await this.kv.get(key);
    let counter: Counter;
    if (e === null) counter = { used: 0, revision: 0 };
    else if (e.operation !== "PUT") counter = { used: 0, revision: e.revision };
    else counter = { used: parseCount(e.string()), revision: e.revision };
    this.remember(key, counter, expiresAt);
    return counter;
  }

  /** Writes `used` if the key is still at `expected.revision`; null when another writer got there first. */
  async trySet(key: string, expected: Counter, used: number, expiresAt: number): Promise<Counter | null> {
    const value = encoder.encode(String(used));
    try {
      const revision =
        expected.revision === 0
          ? await this.kv.create(key, value)
          : await this.kv.update(key, value, expected.revision);
      const counter = { used, revision };
      this.remember(key, counter, expiresAt);
      return counter;
    } catch (err) {
      if (!isCasConflict(err)) throw err;
      this.cache.delete(key);
      return null;
    }
  }

  /**
   * Applies `next` (old value → new value, or null to leave it) with CAS retries; for rollbacks
   * and corrections, which must not clobber concurrent increments. Returns the final counter,
   * or null if it gave up after `tries` conflicts.
   */
  async adjust(
    key: string,
    next: (used: number) => number | null,
    expiresAt: number,
    tries = 50,
  ): Promise<Counter | null> {
    let cur = this.cached(key) ?? (await this.load(key, expiresAt));
    for (let i = 0; i < tries; i++) {
      const want = next(cur.used);
      if (want === null || want === cur.used) return cur;
      const done = await this.trySet(key, cur, want, expiresAt);
      if (done !== null) return done;
      cur = await this.load(key, expiresAt);
    }
    return null;
  }

  /** Drops cache entries whose window has ended, so the cache stays as small as the live windows. */
  prune(now: number): void {
    for (const [k, v] of this.cache) if (v.expiresAt <= now) this.cache.delete(k);
  }

  private remember(key: string, counter: Counter, expiresAt: number): void {
    this.cache.set(key, { counter, expiresAt });
  }
}

function parseCount(text: string): number {
  const n = Number(text);
  // A corrupt counter is treated as full: refusing calls is recoverable, overspending a quota is not.
  return Number.isSafeInteger(n) && n >= 0 ? n : Number.MAX_SAFE_INTEGER;
}
