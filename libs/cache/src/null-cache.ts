import type { Cache, CacheStats } from "./cache";

/** A cache that stores nothing: every `get` is a miss, every `set` answers false. */
export class NullCache implements Cache {
  readonly kind = "null";
  readonly maxBytes = 0;
  readonly entries = 0;
  readonly bytes = 0;
  #misses = 0;

  get(_key: string): unknown {
    this.#misses++;
    return undefined;
  }

  has(_key: string): boolean {
    return false;
  }

  set(_key: string, _value: unknown): boolean {
    return false;
  }

  del(_key: string): boolean {
    return false;
  }

  clear(): void {}

  stats(): CacheStats {
    return { hits: 0, misses: this.#misses, evictions: 0 };
  }

  // Nothing is ever held, so nothing is ever removed: the listener would never be called.
  onEvict(): void {}
}
