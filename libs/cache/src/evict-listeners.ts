import type { EvictListener, EvictReason } from "./cache";

/** The `onEvict` listeners of one cache. */
export class EvictListeners {
  readonly #listeners: EvictListener[] = [];

  /** Adds a listener; every one added is called, in the order added. */
  add(listener: EvictListener): void {
    this.#listeners.push(listener);
  }

  /** Tells every listener that `key` left for `reason`. */
  emit(key: string, reason: EvictReason): void {
    for (const listener of this.#listeners) {
      try {
        listener(key, reason);
      } catch (err) {
        // Thrown inside lru-cache's bookkeeping (or its expiry timer) it would leave removals
        // unreported to the other listeners; rethrown later it still surfaces as the bug it is.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
