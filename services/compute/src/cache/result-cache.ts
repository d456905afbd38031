import type { Cache, CacheStats, EvictReason } from "@machina/cache";
import type { JsonObject } from "@machina/protos";
import type { ComputeResult } from "../computations/define";
import { canonicalKey, type ReadSet } from "../reads/read-set";

/** Where an invalidation came from, for the metric's label. */
export type InvalidationCause = "data" | "broadcast" | "reconnect";

/** A point in the invalidation history a run started at; see {@link ResultCache.begin}. */
export interface RunMark {
  readonly seq: number;
}

/**
 * Compute results in a Cache, indexed by what each one read, so a data change drops exactly the
 * entries it affects. A result is stored only if nothing it read was invalidated while it ran:
 * otherwise a run that read the old row before a change and finished after its event would put
 * the stale value back.
 */
export class ResultCache {
  // Entries that read a type whole (scans), and those that read single entities.
  private readonly byType = new Map<string, Set<string>>();
  private readonly byEntity = new Map<string, Map<string, Set<string>>>();
  private readonly readsOf = new Map<string, ReadSet>();
  // Invalidation sequence: the last one per type, and the last one that dropped everything.
  private seq = 0;
  private readonly typeSeq = new Map<string, number>();
  private allSeq = 0;
  private dropped = 0;
  private store: Cache;
  // Counters of the stores replaced so far, so stats count since start.
  private readonly retired: CacheStats = { hits: 0, misses: 0, evictions: 0 };

  constructor(
    /** The store; its evictions (size, age) are followed so the index never outgrows it. */
    cache: Cache,
    private readonly onInvalidate: (cause: InvalidationCause, entries: number) => void = () => undefined,
  ) {
    this.store = cache;
    this.follow(cache);
  }

  /** The store results are held in now. */
  get cache(): Cache {
    return this.store;
  }

  /** Hits, misses and evictions since start, over every store this cache has had. */
  stats(): CacheStats {
    const s = this.store.stats();
    return {
      hits: this.retired.hits + s.hits,
      misses: this.retired.misses + s.misses,
      evictions: this.retired.evictions + s.evictions,
    };
  }

  /**
   * Holds results in `next` from now on (its kind, size or ttl changed live): it starts empty,
   * the previous store is emptied and dropped; counters go on. A run in flight may still store its
   * result in the new one (what it read is indexed there, so a change still drops it).
   */
  replace(next: Cache): void {
    const old = this.store;
    const s = old.stats();
    this.retired.hits += s.hits;
    this.retired.misses += s.misses;
    this.retired.evictions += s.evictions;
    this.store = next;
    this.byType.clear();
    this.byEntity.clear();
    this.readsOf.clear();
    this.follow(next);
    old.clear();
  }

  // Its evictions unindex while it is the store; a replaced store's last ones are ignored.
  private follow(cache: Cache): void {
    cache.onEvict((key, reason: EvictReason) => {
      if (this.store === cache && reason !== "replaced") this.unindex(key);
    });
  }

  /** Entries dropped because data they read changed, since start. */
  get invalidations(): number {
    return this.dropped;
  }

  /** The cached result under `key`, if any. */
  get(key: string): ComputeResult | undefined {
    return this.store.get(key) as ComputeResult | undefined;
  }

  /** What the run cached under `key` read. */
  readsFor(key: string): ReadSet | undefined {
    return this.readsOf.get(key);
  }

  /** Marks the start of a run whose result may later be {@link put}. */
  begin(): RunMark {
    return { seq: this.seq };
  }

  /**
   * Stores a run's result unless it must not be cached (unannounced reads), or a type it read was
   * invalidated after `mark`. Answers whether it was stored.
   */
  put(key: string, result: ComputeResult, reads: ReadSet, mark: RunMark): boolean {
    if (reads.uncacheable !== null || this.allSeq > mark.seq) return false;
    for (const t of reads.allTypes()) if ((this.typeSeq.get(t) ?? 0) > mark.seq) return false;
    this.unindex(key);
    if (!this.cache.set(key, result)) return false;
    this.index(key, reads);
    return true;
  }

  /**
   * Drops the entries that read `type` whole, and those that read the entity `key` (every entry
   * of the type when no key is given). An empty type drops everything. Answers how many.
   */
  invalidate(type: string, key: Record<string, unknown> | null, cause: InvalidationCause): number {
    this.seq++;
    if (type === "") {
      this.allSeq = this.seq;
      const n = this.cache.entries;
      this.cache.clear();
      this.count(cause, n);
      return n;
    }
    this.typeSeq.set(type, this.seq);
    const victims = new Set(this.byType.get(type));
    const entities = this.byEntity.get(type);
    if (entities !== undefined) {
      if (key === null) for (const keys of entities.values()) for (const k of keys) victims.add(k);
      else for (const k of entities.get(canonicalKey(key as JsonObject)) ?? []) victims.add(k);
    }
    for (const k of victims) this.cache.del(k);
    this.count(cause, victims.size);
    return victims.size;
  }

  private count(cause: InvalidationCause, n: number): void {
    this.dropped += n;
    this.onInvalidate(cause, n);
  }

  private index(key: string, reads: ReadSet): void {
    this.readsOf.set(key, reads);
    for (const t of reads.types) setOf(this.byType, t).add(key);
    for (const [t, keys] of reads.entities) {
      let m = this.byEntity.get(t);
      if (m === undefined) this.byEntity.set(t, (m = new Map()));
      for (const k of keys) setOf(m, k).add(key);
    }
  }

  private unindex(key: string): void {
    const reads = this.readsOf.get(key);
    if (reads === undefined) return;
    this.readsOf.delete(key);
    for (const t of reads.types) removeFrom(this.byType, t, key);
    for (const [t, keys] of reads.entities) {
      const m = this.byEntity.get(t);
      if (m === undefined) continue;
      for (const k of keys) removeFrom(m, k, key);
      if (m.size === 0) this.byEntity.delete(t);
    }
  }
}

function setOf<K>(m: Map<K, Set<string>>, k: K): Set<string> {
  let s = m.get(k);
  if (s === undefined) m.set(k, (s = new Set()));
  return s;
}

function removeFrom<K>(m: Map<K, Set<string>>, k: K, key: string): void {
  const s = m.get(k);
  if (s === undefined) return;
  s.delete(key);
  if (s.size === 0) m.delete(k);
}
