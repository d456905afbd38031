/** The cache kinds: `null` stores nothing, `memory` is an LRU capped by size, `ttl` adds expiry. */
export const CACHE_KINDS = ["null", "memory", "ttl"] as const;

/** A cache kind. */
export type CacheKindName = (typeof CACHE_KINDS)[number];

/** The cap of memory and ttl caches when none is given: 512 MiB of serialized values. */
export const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;

/** What a cache is made from (see {@link createCache}). */
export interface CacheSpec {
  kind: CacheKindName;
  /** Cap on the serialized bytes held (memory, ttl). Default {@link DEFAULT_MAX_BYTES}; ignored by null. */
  maxSize?: number;
  /** ttl: how long an entry lives, ms (required, > 0). memory: optional max age; default none. */
  ttlMs?: number;
}

/**
 * Why an entry left the cache: `size` (least recently used, dropped to make room), `expired`
 * (older than its ttl), `deleted` ({@link Cache.del}), `cleared` ({@link Cache.clear}),
 * `replaced` (a `set` over the key, including one refused as too big).
 */
export type EvictReason = "size" | "expired" | "deleted" | "cleared" | "replaced";

/** Options of {@link Cache.set}. */
export interface SetOptions {
  /** This entry's lifetime, ms (> 0). Default the cache's ttl (none for a memory cache without one). */
  ttlMs?: number;
}

/** Counters since the cache was made. */
export interface CacheStats {
  /** `get`s that found a live entry. */
  hits: number;
  /** `get`s that found nothing (a null cache counts every one). */
  misses: number;
  /** Entries dropped by the cache itself: for room (`size`) or for age (`expired`). */
  evictions: number;
}

/** Called once per entry that leaves the cache, after the cache is updated. */
export type EvictListener = (key: string, reason: EvictReason) => void;

/**
 * A cache of values by string key. Values are held serialized (see `serialize`), so the size cap
 * counts real bytes and a value read back is always a private copy.
 */
export interface Cache {
  /** The kind it was made as. */
  readonly kind: CacheKindName;
  /** Cap on serialized bytes held; 0 for the null cache (it holds none). */
  readonly maxBytes: number;
  /** A fresh copy of the value under `key` (mutating it never changes the cache); refreshes recency. */
  get(key: string): unknown;
  /** Whether a live entry is under `key`; neither refreshes recency nor counts as a hit or miss. */
  has(key: string): boolean;
  /**
   * Stores a copy of `value`; throws what `serialize` throws for a value it cannot clone. False
   * when not stored: always for the null cache, and for a value whose serialized form is bigger
   * than `maxBytes` (then an older entry under `key` is removed too, reason `replaced`, so a
   * later `get` never answers the stale one).
   */
  set(key: string, value: unknown, opts?: SetOptions): boolean;
  /** Removes the entry under `key`; true when there was one. */
  del(key: string): boolean;
  /** Removes every entry. */
  clear(): void;
  /** Live entries held. */
  readonly entries: number;
  /** Serialized bytes held. */
  readonly bytes: number;
  /** Hit, miss and eviction counters. */
  stats(): CacheStats;
  /**
   * Calls `listener` for every removal, whatever the reason (the cache's own evictions and the
   * caller's `del`, `clear` and replacing `set`s), so an index kept beside the cache stays in step.
   * It runs after the cache is updated; an error it throws is rethrown asynchronously (an
   * uncaught exception) rather than leaving the cache half-updated.
   */
  onEvict(listener: EvictListener): void;
}
