import { LRUCache } from "lru-cache";
import type { Cache, CacheStats, EvictListener, EvictReason, SetOptions } from "./cache";
import { EvictListeners } from "./evict-listeners";
import { deserialize, serialize } from "./serializer";
import { isTtlMs, specError } from "./spec-error";

/** How {@link LruStoreCache} is made; checked by `createCache`. */
export interface LruStoreOptions {
  kind: "memory" | "ttl";
  /** Cap on serialized bytes held. */
  maxBytes: number;
  /** Default lifetime of an entry, ms; 0 for none. */
  ttlMs: number;
}

/**
 * The memory and ttl caches: serialized values in an lru-cache capped by their byte length, least
 * recently used (`get` and `set` refresh recency) dropped first, entries past their ttl dropped.
 */
export class LruStoreCache implements Cache {
  readonly kind: "memory" | "ttl";
  readonly maxBytes: number;
  readonly #lru: LRUCache<string, Buffer>;
  readonly #listeners = new EvictListeners();
  #clearing = false;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(opts: LruStoreOptions) {
    this.kind = opts.kind;
    this.maxBytes = opts.maxBytes;
    this.#lru = new LRUCache<string, Buffer>({
      maxSize: opts.maxBytes,
      sizeCalculation: (buf) => buf.length,
      ttl: opts.ttlMs,
      // A timer per entry with a ttl (unref'd, so it holds no process open) drops it on time:
      // `entries`, `bytes` and the listeners then follow the clock instead of the next read.
      ttlAutopurge: true,
      // After, not during: a listener then sees the cache already without the entry.
      disposeAfter: (_buf, key, reason) => this.#removed(key, this.#reasonOf(reason)),
    });
  }

  get(key: string): unknown {
    const buf = this.#lru.get(key);
    if (buf === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    return deserialize(buf);
  }

  has(key: string): boolean {
    return this.#lru.has(key);
  }

  set(key: string, value: unknown, opts: SetOptions = {}): boolean {
    if (opts.ttlMs !== undefined && !isTtlMs(opts.ttlMs))
      throw specError(`set: ttlMs must be a whole number of ms >= 1, got ${String(opts.ttlMs)}`);
    const buf = serialize(value);
    // lru-cache refuses an entry over the cap itself and removes the key's old entry (reason
    // "set", so listeners hear `replaced`); the old value must not outlive the newer one.
    this.#lru.set(key, buf, opts.ttlMs === undefined ? undefined : { ttl: opts.ttlMs });
    return buf.length <= this.maxBytes;
  }

  del(key: string): boolean {
    return this.#lru.delete(key);
  }

  clear(): void {
    this.#clearing = true;
    try {
      this.#lru.clear();
    } finally {
      this.#clearing = false;
    }
  }

  get entries(): number {
    return this.#lru.size;
  }

  get bytes(): number {
    return this.#lru.calculatedSize;
  }

  stats(): CacheStats {
    return { hits: this.#hits, misses: this.#misses, evictions: this.#evictions };
  }

  onEvict(listener: EvictListener): void {
    this.#listeners.add(listener);
  }

  #reasonOf(reason: LRUCache.DisposeReason): EvictReason {
    switch (reason) {
      case "evict":
        return "size";
      case "expire":
        return "expired";
      case "set":
        return "replaced";
      default:
        // lru-cache says "delete" for both delete() and clear().
        return this.#clearing ? "cleared" : "deleted";
    }
  }

  #removed(key: string, reason: EvictReason): void {
    if (reason === "size" || reason === "expired") this.#evictions++;
    this.#listeners.emit(key, reason);
  }
}
